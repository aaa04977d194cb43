"""The ingestion Beam graph: three CSV files -> joined, time-split tf.Examples + quarantine + report.

Memory does not grow with the number of interactions: no interaction passes a
GroupByKey, unless the profile has a history feature or ``split.mode: per_user``,
which group them by user: each chunk writes its accepted interactions to one scratch
file per partition of the users (``history.UserPartitions``), and a partition's files
are read and decoded together (``history.AttachHistories``), one partition at a time
per worker. The users and
items tables (``tables``) reach every worker as dictionary side inputs, so memory
grows with the catalogue, and interactions stream through in file chunks:

1. Scan (``dedup``): fingerprints of every line find exact duplicates, and the
   newest timestamp gives the split boundaries (``splits``).
2. Ingest: each chunk is read again; duplicates are skipped, rows are checked
   (``rows``) and joined, and every row ends as exactly one of: an example in
   train / eval / test, a quarantine entry ``{file, line, kind, reason, row}``,
   or a removed duplicate. Per-chunk counts make the accounting report (``report``).
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import os
import shutil
import sys
import tempfile
from typing import Any, Dict, Iterator, List, Mapping, Optional

import apache_beam as beam
import numpy as np

from twotower.config import Profile
from twotower.ingest import encode, rows
from twotower.ingest.csv_source import DEFAULT_CHUNK_BYTES, Chunk, plan_chunks, read_lines
from twotower.ingest.dedup import NEWEST, ScanInteractions, find_duplicates, newest_of
from twotower.ingest.history import AttachHistories, UserPartitions, history_specs, pack_entry
from twotower.ingest.report import make_report, sum_counts
from twotower.ingest.splits import (
    CATALOG,
    HISTORIES,
    SPLIT_STATS,
    TABLE_SPLITS,
    Boundaries,
    add_stat,
    interaction_splits,
    merge_split_stats,
    split_boundaries,
    split_names,
    split_of,
)
from twotower.ingest.tables import COUNTS, QUARANTINE, ParseTable, check_inputs, quarantine_entry, resolve_ids

TABLES = ("users", "items", "interactions")
BY_USER = "by_user"


@dataclasses.dataclass
class Ingestion:
    """The PCollections an ingestion graph produces."""

    splits: Dict[str, beam.PCollection]  # split name -> serialized tf.Examples
    quarantine: beam.PCollection  # dicts {file, line, kind, reason, row}
    report: beam.PCollection  # one dict: counts per file, splits, boundaries


def beam_args(workers: int) -> List[str]:
    """Returns DirectRunner flags: in-memory for 0 workers, else multi-processing with ``workers``."""
    if workers <= 0:
        return ["--direct_running_mode=in_memory"]
    return ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]


class IngestInteractions(beam.DoFn):
    """Interactions chunk -> examples tagged by split, quarantine entries, per-chunk counts and split stats."""

    def __init__(
        self,
        spec: rows.TableSpec,
        user_id: str,
        item_id: str,
        users_file: str,
        items_file: str,
        chunks: int,
        by_user: Optional[str] = None,
    ):
        """``by_user``: a scratch directory; write the accepted interactions there by partition of the users
        (``history.UserPartitions``) and emit (partition, file) to BY_USER instead of examples split by date."""
        self._spec, self._user_id, self._item_id = spec, user_id, item_id
        self._users_file, self._items_file, self._chunks = users_file, items_file, chunks
        self._by_user = by_user

    def setup(self) -> None:
        self._parse = rows.RowParser(self._spec)
        self._encode = encode.CachedEncoder((self._spec.timestamp,))

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
        partitions = UserPartitions() if self._by_user is not None else None
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
                yield beam.pvalue.TaggedOutput(QUARANTINE, quarantine_entry(self._spec, line, raw, record))
                continue
            counts[(name, "accepted")] += 1
            seconds = record[self._spec.timestamp]
            if partitions is not None:  # the user's and the item's features are joined after grouping
                user_id = record.pop(self._user_id)  # added back once per user (``AttachHistories``)
                entry = pack_entry(seconds, line, record[self._item_id], self._encode(record))
                partitions.add(user_id, entry)
                continue
            example = encode.wrap_example(self._encode(record) + user + item)
            split = split_of(seconds, boundaries)
            add_stat(stats, split, seconds)
            yield beam.pvalue.TaggedOutput(split, example)
        for keyed in partitions.write(self._by_user, chunk.index) if partitions is not None else ():
            yield beam.pvalue.TaggedOutput(BY_USER, keyed)
        yield beam.pvalue.TaggedOutput(COUNTS, counts)
        yield beam.pvalue.TaggedOutput(SPLIT_STATS, stats)
        if self._chunks > 1:  # progress on long files, from whichever worker read the chunk
            sys.stderr.write(f"  {name}: chunk {chunk.index + 1}/{self._chunks} done ({chunk.lines:,} rows)\n")


def _read_tables(
    pipeline: beam.Pipeline, specs: Mapping[str, rows.TableSpec], chunks: Mapping[str, List[Chunk]]
) -> tuple:
    """Returns ({'users', 'items'}: PCollection of (id, encoded features)), quarantine and count PCollections."""
    tables, quarantined, counts = {}, [], []
    for table in ("users", "items"):
        parsed = (
            pipeline
            | f"{table}Chunks" >> beam.Create(chunks[table])
            | f"Parse{table}" >> beam.ParDo(ParseTable(specs[table])).with_outputs(QUARANTINE, COUNTS, main="rows")
        )
        resolved = (
            parsed.rows
            | f"Group{table}ById" >> beam.GroupByKey()
            | f"Resolve{table}" >> beam.FlatMap(resolve_ids, specs[table]).with_outputs(QUARANTINE, COUNTS, main="ok")
        )
        tables[table] = resolved.ok
        quarantined += [parsed[QUARANTINE], resolved[QUARANTINE]]
        counts += [parsed[COUNTS], resolved[COUNTS]]
    return tables, quarantined, counts


def _scan(inter_chunks: beam.PCollection, spec: rows.TableSpec, profile: Profile) -> tuple:
    """Returns (sorted duplicate line numbers, newest timestamp or None, split boundaries): singleton PCollections."""
    scan = inter_chunks | "Scan" >> beam.ParDo(ScanInteractions(spec)).with_outputs(NEWEST, main="prints")
    duplicates = (
        scan.prints
        | "GroupByBucket" >> beam.GroupByKey()
        | "FindDuplicates" >> beam.Map(find_duplicates)
        | "AllDuplicates" >> beam.combiners.ToList()
        | "SortDuplicates" >> beam.Map(lambda parts: np.sort(np.concatenate([np.zeros(0, np.int64), *parts])))
    )
    newest = scan[NEWEST] | "Newest" >> beam.CombineGlobally(newest_of)
    boundaries = newest | "Boundaries" >> beam.Map(lambda seconds: split_boundaries(profile.split, seconds))
    return duplicates, newest, boundaries


def _report(
    pipeline: beam.Pipeline,
    counts: List[beam.PCollection],
    split_stats: beam.PCollection,
    boundaries: beam.PCollection,
    splits: Mapping[str, beam.PCollection],
    specs: Mapping[str, rows.TableSpec],
    profile: Profile,
) -> beam.PCollection:
    """Returns the one-element PCollection of the ingestion report (``report.make_report``)."""
    sizes = [
        splits[name]
        | f"{name}Size" >> beam.combiners.Count.Globally()
        | f"{name}Named" >> beam.Map(lambda n, k=name: (k, n))
        for name in TABLE_SPLITS
        if name in splits
    ]
    table_sizes = sizes | "TableSizes" >> beam.Flatten(pipeline=pipeline)
    merged = split_stats | "MergeSplitStats" >> beam.CombineGlobally(merge_split_stats)
    return (
        counts
        | "AllCounts" >> beam.Flatten(pipeline=pipeline)
        | "SumCounts" >> beam.CombineGlobally(sum_counts)
        | "Report"
        >> beam.Map(
            make_report,
            split_stats=beam.pvalue.AsSingleton(merged),
            boundaries=beam.pvalue.AsSingleton(boundaries),
            files=[specs[t].name for t in TABLES],
            splits=split_names(profile),
            table_sizes=beam.pvalue.AsDict(table_sizes),
            split_config=profile.split,
        )
    )


def _local_scratch() -> str:
    path = tempfile.mkdtemp(prefix="twotower-by-user-")
    atexit.register(shutil.rmtree, path, True)
    return path


def build_ingestion(
    pipeline: beam.Pipeline,
    input_base: str,
    profile: Profile,
    ranges: Optional[Mapping[str, rows.Range]] = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    scratch_dir: Optional[str] = None,
) -> Ingestion:
    """Adds the ingestion graph (module docstring) to ``pipeline``; ``ranges`` bound numeric columns.

    ``scratch_dir``: where the grouping by user writes its partition files (a history feature or
    ``split.mode: per_user``), on a file system every worker reads (``gs://`` on Dataflow); the
    caller deletes it once the pipeline has run. Default: a local temporary directory, deleted when
    this process exits.
    """
    headers = check_inputs(input_base, profile)
    specs = rows.table_specs(profile, headers, ranges or {})
    chunks = {t: plan_chunks(os.path.join(input_base, specs[t].name), chunk_bytes) for t in TABLES}
    d = profile.data
    tables, quarantined, counts = _read_tables(pipeline, specs, chunks)
    inter_chunks = pipeline | "InteractionChunks" >> beam.Create(chunks["interactions"])
    duplicates, newest, boundaries = _scan(inter_chunks, specs["interactions"], profile)
    by_user = None
    if profile.split.mode == "per_user" or history_specs(profile):
        by_user = scratch_dir or _local_scratch()
    outputs = interaction_splits(profile)
    users, items = beam.pvalue.AsDict(tables["users"]), beam.pvalue.AsDict(tables["items"])
    ingested = inter_chunks | "Ingest" >> beam.ParDo(
        IngestInteractions(
            specs["interactions"], d.user_id, d.item_id, d.users, d.items, len(chunks["interactions"]), by_user
        ),
        users=users,
        items=items,
        duplicates=beam.pvalue.AsSingleton(duplicates),
        boundaries=beam.pvalue.AsSingleton(boundaries),
    ).with_outputs(QUARANTINE, COUNTS, SPLIT_STATS, BY_USER, *outputs)
    quarantined.append(ingested[QUARANTINE])
    counts.append(ingested[COUNTS])
    source = ingested
    if by_user is not None:
        source = (
            ingested[BY_USER]
            | "GroupByUserPartition" >> beam.GroupByKey()
            | "AttachHistories"
            >> beam.ParDo(
                AttachHistories(profile),
                users=users,
                items=items,
                boundaries=beam.pvalue.AsSingleton(boundaries),
                newest=beam.pvalue.AsSingleton(newest),
            ).with_outputs(SPLIT_STATS, HISTORIES, *outputs)
        )
    splits = {n: source[n] for n in outputs}
    splits[CATALOG] = tables["items"] | "CatalogToExample" >> beam.Map(
        lambda kv: encode.wrap_example(encode.encode_features({d.item_id: kv[0]}) + kv[1])
    )
    if HISTORIES in split_names(profile):
        splits[HISTORIES] = source[HISTORIES]
    report = _report(pipeline, counts, source[SPLIT_STATS], boundaries, splits, specs, profile)
    return Ingestion(splits=splits, quarantine=quarantined | "AllQuarantine" >> beam.Flatten(), report=report)
