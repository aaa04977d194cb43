"""Reading CSV files in byte-range chunks that keep every row's line number.

A file is cut into chunks of about ``chunk_bytes`` that end on a line break,
and each chunk knows the line number of its first line, so chunks can be read
by different Beam workers and every row still reports ``file:line``. One line
is one row: a quoted value that spans lines is reported as malformed rather
than silently merged. Blank lines are not rows.

A gzip file (``.csv.gz``, or gzip bytes whatever the name) is read as one chunk,
decompressed as it streams. The profile's ``data.delimiter`` (one character, or
a separator like MovieLens' ``::`` that is split on as it is, without quoting)
and ``data.encoding`` make the ``Dialect``. A header that repeats a column name,
binary content, or lines ending in a lone CR fail with the file's name. Every
value quoted in a message is cut to ``QUOTE_LIMIT`` characters (``quote``).
"""

from __future__ import annotations

import calendar
import codecs
import collections
import csv
import dataclasses
import datetime
import gzip
from typing import Any, BinaryIO, Dict, Iterable, Iterator, List, Optional, Tuple

import tensorflow as tf

from twotower.errors import DataError

DEFAULT_CHUNK_BYTES = 32 << 20
GZIP_MAGIC = b"\x1f\x8b"
QUOTE_LIMIT = 200  # characters of a value shown in a message or report
HEADER_LIMIT = 1 << 20  # a header line longer than this is not a header


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """Returns ``repr(value)`` for a message, cut to ``limit`` characters with the full length noted."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, (str, bytes, list, tuple)) else len(text)
    unit = "items" if isinstance(value, (list, tuple)) else "characters"
    return f"{text[:limit]}... ({size:,} {unit} in all)"


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """Returns ``text`` cut to ``limit`` characters with its full length noted."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters in all)"


@dataclasses.dataclass(frozen=True)
class Dialect:
    """How a profile's CSV files are written: ``data.delimiter`` and ``data.encoding``."""

    delimiter: str = ","
    encoding: str = "utf-8"

    def decode(self, raw: bytes) -> str:
        """Returns the text of a line; raises UnicodeDecodeError."""
        return raw.decode(self.encoding)

    def split(self, text: str) -> List[str]:
        """Returns the fields of one line; raises csv.Error if its quoting is broken."""
        if len(self.delimiter) > 1:  # MovieLens-style '::': no quoting to honour
            return text.split(self.delimiter)
        if '"' not in text:
            return text.split(self.delimiter)
        return next(csv.reader([text], delimiter=self.delimiter, strict=True))


def is_gzip(path: str) -> bool:
    """True if ``path`` starts with gzip's magic bytes (``.csv.gz``, or a gzip file named ``.csv``)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def _open(path: str) -> BinaryIO:
    raw = tf.io.gfile.GFile(path, "rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Bytes ``[start, end)`` of ``path``: lines ``first_line .. first_line + lines - 1`` (the header is line 1)."""

    path: str
    start: int
    end: int
    first_line: int
    lines: int
    index: int = 0  # position among the file's chunks
    gzip: bool = False  # the whole file, decompressed as it is read (start and end are 0)


def read_header(path: str, dialect: Dialect = Dialect()) -> List[str]:
    """Returns the column names in the first line of CSV file ``path``; raises DataError naming the file."""
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path}: file not found")
    try:
        with _open(path) as f:
            head = f.read(HEADER_LIMIT)
    except (OSError, EOFError) as e:  # a truncated or corrupt gzip file
        raise DataError(f"{path}: cannot be read as gzip ({e})") from None
    first = head.split(b"\n", 1)[0]
    if not first.strip():
        raise DataError(f"{path}: file is empty (expected a header line)")
    if b"\x00" in first or first.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise DataError(f"{path}: not a CSV text file (binary content; an Excel or zip file?): save it as CSV")
    if b"\r" in first.rstrip(b"\r"):
        raise DataError(f"{path}: lines end with a lone CR (\\r); convert them to LF or CRLF (e.g. tr '\\r' '\\n')")
    if b"\n" not in head and len(head) == HEADER_LIMIT:
        raise DataError(f"{path}: no line break in the first {HEADER_LIMIT:,} bytes (expected a header line)")
    encoding = "utf-8-sig" if codecs.lookup(dialect.encoding).name == "utf-8" else dialect.encoding
    try:
        text = first.rstrip(b"\r").decode(encoding)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: header is not {dialect.encoding} text at byte {e.start} (data.encoding)") from None
    try:
        header = Dialect(dialect.delimiter, encoding).split(text)
    except csv.Error as e:
        raise DataError(f"{path}: header line is not valid CSV ({e})") from None
    repeated = sorted(name for name, n in collections.Counter(header).items() if n > 1)
    if repeated:
        raise DataError(f"{path}: the header repeats column name(s) {repeated}: each column needs its own name")
    return header


def require_columns(path: str, header: List[str], columns: Iterable[str]) -> None:
    """Raises DataError naming ``path`` and every column the profile needs but the file lacks."""
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the header has {quote(header)}")


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
    if is_gzip(path):
        with _open(path) as f:
            count = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
        return [Chunk(path, 0, 0, 2, count, 0, gzip=True)]
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
    if chunk.gzip:
        with _open(chunk.path) as f:
            f.readline()  # the header
            for offset, raw in enumerate(f):
                raw = raw.rstrip(b"\r\n")
                if raw:
                    yield chunk.first_line + offset, raw
        return
    with tf.io.gfile.GFile(chunk.path, "rb") as f:
        f.seek(chunk.start)
        block = f.read(chunk.end - chunk.start)
    for offset, raw in enumerate(block.split(b"\n")):
        raw = raw.rstrip(b"\r")
        if raw:
            yield chunk.first_line + offset, raw


def split_line(text: str) -> List[str]:
    """Returns the fields of one comma-separated line; raises csv.Error if its quoting is broken."""
    return Dialect().split(text)


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
