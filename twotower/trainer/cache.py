"""Where the trainer keeps transformed examples between epochs: in memory when they fit, else in a local file.

Every epoch (and the count, table and validation passes) reads the same transformed examples, so
they are parsed and transformed once and cached. They are cached as parsed, in batches of
``data.PARSE_BATCH``, which costs the tensors' own bytes (an unbatched cache pays per example
and tensor). At the full H&M size (about 30M training examples with a 50-item history, about
0.7 KB each) that is over 20 GB, more than a 24 GB machine can spare, so ``trainer.cache: auto``
(the default) counts the examples when the files are big enough to matter and puts the cache in a
file under the system's temporary directory when the estimate exceeds ``MEMORY_FRACTION`` of the
memory available. ``memory`` and ``disk`` force one or the other.

A file cache lives in a directory named after the trainer's process id and is deleted when the
process exits; a trainer that is killed cannot delete its own, so the next disk cache first deletes
those of processes that no longer run, and refuses to start a cache the disk has no room for.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import re
import shutil
import tempfile
from typing import Sequence

import numpy as np
import psutil
import tensorflow as tf

from twotower.config import CACHE_MODES
from twotower.trainer import data

MEMORY_FRACTION = 0.4  # of the memory available when training starts
# Transformed bytes per gzipped byte stay well below this for tf.Examples (their gzip ratio is 3-10 and
# the dense history pads short lists), so files this much smaller than the budget are cached in memory
# without counting them.
MAX_EXPANSION = 40
CACHE_PREFIX = "twotower-cache-"
ORPHAN = re.compile(rf"^{CACHE_PREFIX}[a-z]+-(\d+)-")  # {prefix}{split}-{pid}-{random}
DISK_HEADROOM = 1.1  # the estimate is from the first parse batch: leave room for longer histories


@dataclasses.dataclass(frozen=True)
class CachePlan:
    """Where one split's transformed examples are cached and why."""

    split: str
    where: str  # "memory" | "disk"
    file: str  # "" in memory
    examples: int  # counted examples; -1 when the files were small enough not to count
    estimated_bytes: int  # -1 when not estimated
    budget_bytes: int

    def describe(self) -> str:
        size = f"{self.examples:,} examples, about {self.estimated_bytes / 2**30:.1f} GB" if self.examples >= 0 else ""
        place = f"on disk in {self.file}" if self.where == "disk" else "in memory"
        budget = f"budget {self.budget_bytes / 2**30:.1f} GB"
        return f"caching the transformed {self.split} examples {place} ({size or 'small files'}; {budget})"


def bytes_per_example(batches: tf.data.Dataset) -> float:
    """Returns the transformed bytes per example of the first parse batch of ``batches``."""
    first = next(iter(batches.take(1)))
    n = next(iter(first.values())).shape[0]
    return sum(t.numpy().nbytes for t in first.values()) / max(n, 1)


def count_examples(patterns: Sequence[str]) -> int:
    """Returns the number of records in the gzipped TFRecord files matching ``patterns`` (decompressed, not parsed)."""
    records = tf.data.TFRecordDataset(data.files_of(patterns), compression_type="GZIP")
    return int(records.reduce(np.int64(0), lambda n, _: n + 1))


def plan_cache(mode: str, split: str, patterns: Sequence[str], batches: tf.data.Dataset) -> CachePlan:
    """Decides where ``split``'s transformed ``batches`` (read from ``patterns``) are cached in ``mode``."""
    if mode not in CACHE_MODES:
        raise ValueError(f"trainer.cache must be one of {CACHE_MODES}, got {mode!r}")
    budget = int(psutil.virtual_memory().available * MEMORY_FRACTION)
    examples, estimate = -1, -1
    where = "disk" if mode == "disk" else "memory"
    if mode == "auto":
        compressed = sum(tf.io.gfile.stat(f).length for f in data.files_of(patterns))
        if compressed * MAX_EXPANSION > budget:
            examples = count_examples(patterns)
            estimate = int(examples * bytes_per_example(batches))
            where = "disk" if estimate > budget else "memory"
    file = ""
    if where == "disk":
        remove_orphans(tempfile.gettempdir())
        check_room(tempfile.gettempdir(), split, estimate)
        directory = tempfile.mkdtemp(prefix=f"{CACHE_PREFIX}{split}-{os.getpid()}-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        file = f"{directory}/{split}"
    return CachePlan(split, where, file, examples, estimate, budget)


def remove_orphans(parent: str) -> None:
    """Deletes the file caches under ``parent`` left by trainers that no longer run (killed ones)."""
    for name in os.listdir(parent):
        match = ORPHAN.match(name)
        if match and not psutil.pid_exists(int(match.group(1))):
            logging.info("deleting %s, the cache of a trainer (pid %s) that no longer runs", name, match.group(1))
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def check_room(parent: str, split: str, estimated_bytes: int) -> None:
    """Raises when ``parent``'s disk has not the room for ``estimated_bytes`` (-1: not estimated) of cache."""
    free = shutil.disk_usage(parent).free
    if estimated_bytes > 0 and estimated_bytes * DISK_HEADROOM > free:
        raise OSError(
            f"the trainer's {split} cache needs about {estimated_bytes / 2**30:.1f} GB on disk in {parent}, which "
            f"has {free / 2**30:.1f} GB free: point TMPDIR at a bigger disk, or set trainer.cache: memory"
        )


def cached(batches: tf.data.Dataset, plan: CachePlan) -> tf.data.Dataset:
    """Returns ``batches`` (parse batches) cached as ``plan`` says.

    A file cache is filled here, in one full pass: a file cache whose first pass stops early (a
    peek at the first examples) is left locked and unusable.
    """
    logging.info(plan.describe())
    batches = batches.cache(plan.file)
    if plan.where == "disk":
        batches.reduce(np.int64(0), lambda n, _: n + 1)
    return batches
