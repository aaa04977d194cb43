"""Exact duplicate lines of the interactions file, found without holding the rows.

Each chunk yields a 64-bit fingerprint and the line number of each line, partitioned by
the fingerprint's top bits into ``DEDUP_BUCKETS`` buckets, and its newest timestamp.
Grouping by bucket finds exact duplicate lines one bucket at a time, so the only state
that grows with the rows is 16 bytes per row (held by the runner's GroupByKey; on
Dataflow it spills to disk); the newest timestamp gives the split boundaries.
"""

from __future__ import annotations

import csv
import math
from typing import Any, Iterable, Iterator, Optional, Tuple

import apache_beam as beam
import numpy as np

from twotower.ingest import rows
from twotower.ingest.csv_source import Chunk, TimestampParser, read_lines

DEDUP_BUCKETS = 64
NEWEST = "newest"


class ScanInteractions(beam.DoFn):
    """Chunk -> (bucket, (fingerprints int64[n], line numbers int64[n])) per bucket; NEWEST: timestamp or None.

    The newest timestamp only counts timestamps inside the contract's range.
    """

    def __init__(self, spec: rows.TableSpec):
        self._spec = spec

    def setup(self) -> None:
        self._column = self._spec.header.index(self._spec.timestamp)
        self._parse = TimestampParser(self._spec.timestamp_format)
        lo, hi = self._spec.ranges.get(self._spec.timestamp, (None, None))
        self._lo = -math.inf if lo is None else lo
        self._hi = math.inf if hi is None else hi

    def process(self, chunk: Chunk) -> Iterator[Any]:
        prints, lines, newest = [], [], None
        for line, raw in read_lines(chunk):
            prints.append(rows.fingerprint(raw))
            lines.append(line)
            try:
                seconds = self._parse(self._spec.dialect.split(self._spec.dialect.decode(raw))[self._column])
            except (UnicodeDecodeError, csv.Error, IndexError):  # a broken row is judged in the ingest pass
                seconds = None
            if seconds is not None and self._lo <= seconds <= self._hi and (newest is None or seconds > newest):
                newest = seconds
        prints_array, lines_array = np.asarray(prints, dtype=np.int64), np.asarray(lines, dtype=np.int64)
        bucket = (prints_array >> 58) & (DEDUP_BUCKETS - 1)
        for b in np.unique(bucket):
            mine = bucket == b
            yield int(b), (prints_array[mine], lines_array[mine])
        yield beam.pvalue.TaggedOutput(NEWEST, newest)


def find_duplicates(bucket: Tuple[int, Iterable[Tuple[np.ndarray, np.ndarray]]]) -> np.ndarray:
    """Returns the line numbers, in one bucket, of lines equal to an earlier line (the first copy is kept)."""
    _, parts = bucket
    parts = list(parts)
    prints = np.concatenate([p[0] for p in parts])
    lines = np.concatenate([p[1] for p in parts])
    order = np.lexsort((lines, prints))
    prints, lines = prints[order], lines[order]
    return lines[1:][prints[1:] == prints[:-1]]


def newest_of(values: Iterable[Optional[int]]) -> Optional[int]:
    present = [v for v in values if v is not None]
    return max(present) if present else None
