"""Trainer executor: the stock GenericExecutor, plus the catalogue split and a checkpoint directory.

TFX hands ``run_fn`` the train and eval splits only; the two-tower export also
needs the ``catalog`` split of the same Examples artifact to build its index.

Each execution writes its model to a new artifact directory, so checkpoints go
to ``custom_config['checkpoint_root']/<key>`` instead, where the key hashes the
profile and ExampleGen's input fingerprint: re-running the pipeline on the same
files and config after a crash resumes training; changed data or config starts over.

Several workers: with ``custom_config['trainer_workers']`` N > 1 and no ``TF_CONFIG``, ``Do`` runs the
step as a ``trainer.cluster.LocalCluster`` of N processes, each running this executor through TFX's
``run_executor`` (the command a Vertex AI worker pool runs) with its own ``TF_CONFIG``. A worker that
is not the chief trains but exports nothing, so it skips the stock check that the model exists.

One worker: ``Do`` trains in one child process running that same command (``_run_child``), so the
memory training takes (11 GB at the full H&M size) goes back to the system when it ends instead of
staying in the pipeline's process under the Evaluator's. The child's Keras output goes to the same
console; its log lines go to the pipeline's log through ``logging``; an exception it raises is raised
again here, so a bad-input error still exits 2, not 4. ``TRAINER_CHILD_ENV`` in the environment (set
by ``_run_child``, or by a caller who wants the old way) trains in this process.
"""

import collections
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from typing import Any, Dict, Iterator, List, Optional

from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer import fn_args_utils
from tfx.components.util import udf_utils
from tfx.dsl.io import fileio
from tfx.extensions.google_cloud_ai_platform.trainer import executor as ai_platform_trainer_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, name_utils

from twotower.trainer.cluster import LocalCluster
from twotower.trainer.strategy import current_task

CATALOG_SPLIT = "catalog"
HISTORIES_SPLIT = "histories"  # with a history feature: each user's history at the end of the data
TRAINER_WORKERS = "trainer_workers"  # custom_config key: local worker processes (1: train in the executor)
WORKER_LOGS = "workers"  # under the model_run directory: worker-<i>.log of a local cluster
TRAINER_CHILD_ENV = "TWOTOWER_TRAINER_IN_PROCESS"  # set (to anything): train in this process
ERROR_FILE_ENV = "TWOTOWER_TRAINER_ERROR_FILE"  # set by _run_child: where its child pickles an exception
PARENT_ENV = "TWOTOWER_TRAINER_PARENT"  # set by _run_child: the pid of the process that started the child


class TrainingProcessFailed(RuntimeError):
    """The training child process died without an exception to pass on (killed, out of memory)."""


def checkpoint_key(profile_json: str, examples: types.Artifact) -> str:
    """Returns a short hash of the profile and the examples' input fingerprint (their URI if none)."""
    fingerprint = examples.get_string_custom_property(example_gen_utils.FINGERPRINT_PROPERTY_NAME) or examples.uri
    return hashlib.sha256(f"{profile_json}\n{fingerprint}".encode()).hexdigest()[:16]


class Executor(trainer_executor.GenericExecutor):
    """GenericExecutor whose FnArgs.custom_config also has ``catalog_files`` and ``histories_files``."""

    def _GetFnArgs(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> fn_args_utils.FnArgs:
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        examples = input_dict[standard_component_specs.EXAMPLES_KEY]
        catalog = [io_utils.all_files_pattern(artifact_utils.get_split_uri(examples, CATALOG_SPLIT))]
        config = dict(fn_args.custom_config or {}, catalog_files=catalog, histories_files=[])
        if HISTORIES_SPLIT in artifact_utils.decode_split_names(examples[0].split_names):
            config["histories_files"] = [
                io_utils.all_files_pattern(artifact_utils.get_split_uri(examples, HISTORIES_SPLIT))
            ]
        if config.get("checkpoint_root"):
            key = checkpoint_key(config.get("profile", ""), examples[0])
            config["checkpoint_dir"] = os.path.join(config["checkpoint_root"], key)
        fn_args.custom_config = config
        return fn_args

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        config = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "null") or {}
        workers = int(config.get(TRAINER_WORKERS, 1))
        task = current_task()
        if workers > 1 and not task.multi_worker:
            self._run_local_cluster(input_dict, output_dict, exec_properties, workers)
        elif not task.multi_worker and TRAINER_CHILD_ENV not in os.environ:
            self._run_child(input_dict, output_dict, exec_properties)
        elif task.is_chief:
            error_file = os.environ.get(ERROR_FILE_ENV)
            if error_file:  # the child _run_child started
                _die_with_parent()
            with _errors_to(error_file):
                super().Do(input_dict, output_dict, exec_properties)
        else:  # trains in step with the chief; writes only temporary files
            self._log_startup(input_dict, output_dict, exec_properties)
            udf_utils.get_fn(exec_properties, "run_fn")(self._GetFnArgs(input_dict, output_dict, exec_properties))

    def _command(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> List[str]:
        """Returns the command that runs this executor in a new process, as a Vertex AI worker pool runs it."""
        return [
            sys.executable,
            "-m",
            "tfx.scripts.run_executor",
            "--executor_class_path",
            name_utils.get_full_name(type(self)),
            "--inputs",
            artifact_utils.jsonify_artifact_dict(input_dict),
            "--outputs",
            artifact_utils.jsonify_artifact_dict(output_dict),
            "--exec-properties",
            json.dumps(exec_properties, sort_keys=True),
        ]

    def _run_child(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        """Trains in one child process (module docstring); raises the child's exception, or TrainingProcessFailed."""
        command = self._command(input_dict, output_dict, exec_properties)
        with tempfile.TemporaryDirectory(prefix="twotower-trainer-") as scratch:
            error_file = os.path.join(scratch, "error.pickle")
            child = subprocess.Popen(
                command,
                env=dict(
                    os.environ, **{TRAINER_CHILD_ENV: "1", ERROR_FILE_ENV: error_file, PARENT_ENV: str(os.getpid())}
                ),
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
            )
            tail: collections.deque = collections.deque(maxlen=30)
            try:
                for line in child.stderr:  # the child's log, into this process's log handlers
                    tail.append(line)
                    logging.info("[training process] %s", line.rstrip())
                code = child.wait()
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            if code == 0:
                return
            where = f"the training process exited with {code}; its log ends:\n{''.join(tail)}"
            error = _read_error(error_file)
            if error is not None:
                raise error from TrainingProcessFailed(where)
            raise TrainingProcessFailed(where)

    def _run_local_cluster(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
        workers: int,
    ) -> None:
        """Runs this executor as ``workers`` local processes (module docstring); raises if no model came out."""
        command = self._command(input_dict, output_dict, exec_properties)
        model_run = artifact_utils.get_single_uri(output_dict[standard_component_specs.MODEL_RUN_KEY])
        LocalCluster(command, workers, os.path.join(model_run, WORKER_LOGS)).run()
        fn_args = self._GetFnArgs(input_dict, output_dict, exec_properties)
        if not fileio.exists(fn_args.serving_model_dir):
            raise RuntimeError(f"{workers} training workers finished, but the chief wrote no model")


@contextlib.contextmanager
def _errors_to(path: Optional[str]) -> Iterator[None]:
    """Pickles an exception that leaves the block into ``path`` (None: does nothing), then lets it go on."""
    try:
        yield
    except Exception as error:
        if path:
            try:  # round trip here: some errors (TensorFlow's OpError) pickle but do not unpickle
                payload = pickle.dumps(error)
                pickle.loads(payload)
            except Exception:  # any failure means: send the text instead
                payload = pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"))
            with open(path, "wb") as f:
                f.write(payload)
        raise


def _read_error(path: str) -> Optional[Exception]:
    """Returns the exception the child pickled at ``path``, or None if it wrote none."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return pickle.load(f)


def _die_with_parent() -> None:
    """In the training child: asks Linux to kill it when its parent dies, so a killed run leaves no trainer.

    Called in the child itself, not between fork and exec (``preexec_fn`` is unsafe in a process with
    threads, as the pipeline's is); a parent gone before the call is caught by its changed pid.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.environ.get(PARENT_ENV) and os.getppid() != int(os.environ[PARENT_ENV]):
        raise SystemExit("the pipeline process that started this training process is gone")


class VertexExecutor(ai_platform_trainer_executor.GenericExecutor):
    """TFX's Vertex AI Trainer executor (a custom job with worker pools) whose replicas run ``Executor``.

    Every replica runs ``python -m tfx.scripts.run_executor`` on ``Executor`` with the ``TF_CONFIG`` Vertex AI
    sets (pool 0: ``chief``, pool 1: ``worker``), as the replicas of ``--trainer-workers`` do on one machine.
    """

    def _GetExecutorClass(self):
        return Executor
