"""The ingestion Beam graph: three CSV files -> joined, time-split tf.Examples + quarantine + report.

Memory does not grow with the number of interactions: no interaction passes a
GroupByKey. The users and items tables (grouped by id to catch duplicate ids)
reach every worker as dictionary side inputs, so memory grows with the
catalogue, and interactions stream through in file chunks:

1. Scan: each chunk of the interactions file yields a 64-bit fingerprint and
   the line number of each line, partitioned by the fingerprint's top bits into
   ``DEDUP_BUCKETS`` buckets, and its newest timestamp. Grouping by bucket finds
   exact duplicate lines one bucket at a time, so the only state that grows with
   the rows is 16 bytes per row (held by the runner's GroupByKey; on Dataflow it
   spills to disk); the newest timestamp gives the split boundaries.
2. Ingest: each chunk is read again; duplicates are skipped, rows are checked
   (rows.py) and joined, and every row ends as exactly one of: an example in
   train / eval / test, a quarantine entry ``{file, line, kind, reason, row}``,
   or a removed duplicate. Per-chunk counts make the accounting report.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime
import math
import os
import sys
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import apache_beam as beam
import numpy as np

from twotower.components.example_gen import rows
from twotower.components.example_gen.csv_source import (
    DEFAULT_CHUNK_BYTES,
    Chunk,
    DataError,
    TimestampParser,
    plan_chunks,
    read_header,
    read_lines,
    require_columns,
    split_line,
)
from twotower.config import Profile, SplitConfig

SECONDS_PER_DAY = 86400
DEDUP_BUCKETS = 64
NEWEST = "newest"
TABLES = ("users", "items", "interactions")
QUARANTINE = "quarantine"
BY_USER = "by_user"
COUNTS = "counts"
SPLIT_STATS = "split_stats"


@dataclasses.dataclass(frozen=True)
class Boundaries:
    """First second (UTC) of the eval split and of the test split (None: no test split)."""

    eval_start: int
    test_start: Optional[int]


@dataclasses.dataclass
class Ingestion:
    """The PCollections an ingestion graph produces."""

    splits: Dict[str, beam.PCollection]  # split name -> serialized tf.Examples
    quarantine: beam.PCollection  # dicts {file, line, kind, reason, row}
    report: beam.PCollection  # one dict: counts per file, splits, boundaries


def split_names(profile: Profile) -> List[str]:
    """Returns the output splits: train, eval, [test,] catalog."""
    s = profile.split
    has_test = s.mode == "per_user" or s.test_days or s.test_start
    return ["train", "eval"] + (["test"] if has_test else []) + ["catalog"]


def _midnight(date: str) -> int:
    return int(datetime.datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc).timestamp())


def split_boundaries(split: SplitConfig, newest: Optional[int]) -> Boundaries:
    """Returns the boundaries from fixed dates or, counted back in whole days, from the ``newest`` timestamp."""
    after_last = (newest // SECONDS_PER_DAY + 1) * SECONDS_PER_DAY if newest is not None else 0
    test_start: Optional[int] = None
    if split.test_start:
        test_start = _midnight(split.test_start)
    elif split.test_days:
        test_start = after_last - split.test_days * SECONDS_PER_DAY
    if split.eval_start:
        eval_start = _midnight(split.eval_start)
    else:
        eval_start = (test_start if test_start is not None else after_last) - split.eval_days * SECONDS_PER_DAY
    return Boundaries(eval_start, test_start)


def split_of(timestamp: int, b: Boundaries) -> str:
    """Returns 'train', 'eval' or 'test' for an interaction at ``timestamp``."""
    if b.test_start is not None and timestamp >= b.test_start:
        return "test"
    return "eval" if timestamp >= b.eval_start else "train"


def _day(seconds: Optional[int]) -> Optional[str]:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d")


def _quarantine(spec: rows.TableSpec, line: int, raw: bytes, reject: rows.Reject) -> Dict[str, Any]:
    return {
        "file": spec.name,
        "line": line,
        "kind": reject.kind,
        "reason": reject.reason,
        "row": raw.decode("utf-8", "replace")[:2000],
    }


class _ScanInteractions(beam.DoFn):
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
                seconds = self._parse(split_line(raw.decode("utf-8"))[self._column])
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


def _newest(values: Iterable[Optional[int]]) -> Optional[int]:
    present = [v for v in values if v is not None]
    return max(present) if present else None


class _ParseTable(beam.DoFn):
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
                yield beam.pvalue.TaggedOutput(QUARANTINE, _quarantine(self._spec, line, raw, parsed))
            else:
                yield parsed[key], (line, rows.fingerprint(raw), parsed, raw)
        yield beam.pvalue.TaggedOutput(COUNTS, counts)


def _resolve_ids(keyed: Tuple[str, Iterable[Tuple[int, int, Any, bytes]]], spec: rows.TableSpec) -> Iterator[Any]:
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
            yield beam.pvalue.TaggedOutput(QUARANTINE, _quarantine(spec, line, raw, reject))
    yield key, rows.encode_features({c: v for c, v in first[2].items() if c != spec.ids[0]})
    yield beam.pvalue.TaggedOutput(COUNTS, counts)


class _IngestInteractions(beam.DoFn):
    """Interactions chunk -> examples tagged by split, quarantine entries, per-chunk counts and split stats."""

    def __init__(
        self,
        spec: rows.TableSpec,
        user_id: str,
        item_id: str,
        users_file: str,
        items_file: str,
        chunks: int,
        per_user: bool = False,
    ):
        """``per_user``: emit (user, (timestamp, line, example)) to BY_USER instead of splitting by date."""
        self._spec, self._user_id, self._item_id = spec, user_id, item_id
        self._users_file, self._items_file, self._chunks = users_file, items_file, chunks
        self._per_user = per_user

    def setup(self) -> None:
        self._parse = rows.RowParser(self._spec)
        self._ints = (self._spec.timestamp,)

    def process(
        self,
        chunk: Chunk,
        users: Mapping[str, bytes],
        items: Mapping[str, bytes],
        duplicates: np.ndarray,
        boundaries: Boundaries,
    ) -> Iterator[Any]:
        name = self._spec.name
        counts: collections.Counter = collections.Counter()
        stats: Dict[str, List[int]] = {}
        lo, hi = np.searchsorted(duplicates, [chunk.first_line, chunk.first_line + chunk.lines])
        skip = set(duplicates[lo:hi].tolist())
        for line, raw in read_lines(chunk):
            counts[(name, "read")] += 1
            if line in skip:
                counts[(name, "duplicates")] += 1
                continue
            record = self._parse(raw)
            if not isinstance(record, rows.Reject):
                user = users.get(record[self._user_id])
                item = items.get(record[self._item_id])
                if user is None:
                    record = rows.Reject(
                        rows.UNKNOWN_USER,
                        f"{self._user_id} {record[self._user_id]!r} is not in {self._users_file} (or was quarantined)",
                    )
                elif item is None:
                    record = rows.Reject(
                        rows.UNKNOWN_ITEM,
                        f"{self._item_id} {record[self._item_id]!r} is not in {self._items_file} (or was quarantined)",
                    )
            if isinstance(record, rows.Reject):
                counts[(name, "quarantined")] += 1
                counts[(name, "kind:" + record.kind)] += 1
                yield beam.pvalue.TaggedOutput(QUARANTINE, _quarantine(self._spec, line, raw, record))
                continue
            counts[(name, "accepted")] += 1
            seconds = record[self._spec.timestamp]
            example = rows.wrap_example(rows.encode_features(record, self._ints) + user + item)
            if self._per_user:
                yield beam.pvalue.TaggedOutput(BY_USER, (record[self._user_id], (seconds, line, example)))
                continue
            split = split_of(seconds, boundaries)
            _add_stat(stats, split, seconds)
            yield beam.pvalue.TaggedOutput(split, example)
        yield beam.pvalue.TaggedOutput(COUNTS, counts)
        yield beam.pvalue.TaggedOutput(SPLIT_STATS, stats)
        if self._chunks > 1:  # progress on long files, from whichever worker read the chunk
            sys.stderr.write(f"  {name}: chunk {chunk.index + 1}/{self._chunks} done ({chunk.lines:,} rows)\n")


def _add_stat(stats: Dict[str, List[int]], split: str, seconds: int) -> None:
    s = stats.setdefault(split, [0, seconds, seconds])
    s[0], s[1], s[2] = s[0] + 1, min(s[1], seconds), max(s[2], seconds)


def split_per_user(
    keyed: Tuple[str, Iterable[Tuple[int, int, bytes]]], test_fraction: float, eval_fraction: float
) -> Iterator[Any]:
    """Splits one user's interactions by time: the last ``test_fraction`` test, the ``eval_fraction`` before eval.

    Counts round down (a user with fewer than 1 / fraction interactions has none in that split);
    ties in time keep file order. Yields examples tagged by split, then the user's split stats.
    """
    _, entries = keyed
    ordered = sorted(entries, key=lambda e: (e[0], e[1]))
    n = len(ordered)
    n_test, n_eval = int(n * test_fraction), int(n * eval_fraction)
    stats: Dict[str, List[int]] = {}
    for i, (seconds, _, example) in enumerate(ordered):
        split = "test" if i >= n - n_test else ("eval" if i >= n - n_test - n_eval else "train")
        _add_stat(stats, split, seconds)
        yield beam.pvalue.TaggedOutput(split, example)
    yield beam.pvalue.TaggedOutput(SPLIT_STATS, stats)


def _merge_split_stats(parts: Iterable[Dict[str, List[int]]]) -> Dict[str, List[int]]:
    merged: Dict[str, List[int]] = {}
    for part in parts:
        for split, (n, lo, hi) in part.items():
            m = merged.setdefault(split, [0, lo, hi])
            merged[split] = [m[0] + n, min(m[1], lo), max(m[2], hi)]
    return merged


def _sum_counts(parts: Iterable[collections.Counter]) -> collections.Counter:
    total: collections.Counter = collections.Counter()
    for part in parts:
        total.update(part)
    return total


def make_report(
    counts: Mapping[Tuple[str, str], int],
    split_stats: Mapping[str, List[int]],
    boundaries: Boundaries,
    files: Iterable[str],
    splits: Iterable[str],
    catalog_size: int,
    split_config: Optional[SplitConfig] = None,
) -> Dict[str, Any]:
    """Returns the ingestion report: per-file accounting, totals, and per-split sizes and date ranges."""
    per_file = {}
    for name in files:
        entry = {key: int(counts.get((name, key), 0)) for key in ("read", "accepted", "quarantined", "duplicates")}
        kinds = sorted((k[5:], int(v)) for (f, k), v in counts.items() if f == name and k.startswith("kind:"))
        entry["reasons"] = dict(kinds)
        per_file[name] = entry
    split_report = {}
    for split in splits:
        if split == "catalog":
            split_report[split] = {"examples": catalog_size}
            continue
        n, lo, hi = split_stats.get(split, [0, None, None])
        split_report[split] = {"examples": n, "first": _day(lo), "last": _day(hi)}
    total = lambda key: sum(f[key] for f in per_file.values())  # noqa: E731
    return {
        "rows_read": total("read"),
        "rows_accepted": total("accepted"),
        "rows_quarantined": total("quarantined"),
        "duplicates_removed": total("duplicates"),
        "files": per_file,
        "splits": split_report,
        "boundaries": (
            {
                "mode": "per_user",
                "eval_fraction": split_config.eval_fraction,
                "test_fraction": split_config.test_fraction,
            }
            if split_config is not None and split_config.mode == "per_user"
            else {"eval_start": _day(boundaries.eval_start), "test_start": _day(boundaries.test_start)}
        ),
    }


def check_inputs(input_base: str, profile: Profile) -> Dict[str, List[str]]:
    """Returns {file name: header}; raises DataError naming a missing file or a column the profile needs."""
    if not os.path.isdir(input_base) and "://" not in input_base:
        raise DataError(f"{input_base}: data directory not found")
    headers = {}
    for name, columns in rows.profile_columns(profile).items():
        path = os.path.join(input_base, name)
        headers[name] = read_header(path)
        require_columns(path, headers[name], columns)
    return headers


def build_ingestion(
    pipeline: beam.Pipeline,
    input_base: str,
    profile: Profile,
    ranges: Optional[Mapping[str, rows.Range]] = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Ingestion:
    """Adds the ingestion graph (module docstring) to ``pipeline``; ``ranges`` bound numeric columns."""
    headers = check_inputs(input_base, profile)
    specs = rows.table_specs(profile, headers, ranges or {})
    chunks = {t: plan_chunks(os.path.join(input_base, specs[t].name), chunk_bytes) for t in TABLES}
    names = split_names(profile)
    tables, quarantined, counts = {}, [], []
    for table in ("users", "items"):
        parsed = (
            pipeline
            | f"{table}Chunks" >> beam.Create(chunks[table])
            | f"Parse{table}" >> beam.ParDo(_ParseTable(specs[table])).with_outputs(QUARANTINE, COUNTS, main="rows")
        )
        resolved = (
            parsed.rows
            | f"Group{table}ById" >> beam.GroupByKey()
            | f"Resolve{table}" >> beam.FlatMap(_resolve_ids, specs[table]).with_outputs(QUARANTINE, COUNTS, main="ok")
        )
        tables[table] = resolved.ok
        quarantined += [parsed[QUARANTINE], resolved[QUARANTINE]]
        counts += [parsed[COUNTS], resolved[COUNTS]]

    inter_chunks = pipeline | "InteractionChunks" >> beam.Create(chunks["interactions"])
    scan = inter_chunks | "Scan" >> beam.ParDo(_ScanInteractions(specs["interactions"])).with_outputs(
        NEWEST, main="prints"
    )
    duplicates = (
        scan.prints
        | "GroupByBucket" >> beam.GroupByKey()
        | "FindDuplicates" >> beam.Map(find_duplicates)
        | "AllDuplicates" >> beam.combiners.ToList()
        | "SortDuplicates" >> beam.Map(lambda parts: np.sort(np.concatenate([np.zeros(0, np.int64), *parts])))
    )
    boundaries = (
        scan[NEWEST]
        | "Newest" >> beam.CombineGlobally(_newest)
        | "Boundaries" >> beam.Map(lambda newest: split_boundaries(profile.split, newest))
    )
    d = profile.data
    per_user = profile.split.mode == "per_user"
    interaction_splits = [n for n in names if n != "catalog"]
    ingested = inter_chunks | "Ingest" >> beam.ParDo(
        _IngestInteractions(
            specs["interactions"], d.user_id, d.item_id, d.users, d.items, len(chunks["interactions"]), per_user
        ),
        users=beam.pvalue.AsDict(tables["users"]),
        items=beam.pvalue.AsDict(tables["items"]),
        duplicates=beam.pvalue.AsSingleton(duplicates),
        boundaries=beam.pvalue.AsSingleton(boundaries),
    ).with_outputs(QUARANTINE, COUNTS, SPLIT_STATS, BY_USER, *interaction_splits)
    quarantined.append(ingested[QUARANTINE])
    counts.append(ingested[COUNTS])
    split_source = ingested
    if per_user:
        split_source = (
            ingested[BY_USER]
            | "GroupByUser" >> beam.GroupByKey()
            | "SplitPerUser"
            >> beam.FlatMap(split_per_user, profile.split.test_fraction, profile.split.eval_fraction).with_outputs(
                SPLIT_STATS, *interaction_splits
            )
        )

    splits = {n: split_source[n] for n in interaction_splits}
    splits["catalog"] = tables["items"] | "CatalogToExample" >> beam.Map(
        lambda kv: rows.wrap_example(rows.encode_features({d.item_id: kv[0]}) + kv[1])
    )
    catalog_size = splits["catalog"] | "CatalogSize" >> beam.combiners.Count.Globally()
    split_stats = split_source[SPLIT_STATS] | "MergeSplitStats" >> beam.CombineGlobally(_merge_split_stats)
    report = (
        counts
        | "AllCounts" >> beam.Flatten()
        | "SumCounts" >> beam.CombineGlobally(_sum_counts)
        | "Report"
        >> beam.Map(
            make_report,
            split_stats=beam.pvalue.AsSingleton(split_stats),
            boundaries=beam.pvalue.AsSingleton(boundaries),
            files=[specs[t].name for t in TABLES],
            splits=names,
            catalog_size=beam.pvalue.AsSingleton(catalog_size),
            split_config=profile.split,
        )
    )
    return Ingestion(splits=splits, quarantine=quarantined | "AllQuarantine" >> beam.Flatten(), report=report)
