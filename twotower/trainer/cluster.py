"""A cluster of training workers on this machine: N processes on free localhost ports, each with its TF_CONFIG.

``twotower run --trainer-workers N`` runs the Trainer this way: every worker runs the same command a
Vertex AI worker pool runs (TFX's ``run_executor`` on the Trainer executor), with the ``TF_CONFIG`` a
worker pool would get, so the multi-worker code path is the one a cloud job takes.

When a worker dies (killed, out of memory), the others are stopped and the whole cluster starts
again, as Vertex AI does with ``restart_job_on_worker_restart``; training resumes from the chief's
last checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from contextlib import closing
from typing import Dict, List, Mapping, Optional, Sequence


def free_ports(n: int) -> List[int]:
    """Returns ``n`` distinct TCP ports that were free on localhost a moment ago."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: Sequence[str], index: int) -> Dict[str, object]:
    """Returns worker ``index``'s TF_CONFIG for a cluster of ``worker`` tasks at ``addresses`` (worker 0 is chief)."""
    return {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}


class WorkerFailed(RuntimeError):
    """A worker exited with an error and the cluster ran out of restarts."""


def _tail(path: str, lines: int = 30) -> str:
    with closing(open(path, encoding="utf-8", errors="replace")) as f:
        return "".join(f.readlines()[-lines:])


class LocalCluster:
    """Runs ``command`` as ``workers`` processes with their TF_CONFIG; logs go to ``log_dir/worker-<i>.log``.

    ``processes`` holds the running workers (a test kills one to see the cluster recover).
    """

    def __init__(
        self,
        command: Sequence[str],
        workers: int,
        log_dir: str,
        max_restarts: int = 2,
        env: Optional[Mapping[str, str]] = None,
        poll_s: float = 0.5,
    ):
        if workers < 2:
            raise ValueError(f"--trainer-workers {workers}: a cluster has at least 2 workers")
        self.command, self.workers, self.log_dir = list(command), workers, log_dir
        self.max_restarts, self.poll_s = max_restarts, poll_s
        self.env = dict(os.environ if env is None else env)
        self.processes: List[subprocess.Popen] = []
        self.starts = 0

    def _start(self) -> None:
        addresses = [f"localhost:{p}" for p in free_ports(self.workers)]
        self.starts += 1
        os.makedirs(self.log_dir, exist_ok=True)
        self.processes = []
        for i in range(self.workers):
            env = dict(self.env, TF_CONFIG=json.dumps(tf_config(addresses, i)))
            with open(os.path.join(self.log_dir, f"worker-{i}.log"), "a", encoding="utf-8") as log:
                log.write(f"\n=== start {self.starts}: worker {i} of {addresses} ===\n")
                log.flush()
                self.processes.append(
                    subprocess.Popen(
                        self.command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        logging.info("Started %d training workers at %s (start %d)", self.workers, addresses, self.starts)

    def _stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.kill()
        for p in self.processes:
            p.wait()

    def run(self) -> None:
        """Runs the cluster until every worker exits 0; raises WorkerFailed after ``max_restarts`` restarts."""
        self._start()
        try:
            while True:
                codes = [p.poll() for p in self.processes]
                if all(c == 0 for c in codes):
                    return
                failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
                if failed:
                    i = failed[0]
                    log = os.path.join(self.log_dir, f"worker-{i}.log")
                    self._stop()
                    if self.starts > self.max_restarts:
                        raise WorkerFailed(
                            f"training worker {i} exited with {codes[i]} ({self.starts} starts); "
                            f"its log {log} ends:\n{_tail(log)}"
                        )
                    logging.warning(
                        "Training worker %d exited with %s; restarting all %d workers from the last checkpoint",
                        i,
                        codes[i],
                        self.workers,
                    )
                    self._start()
                time.sleep(self.poll_s)
        finally:
            self._stop()
