"""The users and items files: parsed rows keyed by id, with duplicate ids resolved.

Both tables are grouped by id, which catches conflicting duplicate ids, and reach the
interactions as dictionary side inputs, already encoded as tf.Example features, so memory
grows with the catalogue and the customer base, not with the interactions.
"""

from __future__ import annotations

import collections
import os
from typing import Any, Dict, Iterable, Iterator, List, Tuple

import apache_beam as beam

from twotower.config import Profile
from twotower.errors import DataError
from twotower.ingest import encode, rows
from twotower.ingest.csv_source import Chunk, read_header, read_lines, require_columns

QUARANTINE = "quarantine"
COUNTS = "counts"


def quarantine_entry(spec: rows.TableSpec, line: int, raw: bytes, reject: rows.Reject) -> Dict[str, Any]:
    """Returns the quarantine entry ``{file, line, kind, reason, row}`` of a rejected line (row cut to 2,000 chars)."""
    return {
        "file": spec.name,
        "line": line,
        "kind": reject.kind,
        "reason": reject.reason,
        "row": raw.decode(spec.dialect.encoding, "replace")[:2000],
    }


class ParseTable(beam.DoFn):
    """Users/items chunk -> (id, (line, fingerprint, record, raw)); rejects to quarantine; counts per chunk."""

    def __init__(self, spec: rows.TableSpec):
        self._spec = spec

    def setup(self) -> None:
        self._parse = rows.RowParser(self._spec)

    def process(self, chunk: Chunk) -> Iterator[Any]:
        counts: collections.Counter = collections.Counter()
        key = self._spec.ids[0]
        for line, raw in read_lines(chunk):
            counts[(self._spec.name, "read")] += 1
            parsed = self._parse(raw)
            if isinstance(parsed, rows.Reject):
                counts[(self._spec.name, "quarantined")] += 1
                counts[(self._spec.name, "kind:" + parsed.kind)] += 1
                yield beam.pvalue.TaggedOutput(QUARANTINE, quarantine_entry(self._spec, line, raw, parsed))
            else:
                yield parsed[key], (line, rows.fingerprint(raw), parsed, raw)
        yield beam.pvalue.TaggedOutput(COUNTS, counts)


def resolve_ids(keyed: Tuple[str, Iterable[Tuple[int, int, Any, bytes]]], spec: rows.TableSpec) -> Iterator[Any]:
    """Keeps the first row of an id; an identical later row is a duplicate, a different one is quarantined.

    Yields (id, the row's other columns as encoded tf.Example features) for the first row.
    """
    key, entries = keyed
    first, *others = sorted(entries, key=lambda e: e[0])
    counts = collections.Counter({(spec.name, "accepted"): 1})
    for line, print_, _, raw in others:
        if print_ == first[1]:
            counts[(spec.name, "duplicates")] += 1
        else:
            counts[(spec.name, "quarantined")] += 1
            counts[(spec.name, "kind:" + rows.DUPLICATE_ID)] += 1
            reject = rows.Reject(rows.DUPLICATE_ID, f"duplicate {spec.ids[0]} {key!r} (first at line {first[0]})")
            yield beam.pvalue.TaggedOutput(QUARANTINE, quarantine_entry(spec, line, raw, reject))
    yield key, encode.encode_features({c: v for c, v in first[2].items() if c != spec.ids[0]})
    yield beam.pvalue.TaggedOutput(COUNTS, counts)


def check_inputs(input_base: str, profile: Profile) -> Dict[str, List[str]]:
    """Returns {file name: header}; raises DataError naming a missing file or a column the profile needs."""
    if not os.path.isdir(input_base) and "://" not in input_base:
        raise DataError(f"{input_base}: data directory not found")
    headers = {}
    for name, columns in rows.profile_columns(profile).items():
        path = os.path.join(input_base, name)
        headers[name] = read_header(path, rows.dialect_of(profile))
        require_columns(path, headers[name], columns)
    return headers
