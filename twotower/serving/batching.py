"""Request batching: concurrent requests to the same signature run as one model call.

Batch threads pull work, as TF Serving's batch scheduler does: a thread takes the
oldest queued request and the requests queued behind it for the same signature,
up to ``max_batch_size`` rows, waiting at most ``timeout_s`` after the oldest
arrived for the batch to fill (0: not at all). While every thread is busy,
requests pile up and the next batch takes them at once, so batches grow with load
by themselves and a lone request never waits.
A request larger than ``max_batch_size`` rows runs alone; ``max_batch_size=1``
turns batching off.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import threading
import time
from typing import Callable, Deque, Dict, Hashable, List, Optional

import numpy as np

log = logging.getLogger(__name__)

Columns = Dict[str, list]
Outputs = Dict[str, np.ndarray]
RunFn = Callable[[Columns], Outputs]


@dataclasses.dataclass
class _Task:
    key: Hashable
    run: RunFn
    columns: Columns
    rows: int
    future: concurrent.futures.Future
    enqueued: float


class Batcher:
    """Runs ``run(columns)`` for queued requests, merging requests with the same key."""

    def __init__(
        self,
        max_batch_size: int,
        timeout_s: float,
        threads: int = 1,
        on_batch: Optional[Callable[[Hashable, int], None]] = None,
    ):
        """``on_batch(key, rows)`` is called before every model call (for metrics)."""
        if max_batch_size < 1 or threads < 1 or timeout_s < 0:
            raise ValueError(
                f"batching: max batch size ({max_batch_size}) and threads ({threads}) must be >= 1, "
                f"timeout ({timeout_s}) >= 0"
            )
        self.max_batch_size, self.timeout_s = max_batch_size, timeout_s
        self._on_batch = on_batch
        self._queue: Deque[_Task] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    def submit(self, key: Hashable, run: RunFn, columns: Columns, rows: int) -> concurrent.futures.Future:
        """Queues one request of ``rows`` rows; the future gets its rows of every output ``[rows, ...]``.

        ``columns`` maps each input name to a list of ``rows`` values; requests with
        the same ``key`` must have the same input names and the same ``run``.
        """
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("batcher is closed")
            self._queue.append(_Task(key, run, columns, rows, future, time.monotonic()))
            self._cond.notify()
        return future

    def close(self) -> None:
        """Runs what is queued, then stops the batch threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()

    def _rows_queued(self, key: Hashable) -> int:
        return sum(t.rows for t in self._queue if t.key == key)

    def _take(self) -> Optional[List[_Task]]:
        """Waits for a batch and removes it from the queue; None once closed and drained."""
        with self._cond:
            while True:
                while not self._queue:
                    if self._closed:
                        return None
                    self._cond.wait()
                head = self._queue[0]
                deadline = head.enqueued + self.timeout_s
                now = time.monotonic()
                if self._rows_queued(head.key) < self.max_batch_size and now < deadline and not self._closed:
                    self._cond.wait(deadline - now)
                    continue  # another thread may have taken the head meanwhile
                batch, rows, keep = [], 0, collections.deque()
                for task in self._queue:
                    if task.key == head.key and (not batch or rows + task.rows <= self.max_batch_size):
                        batch.append(task)
                        rows += task.rows
                    else:
                        keep.append(task)
                self._queue = keep
                return batch

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._run(batch)

    def _run(self, batch: List[_Task]) -> None:
        batch = [t for t in batch if t.future.set_running_or_notify_cancel()]
        if not batch:
            return
        columns: Columns = {name: [] for name in batch[0].columns}
        for task in batch:
            for name, values in task.columns.items():
                columns[name].extend(values)
        rows = sum(t.rows for t in batch)
        if self._on_batch is not None:
            self._on_batch(batch[0].key, rows)
        try:
            outputs = batch[0].run(columns)
            short = [name for name, value in outputs.items() if len(value) != rows]
            if short:
                raise RuntimeError(f"model outputs {short} do not have one row per input row ({rows})")
        except Exception as e:  # handed to the waiting requests
            if len(batch) == 1:
                batch[0].future.set_exception(e)
                return
            # one bad request must not fail the others: run them one by one
            log.debug("batch of %d requests failed (%s); retrying them one at a time", len(batch), e)
            for task in batch:
                self._run_alone(task)
            return
        start = 0
        for task in batch:
            task.future.set_result({name: value[start : start + task.rows] for name, value in outputs.items()})
            start += task.rows

    def _run_alone(self, task: _Task) -> None:
        if self._on_batch is not None:
            self._on_batch(task.key, task.rows)
        try:
            task.future.set_result(task.run(task.columns))
        except Exception as e:  # handed to the waiting request
            task.future.set_exception(e)
