"""Peak resident memory of a child process and everything it starts, optionally per phase of its run.

Benchmarks start the measured work as a child (a `twotower` command or a bench child mode) and
sample the RSS of the child's whole process tree (Beam workers, trainer workers) twice a second.
"""

import json
import subprocess
import threading
import time
from typing import Callable, Dict, List, Optional

import psutil

TREE = "__tree__"  # the key of the whole run's peaks


def own_rss_mb() -> float:
    """Returns this process's RSS in MB (a bench child measuring its own work)."""
    return psutil.Process().memory_info().rss / 2**20


def tree_rss_mb(root: psutil.Process) -> List[float]:
    """Returns the RSS (MB) of ``root`` and of each of its live descendants."""
    rss = []
    for p in [root] + root.children(recursive=True):
        try:
            rss.append(p.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            continue
    return rss


class TreeSampler:
    """Samples a process tree until stopped; keeps peaks for the whole run and for the current phase.

    ``peaks[name]`` is ``{"max_process_mb", "tree_sum_mb", "processes"}`` for each phase named
    through :meth:`phase` and for :data:`TREE`, the whole run. With ``keep``, the peaks so far are
    written there (JSON) every ``keep_every_s`` seconds and at the end, so that a run killed with
    its measurer keeps them.
    """

    def __init__(self, pid: int, interval: float = 0.5, keep: str = "", keep_every_s: float = 30.0):
        self._root = psutil.Process(pid)
        self._interval = interval
        self._keep, self._keep_every_s, self._kept = keep, keep_every_s, time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._phase: Optional[str] = None
        self.peaks: Dict[str, Dict[str, float]] = {TREE: {}}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def phase(self, name: Optional[str]) -> None:
        """Attributes the following samples to ``name`` (None: to the whole run only)."""
        with self._lock:
            self._phase = name
            if name is not None:
                self.peaks.setdefault(name, {})

    def _record(self, key: str, rss: List[float]) -> None:
        peak = self.peaks[key]
        peak["max_process_mb"] = max(peak.get("max_process_mb", 0.0), max(rss, default=0.0))
        peak["tree_sum_mb"] = max(peak.get("tree_sum_mb", 0.0), sum(rss))
        peak["processes"] = max(peak.get("processes", 0), len(rss))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = tree_rss_mb(self._root)
            except psutil.NoSuchProcess:
                return
            with self._lock:
                self._record(TREE, rss)
                if self._phase is not None:
                    self._record(self._phase, rss)
            if self._keep and time.monotonic() - self._kept >= self._keep_every_s:
                self.write()
            self._stop.wait(self._interval)

    def write(self) -> None:
        """Writes the peaks so far to ``keep``."""
        with open(self._keep, "w", encoding="utf-8") as f:
            json.dump(self.snapshot(), f, indent=1)
        self._kept = time.monotonic()

    def snapshot(self) -> Dict[str, Dict[str, float]]:
        """Returns a copy of the peaks so far."""
        with self._lock:
            return {key: dict(peak) for key, peak in self.peaks.items()}

    def stop(self) -> Dict[str, Dict[str, float]]:
        """Stops sampling and returns the peaks."""
        self._stop.set()
        self._thread.join()
        if self._keep:
            self.write()
        return self.peaks


def run_measured(
    cmd: List[str],
    log_path: str,
    on_line: Optional[Callable[[str, TreeSampler], None]] = None,
    keep_peaks: str = "",
) -> Dict[str, float]:
    """Runs ``cmd`` with its output in ``log_path``; returns wall seconds, exit code and the tree's memory peaks.

    With ``on_line``, the child's output is read line by line and each line is passed to
    ``on_line(line, sampler)``, which may switch the sampler's phase; the peaks of every phase are
    returned under ``"phases"``. With ``keep_peaks``, the peaks so far are also written there every
    30 seconds (see :class:`TreeSampler`).
    """
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        if on_line is None:
            child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            sampler = TreeSampler(child.pid, keep=keep_peaks)
        else:
            child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
            sampler = TreeSampler(child.pid, keep=keep_peaks)
            for line in child.stdout:
                log.write(line)
                log.flush()
                on_line(line, sampler)
        code = child.wait()
    peaks = sampler.stop()
    out = {"seconds": time.monotonic() - started, "exit_code": code, **peaks.pop(TREE)}
    if on_line is not None:
        out["phases"] = peaks
    return out
