"""JoinExampleGen executor: CSV rows -> joined, time-split tf.Examples, on Beam.

Interactions are keyed by user and co-grouped with the users table, then keyed
by item and co-grouped with the items table (CoGroupByKey, so neither table is
held in one Python process's memory). The eval split is the last
``split.eval_days`` days before the newest interaction; the catalog split holds
one example per item.

Every example carries: the user id, the item id, the timestamp (int64 seconds
since the epoch, UTC), the item name, and the profile's features (numeric ->
float, categorical -> bytes). An empty CSV cell is a missing feature.
"""

from __future__ import annotations

import calendar
import csv
import datetime
import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Tuple

import apache_beam as beam
import tensorflow as tf
from google.protobuf import wrappers_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from twotower.config import Profile, from_dict

SECONDS_PER_DAY = 86400
Record = Dict[str, Any]


class DataError(ValueError):
    """A CSV file or row that cannot be read; the message names file and field."""


def profile_from_exec_properties(exec_properties: Dict[str, Any]) -> Profile:
    """Returns the Profile packed into ExampleGen's ``custom_config`` property."""
    custom = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY], custom)
    packed = wrappers_pb2.StringValue()
    if not custom.custom_config.Unpack(packed):
        raise ValueError("JoinExampleGen: custom_config does not hold a profile (a JSON StringValue)")
    return from_dict(json.loads(packed.value), where="custom_config")


def read_header(path: str) -> List[str]:
    """Returns the column names in the first line of CSV file ``path``."""
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path}: file not found")
    with tf.io.gfile.GFile(path, "r") as f:
        first = f.readline()
    if not first.strip():
        raise DataError(f"{path}: file is empty (expected a header line)")
    return next(csv.reader([first.rstrip("\r\n")]))


def require_columns(path: str, header: List[str], columns: Iterable[str]) -> None:
    """Raises DataError naming ``path`` and every column the profile needs but the file lacks."""
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the header has {header}")


def parse_timestamp(value: str, fmt: str, path: str, column: str) -> int:
    """Returns ``value`` as int seconds since the epoch (UTC); ``fmt`` is strptime or 'unix'."""
    try:
        if fmt == "unix":
            return int(float(value))
        parsed = datetime.datetime.strptime(value, fmt)
    except ValueError as e:
        raise DataError(f"{path}: column '{column}': cannot parse {value!r} as {fmt!r}") from e
    return calendar.timegm(parsed.timetuple())


class _ParseRow(beam.DoFn):
    """CSV line -> dict of the wanted columns (numeric ones as float, empty ones dropped)."""

    def __init__(self, path: str, header: List[str], columns: List[str], numeric: List[str]):
        self._path, self._header, self._columns, self._numeric = path, header, columns, set(numeric)

    def setup(self) -> None:
        self._index = {c: self._header.index(c) for c in self._columns}

    def process(self, line: str) -> Iterator[Record]:
        row = next(csv.reader([line]))
        if len(row) != len(self._header):
            raise DataError(
                f"{self._path}: a row has {len(row)} fields, the header {len(self._header)}: {line[:200]!r}"
            )
        record: Record = {}
        for column, i in self._index.items():
            value = row[i]
            if value == "":
                continue
            if column in self._numeric:
                try:
                    record[column] = float(value)
                except ValueError as e:
                    raise DataError(f"{self._path}: column '{column}': {value!r} is not a number") from e
            else:
                record[column] = value
        yield record


def read_csv(
    pipeline: beam.Pipeline, label: str, path: str, columns: List[str], numeric: List[str]
) -> beam.PCollection:
    """Returns a PCollection of dicts with ``columns`` of the CSV file at ``path``."""
    header = read_header(path)
    require_columns(path, header, columns)
    return (
        pipeline
        | f"Read{label}" >> beam.io.ReadFromText(path, skip_header_lines=1)
        | f"Parse{label}" >> beam.ParDo(_ParseRow(path, header, columns, numeric))
    )


def _join(grouped: Tuple[str, Dict[str, List[Record]]], left: str, right: str, counter: Any) -> Iterator[Record]:
    """Yields every ``left`` record of a co-group merged with its single ``right`` record.

    ``counter`` (a Beam metrics counter) counts ``left`` records that have no ``right`` match.
    """
    _, groups = grouped
    sides = groups[right]
    if not sides:
        counter.inc(len(groups[left]))
        return
    for record in groups[left]:
        merged = dict(sides[0])
        merged.update(record)
        yield merged


def eval_start(max_timestamp: int, eval_days: int) -> int:
    """Returns the first second of the eval split: midnight ``eval_days - 1`` days before the last day."""
    last_day = max_timestamp // SECONDS_PER_DAY
    return (last_day - eval_days + 1) * SECONDS_PER_DAY


def to_example(record: Record, int_columns: Iterable[str] = ()) -> bytes:
    """Returns ``record`` as a serialized tf.train.Example: floats, int64s for ``int_columns``, else bytes."""
    ints = set(int_columns)
    feature = {}
    for name, value in record.items():
        if name in ints:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        elif isinstance(value, float):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        else:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def profile_columns(profile: Profile) -> Dict[str, List[str]]:
    """Returns {file name: columns the profile reads from it} for the three CSV files."""
    d = profile.data
    names = lambda source: [f.name for f in profile.features_of(source)]  # noqa: E731
    return {
        d.users: [d.user_id] + names("user"),
        d.items: [d.item_id, d.item_name] + names("item"),
        d.interactions: [d.user_id, d.item_id, d.timestamp] + names("interaction"),
    }


def check_data_dir(input_base: str, profile: Profile) -> None:
    """Raises DataError naming the first file that is missing or lacks a column the profile reads."""
    if not tf.io.gfile.isdir(input_base):
        raise DataError(f"{input_base}: data directory not found")
    for name, columns in profile_columns(profile).items():
        path = os.path.join(input_base, name)
        require_columns(path, read_header(path), columns)


def build_splits(pipeline: beam.Pipeline, input_base: str, profile: Profile) -> Dict[str, beam.PCollection]:
    """Returns {'train', 'eval', 'catalog'} PCollections of serialized tf.Examples."""
    d = profile.data
    numeric = [f.name for f in profile.features if f.kind == "numeric"]
    columns = profile_columns(profile)
    inter_path = os.path.join(input_base, d.interactions)

    users = read_csv(pipeline, "Users", os.path.join(input_base, d.users), columns[d.users], numeric)
    items = read_csv(pipeline, "Items", os.path.join(input_base, d.items), columns[d.items], numeric)
    interactions = read_csv(
        pipeline, "Interactions", inter_path, columns[d.interactions], numeric
    ) | "ParseTime" >> beam.Map(
        lambda r: {**r, d.timestamp: parse_timestamp(r[d.timestamp], d.timestamp_format, inter_path, d.timestamp)}
    )
    unknown_user = beam.metrics.Metrics.counter("JoinExampleGen", "interactions_unknown_user")
    unknown_item = beam.metrics.Metrics.counter("JoinExampleGen", "interactions_unknown_item")
    with_users = (
        {
            "i": interactions | "ByUser" >> beam.Map(lambda r: (r.get(d.user_id, ""), r)),
            "u": users | "UserKey" >> beam.Map(lambda r: (r.get(d.user_id, ""), r)),
        }
        | "JoinUsers" >> beam.CoGroupByKey()
        | "AttachUser" >> beam.FlatMap(_join, "i", "u", unknown_user)
    )
    item_by_id = items | "ItemKey" >> beam.Map(lambda r: (r.get(d.item_id, ""), r))
    joined = (
        {"i": with_users | "ByItem" >> beam.Map(lambda r: (r.get(d.item_id, ""), r)), "it": item_by_id}
        | "JoinItems" >> beam.CoGroupByKey()
        | "AttachItem" >> beam.FlatMap(_join, "i", "it", unknown_item)
    )
    boundary = (
        joined
        | "Timestamps" >> beam.Map(lambda r: r[d.timestamp])
        | "Newest" >> beam.CombineGlobally(max)
        | "EvalStart" >> beam.Map(eval_start, profile.split.eval_days)
    )
    train, evaluation = joined | "SplitByTime" >> beam.Partition(
        lambda r, n, start: int(r[d.timestamp] >= start), 2, start=beam.pvalue.AsSingleton(boundary)
    )
    to_ex = lambda r: to_example(r, int_columns=[d.timestamp])  # noqa: E731
    return {
        "train": train | "TrainToExample" >> beam.Map(to_ex),
        "eval": evaluation | "EvalToExample" >> beam.Map(to_ex),
        "catalog": items | "CatalogToExample" >> beam.Map(to_example),
    }


class Executor(BaseExampleGenExecutor):
    """Joins a profile's CSV files and splits them by time (see module docstring)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """Unused: GenerateExamplesByBeam builds all splits at once."""
        raise NotImplementedError("JoinExampleGen builds its splits in GenerateExamplesByBeam")

    def GenerateExamplesByBeam(
        self, pipeline: beam.Pipeline, exec_properties: Dict[str, Any]
    ) -> Dict[str, beam.PCollection]:
        """Returns split name -> PCollection of serialized tf.Examples."""
        profile = profile_from_exec_properties(exec_properties)
        return build_splits(pipeline, exec_properties[standard_component_specs.INPUT_BASE_KEY], profile)
