"""The data contract: a profile's TFDV schema, the row ranges derived from it, and statistics lookups.

The checks of statistics against the contract live in ``schema.checks``; drift in ``schema.drift``.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from twotower.config import Profile

Range = Tuple[Optional[float], Optional[float]]
TRAINING = "TRAINING"


def load_schema(path: str) -> schema_pb2.Schema:
    """Returns the schema in text-format file ``path``; raises ValueError naming the file if it does not parse."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: schema file not found")
    try:
        return tfdv.load_schema_text(path)
    except text_format.ParseError as e:
        raise ValueError(f"{path}: not a valid TFDV schema (text format): {e}") from e


def row_ranges(schema: schema_pb2.Schema) -> Dict[str, Range]:
    """Returns {feature: (min, max)} from the float_domain / int_domain of the schema's numeric features."""
    ranges: Dict[str, Range] = {}
    for feature in schema.feature:
        domain = None
        if feature.HasField("float_domain"):
            domain = feature.float_domain
        elif feature.HasField("int_domain"):
            domain = feature.int_domain
        if domain is None:
            continue
        lo = float(domain.min) if domain.HasField("min") else None
        hi = float(domain.max) if domain.HasField("max") else None
        if lo is not None or hi is not None:
            ranges[feature.name] = (lo, hi)
    return ranges


def with_derived_columns(schema: schema_pb2.Schema, profile: Profile) -> schema_pb2.Schema:
    """Returns ``schema`` plus the columns ingestion derives for ``profile`` that it does not list yet.

    A history feature ``NAME`` (kind history) adds ``NAME`` (BYTES, the item ids) and ``NAME_age_days``
    (FLOAT, >= 0), each a list of up to ``max_length`` values, in every environment: a serving request
    may carry a history too. A curated contract needs nothing for them.
    """
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    listed = {f.name for f in out.feature}
    for feature in profile.features:
        if feature.kind != "history":
            continue
        for name, kind in ((feature.name, schema_pb2.BYTES), (feature.name + "_age_days", schema_pb2.FLOAT)):
            if name in listed:
                continue
            column = out.feature.add(name=name, type=kind)
            column.value_count.min, column.value_count.max = 0, feature.max_length
            if kind == schema_pb2.FLOAT:
                column.float_domain.min = 0.0
    return out


def contract_schema(profile: Profile) -> Optional[schema_pb2.Schema]:
    """Returns the profile's contract (its schema file plus the derived columns), or None when it has none."""
    return with_derived_columns(load_schema(profile.contract.schema), profile) if profile.contract.schema else None


def profile_ranges(profile: Profile) -> Dict[str, Range]:
    """Returns the row ranges of the profile's contract schema ({} when the profile has none)."""
    return row_ranges(load_schema(profile.contract.schema)) if profile.contract.schema else {}


def feature_stats(
    dataset: statistics_pb2.DatasetFeatureStatistics, name: str
) -> Optional[statistics_pb2.FeatureNameStatistics]:
    """Returns the statistics of top-level feature ``name`` in ``dataset``, or None."""
    for feature in dataset.features:
        if list(feature.path.step) == [name] or feature.name == name:
            return feature
    return None
