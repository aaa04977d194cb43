"""Reading CSV files in byte-range chunks that keep every row's line number.

A file is cut into chunks of about ``chunk_bytes`` that end on a line break,
and each chunk knows the line number of its first line, so chunks can be read
by different Beam workers and every row still reports ``file:line``. One line
is one row: a quoted value that spans lines is reported as malformed rather
than silently merged. Blank lines are not rows.
"""

from __future__ import annotations

import calendar
import csv
import dataclasses
import datetime
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import tensorflow as tf

from twotower.errors import DataError

DEFAULT_CHUNK_BYTES = 32 << 20


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Bytes ``[start, end)`` of ``path``: lines ``first_line .. first_line + lines - 1`` (the header is line 1)."""

    path: str
    start: int
    end: int
    first_line: int
    lines: int
    index: int = 0  # position among the file's chunks


def read_header(path: str) -> List[str]:
    """Returns the column names in the first line of CSV file ``path``."""
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path}: file not found")
    with tf.io.gfile.GFile(path, "rb") as f:
        first = f.readline().decode("utf-8-sig")
    if not first.strip():
        raise DataError(f"{path}: file is empty (expected a header line)")
    return next(csv.reader([first.rstrip("\r\n")]))


def require_columns(path: str, header: List[str], columns: Iterable[str]) -> None:
    """Raises DataError naming ``path`` and every column the profile needs but the file lacks."""
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the header has {header}")


def _rest_of_line(f: tf.io.gfile.GFile) -> bytes:
    """Returns the bytes up to and including the next b'\\n' (GFile.readline also stops at a lone b'\\r')."""
    parts = []
    while True:
        block = f.read(4096)
        end = block.find(b"\n")
        if end >= 0:
            f.seek(f.tell() - len(block) + end + 1)
            parts.append(block[: end + 1])
            return b"".join(parts)
        parts.append(block)
        if not block:
            return b"".join(parts)


def plan_chunks(path: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> List[Chunk]:
    """Returns the chunks of ``path`` after its header, in file order (one pass over the bytes)."""
    chunks = []
    with tf.io.gfile.GFile(path, "rb") as f:
        position = len(_rest_of_line(f))
        line = 2
        while True:
            block = f.read(chunk_bytes)
            if not block:
                break
            if not block.endswith(b"\n"):
                block += _rest_of_line(f)
            count = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
            chunks.append(Chunk(path, position, position + len(block), line, count, len(chunks)))
            position += len(block)
            line += count
    return chunks


def read_lines(chunk: Chunk) -> Iterator[Tuple[int, bytes]]:
    """Yields ``(line_number, raw_line)`` for the non-blank lines of ``chunk``, without line breaks."""
    with tf.io.gfile.GFile(chunk.path, "rb") as f:
        f.seek(chunk.start)
        block = f.read(chunk.end - chunk.start)
    for offset, raw in enumerate(block.split(b"\n")):
        raw = raw.rstrip(b"\r")
        if raw:
            yield chunk.first_line + offset, raw


def split_line(text: str) -> List[str]:
    """Returns the fields of one CSV line; raises csv.Error if its quoting is broken."""
    if '"' not in text:
        return text.split(",")
    return next(csv.reader([text], strict=True))


class TimestampParser:
    """Parses timestamps to int seconds since the epoch (UTC); remembers date strings it has seen."""

    def __init__(self, fmt: str):
        self._fmt = fmt
        self._cache: Dict[str, int] = {}

    def __call__(self, value: str) -> Optional[int]:
        """Returns the timestamp, or None if ``value`` does not match the format."""
        if self._fmt == "unix":
            try:
                return int(float(value))
            except (ValueError, OverflowError):
                return None
        seconds = self._cache.get(value)
        if seconds is None:
            try:
                parsed = datetime.datetime.strptime(value, self._fmt)
            except ValueError:
                return None
            seconds = calendar.timegm(parsed.timetuple())
            if len(self._cache) < 100_000:
                self._cache[value] = seconds
        return seconds
