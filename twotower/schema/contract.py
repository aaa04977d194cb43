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
