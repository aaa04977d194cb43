"""tf.distribute strategy: the one to train under on this machine or cluster, and which worker writes.

One machine: MirroredStrategy over its GPUs (or logical CPUs), else the default strategy.

Several workers (``TF_CONFIG`` names more than one task in ``chief`` + ``worker``, as Vertex AI worker
pools and ``twotower run --trainer-workers N`` set it): MultiWorkerMirroredStrategy, following
TensorFlow's multi-worker Keras guide:

- it must exist before any TensorFlow op runs in the process (collective ops are configured at
  start-up), so ``export.package.train_and_export`` creates it first;
- every worker first waits, at most ``timeout_s``, until every other worker's address accepts a TCP
  connection (``wait_for_workers``), so a worker that never starts gives a clear ``WorkersUnreachable``
  instead of a collective init that blocks forever;
- only the chief writes checkpoints, TensorBoard logs and the model; the others run the same steps
  (saving may need collective ops) but write to temporary directories (``Task.is_chief``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import socket
import time
from typing import Dict, List, Mapping, Optional, Tuple

import tensorflow as tf

WORKER_JOBS = ("chief", "worker")  # the jobs MultiWorkerMirroredStrategy trains on (no parameter servers)
DEFAULT_WORKER_START_TIMEOUT_S = 300.0


class WorkersUnreachable(RuntimeError):
    """Some workers that TF_CONFIG names did not answer in time: the cluster cannot form."""


@dataclasses.dataclass(frozen=True)
class Task:
    """This process's place in the cluster that ``TF_CONFIG`` describes."""

    cluster: Dict[str, Tuple[str, ...]]  # job -> addresses ("host:port")
    task_type: str = ""
    task_index: int = 0

    @property
    def workers(self) -> List[Tuple[str, int, str]]:
        """Returns (job, index, address) of every training task, chief first."""
        return [(job, i, a) for job in WORKER_JOBS for i, a in enumerate(self.cluster.get(job, ()))]

    @property
    def multi_worker(self) -> bool:
        return len(self.workers) > 1

    @property
    def is_chief(self) -> bool:
        """True for the task that writes: the ``chief``, or ``worker`` 0 when there is no chief (TensorFlow's rule)."""
        if not self.multi_worker:
            return True
        if self.cluster.get("chief"):
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def address(self) -> str:
        return self.cluster[self.task_type][self.task_index] if self.multi_worker else ""


def current_task(environ: Optional[Mapping[str, str]] = None) -> Task:
    """Returns the Task that ``TF_CONFIG`` in ``environ`` (default ``os.environ``) describes; raises ValueError."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not raw.strip():
        return Task({})
    try:
        config = json.loads(raw)
        cluster = {job: tuple(addresses) for job, addresses in config.get("cluster", {}).items()}
        task = config.get("task", {})
        result = Task(cluster, str(task.get("type", "")), int(task.get("index", 0)))
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"TF_CONFIG is not a cluster description ({error}): {raw[:200]}") from None
    if result.multi_worker and (
        result.task_type not in WORKER_JOBS or result.task_index >= len(cluster.get(result.task_type, ()))
    ):
        raise ValueError(
            f"TF_CONFIG task {result.task_type!r} {result.task_index} is not one of its cluster's "
            f"{', '.join(WORKER_JOBS)} tasks: {raw[:200]}"
        )
    return result


def _host_port(address: str) -> Tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def wait_for_workers(task: Task, timeout_s: float, poll_s: float = 0.5) -> None:
    """Returns once every other worker's address accepts a connection; raises WorkersUnreachable after ``timeout_s``.

    Meanwhile this worker listens on its own port so that the others see it; it stops listening before
    TensorFlow's server takes the port. A worker already past this point is seen through that server.
    """
    _, port = _host_port(task.address)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", port))
    except OSError as error:
        listener.close()
        raise WorkersUnreachable(
            f"TF_CONFIG gives this worker ({task.task_type} {task.task_index}) {task.address}, "
            f"but port {port} is taken ({error})"
        ) from None
    listener.listen(64)
    waiting = {(job, i): a for job, i, a in task.workers if (job, i) != (task.task_type, task.task_index)}
    deadline = time.monotonic() + timeout_s
    try:
        while waiting:
            for key, address in list(waiting.items()):
                try:
                    with socket.create_connection(_host_port(address), timeout=min(2.0, poll_s * 4)):
                        del waiting[key]
                except OSError:
                    pass
            if not waiting:
                break
            if time.monotonic() > deadline:
                missing = ", ".join(f"{job} {i} at {a}" for (job, i), a in sorted(waiting.items()))
                raise WorkersUnreachable(
                    f"{task.task_type} {task.task_index} waited {timeout_s:.0f}s for the other workers TF_CONFIG "
                    f"names; no answer from {missing}. Start every worker (or fix TF_CONFIG), or raise "
                    "trainer.worker_start_timeout_s"
                )
            time.sleep(poll_s)
    finally:
        listener.close()
    logging.info("All %d workers answered; %s %d forms the cluster", len(task.workers), task.task_type, task.task_index)


@functools.lru_cache(maxsize=1)
def _multi_worker_strategy() -> tf.distribute.Strategy:
    """Returns the process's one MultiWorkerMirroredStrategy (collective ops are configured once per process)."""
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise RuntimeError(
            "MultiWorkerMirroredStrategy must be created before any TensorFlow op runs in the process: "
            "call trainer.strategy.choose_strategy() (or export.package.train_and_export) first"
        ) from error


def choose_strategy(worker_start_timeout_s: float = DEFAULT_WORKER_START_TIMEOUT_S) -> tf.distribute.Strategy:
    """Returns the strategy for this cluster or machine.

    - ``TF_CONFIG`` naming several workers: MultiWorkerMirroredStrategy (module docstring), once every
      worker answered (``WorkersUnreachable`` after ``worker_start_timeout_s``); the same object on every call;
    - more than one GPU: MirroredStrategy over the GPUs;
    - no GPU but more than one logical CPU device (configured with
      ``tf.config.set_logical_device_configuration``): MirroredStrategy over them;
    - otherwise the default strategy (one device).
    """
    task = current_task()
    if task.multi_worker:
        if not _multi_worker_strategy.cache_info().currsize:
            wait_for_workers(task, worker_start_timeout_s)
        strategy = _multi_worker_strategy()
    else:
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        if len(devices) > 1:
            strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        else:
            strategy = tf.distribute.get_strategy()
    name = "MultiWorkerMirroredStrategy" if task.multi_worker else type(strategy).__name__  # not its base class's
    logging.info("Training under %s with %d replica(s)", name, strategy.num_replicas_in_sync)
    return strategy


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Returns ``dataset`` set to be split by elements across workers (each gets its share of every global batch).

    File sharding would give workers unequal step counts when files differ in size, and collectives hang then.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
