"""One CSV row -> a checked record, or the reason it goes to quarantine.

Checks, in order: the line parses as CSV; it has as many fields as the header;
id columns are not empty; numeric columns parse as finite numbers; the
timestamp parses with the profile's format; numbers and timestamps lie inside
the contract's ranges (the schema's float_domain / int_domain); a dense vector
cell holds exactly its feature's ``dim`` finite numbers, space-separated.
Unknown users and items are checked later, at the join.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

from twotower.config import Profile
from twotower.ingest.csv_source import Dialect, TimestampParser, quote, shorten

Record = Dict[str, Any]
Range = Tuple[Optional[float], Optional[float]]

# Quarantine reason kinds (the ``kind`` field of a quarantine entry).
NOT_UTF8 = "not_utf8"
MALFORMED = "malformed_csv"
FIELD_COUNT = "field_count"
EMPTY_ID = "empty_id"
NOT_A_NUMBER = "not_a_number"
BAD_TIMESTAMP = "bad_timestamp"
OUT_OF_RANGE = "out_of_range"
UNKNOWN_USER = "unknown_user"
UNKNOWN_ITEM = "unknown_item"
DUPLICATE_ID = "duplicate_id"
BAD_VECTOR = "bad_vector"


@dataclasses.dataclass(frozen=True)
class Reject:
    """Why a row was quarantined: a ``kind`` from the constants above and a sentence naming the field."""

    kind: str
    reason: str


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """How to read one of a profile's CSV files."""

    name: str  # file name, as reports show it
    header: Tuple[str, ...]
    columns: Tuple[str, ...]  # the columns kept in the record
    ids: Tuple[str, ...]  # columns that must not be empty
    numeric: Tuple[str, ...]
    ranges: Mapping[str, Range]
    timestamp: str = ""
    timestamp_format: str = ""
    vectors: Mapping[str, int] = dataclasses.field(default_factory=dict)  # dense vector column -> length
    dialect: Dialect = Dialect()  # data.delimiter and data.encoding


def profile_columns(profile: Profile) -> Dict[str, Tuple[str, ...]]:
    """Returns {file name: the columns read from it} for the users, items and interactions files."""
    d = profile.data
    names = lambda source: tuple(f.name for f in profile.columns_of(source))  # noqa: E731
    return {
        d.users: (d.user_id,) + names("user"),
        d.items: (d.item_id, d.item_name) + names("item"),
        d.interactions: (d.user_id, d.item_id, d.timestamp) + names("interaction"),
    }


def dialect_of(profile: Profile) -> Dialect:
    """Returns the profile's CSV dialect (``data.delimiter``, ``data.encoding``)."""
    return Dialect(profile.data.delimiter, profile.data.encoding)


def table_specs(
    profile: Profile, headers: Mapping[str, Iterable[str]], ranges: Mapping[str, Range]
) -> Dict[str, TableSpec]:
    """Returns {'users', 'items', 'interactions'} -> TableSpec, given each file's header (keyed by file name)."""
    d = profile.data
    numeric = {f.name for f in profile.features if f.kind == "numeric"}
    vectors = {f.name: f.dim for f in profile.features if f.kind == "dense"}
    columns_of = profile_columns(profile)

    def spec(file: str, ids: Tuple[str, ...], **kw: str) -> TableSpec:
        columns = columns_of[file]
        return TableSpec(
            name=file,
            header=tuple(headers[file]),
            columns=columns,
            ids=ids,
            numeric=tuple(c for c in columns if c in numeric),
            ranges={c: ranges[c] for c in columns if c in ranges},
            vectors={c: vectors[c] for c in columns if c in vectors},
            dialect=dialect_of(profile),
            **kw,
        )

    return {
        "users": spec(d.users, (d.user_id,)),
        "items": spec(d.items, (d.item_id,)),
        "interactions": spec(
            d.interactions, (d.user_id, d.item_id), timestamp=d.timestamp, timestamp_format=d.timestamp_format
        ),
    }


def fingerprint(raw: bytes) -> int:
    """Returns a signed 64-bit hash of a raw line (the same in every process, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little", signed=True)


def _bound(value: float) -> str:
    return f"{value:g}" if value is not None else ""


class RowParser:
    """Callable: raw line bytes -> Record (empty cells left out) or Reject."""

    def __init__(self, spec: TableSpec):
        self._spec = spec
        self._n = len(spec.header)
        self._index = [(c, spec.header.index(c)) for c in spec.columns]
        self._ids = set(spec.ids)
        self._numeric = set(spec.numeric)
        self._ranges = dict(spec.ranges)
        self._vectors = dict(spec.vectors)
        self._parse_time = TimestampParser(spec.timestamp_format) if spec.timestamp else None

    def __call__(self, raw: bytes) -> Union[Record, Reject]:
        try:
            text = self._spec.dialect.decode(raw)
        except UnicodeDecodeError as e:
            return Reject(NOT_UTF8, f"not valid {self._spec.dialect.encoding} at byte {e.start} (data.encoding)")
        try:
            fields = self._spec.dialect.split(text)
        except csv.Error as e:
            return Reject(MALFORMED, f"malformed CSV ({e}); values spanning lines are not supported")
        if len(fields) != self._n:
            return Reject(FIELD_COUNT, f"has {len(fields)} fields, the header has {self._n}")
        record: Record = {}
        for column, i in self._index:
            value = fields[i]
            if value == "":
                if column in self._ids:
                    return Reject(EMPTY_ID, f"column '{column}' is empty")
                continue
            if column == self._spec.timestamp:
                seconds = self._parse_time(value)
                if seconds is None:
                    return Reject(
                        BAD_TIMESTAMP,
                        f"column '{column}': cannot parse {quote(value)} as {self._spec.timestamp_format!r}",
                    )
                record[column] = number = seconds
            elif column in self._numeric:
                try:
                    number = float(value)
                except ValueError:
                    number = math.nan
                if not math.isfinite(number):
                    return Reject(NOT_A_NUMBER, f"column '{column}': {quote(value)} is not a number")
                record[column] = number
            elif column in self._vectors:
                vector = parse_vector(value, self._vectors[column])
                if isinstance(vector, str):
                    return Reject(BAD_VECTOR, f"column '{column}': {vector}")
                record[column] = vector
                continue
            else:
                record[column] = value
                continue
            lo, hi = self._ranges.get(column, (None, None))
            if (lo is not None and number < lo) or (hi is not None and number > hi):
                return Reject(
                    OUT_OF_RANGE, f"column '{column}': {shorten(value)} is outside [{_bound(lo)}, {_bound(hi)}]"
                )
        return record


def parse_vector(cell: str, dim: int) -> Union[Tuple[float, ...], str]:
    """Returns the ``dim`` floats of a space-separated vector cell, or why it is not one."""
    parts = cell.split()
    if len(parts) != dim:
        return f"has {len(parts)} values, the profile's dim is {dim}"
    vector = []
    for part in parts:
        try:
            number = float(part)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            return f"{quote(part)} is not a finite number"
        vector.append(number)
    return tuple(vector)
