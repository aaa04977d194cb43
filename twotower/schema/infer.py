"""``twotower schema infer``: draft a contract schema from a data set, for a person to review.

TFDV infers types, presence and categorical domains from the train split's
statistics; on top of that the draft gets what a twotower contract needs: the
ids, timestamp and item name required with shape [1], value ranges of numeric
columns set to the observed min and max, and a SERVING environment without item
and interaction columns (a recommendation request carries only the user's).
"""

from __future__ import annotations

import datetime
import os
import tempfile

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from twotower.config import Profile
from twotower.schema.contract import feature_stats

SERVING = "SERVING"


def draft_schema(stats: statistics_pb2.DatasetFeatureStatisticsList, profile: Profile) -> schema_pb2.Schema:
    """Returns TFDV's inferred schema for ``stats`` with the contract additions in the module docstring."""
    schema = tfdv.infer_schema(stats, infer_feature_shape=False)
    d = profile.data
    required = {d.user_id, d.item_id, d.timestamp, d.item_name}
    not_served = {d.item_id, d.timestamp, d.item_name} | {
        f.name for f in profile.features if f.source in ("item", "interaction") and not f.derived
    }
    numeric = {f.name for f in profile.features if f.kind == "numeric"} | {d.timestamp}
    schema.default_environment[:] = ["TRAINING", SERVING]
    dataset = stats.datasets[0]
    for feature in schema.feature:
        if feature.name in required:
            feature.presence.min_fraction = 1.0
            feature.presence.min_count = 1
            feature.ClearField("value_count")
            feature.shape.dim.add().size = 1
        if feature.name in numeric:
            observed = feature_stats(dataset, feature.name).num_stats
            if feature.type == schema_pb2.INT:
                feature.int_domain.min, feature.int_domain.max = int(observed.min), int(observed.max)
            else:
                feature.float_domain.min, feature.float_domain.max = observed.min, observed.max
        if feature.name in not_served:
            feature.not_in_environment.append(SERVING)
    return schema


def infer_contract(profile: Profile, data_dir: str, out_path: str) -> str:
    """Ingests ``data_dir``, drafts a schema from its train split and writes it to ``out_path``; returns the path."""
    from twotower.schema.validate import ingest_and_profile, statistics_path

    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as work:
        ingest_and_profile(profile, data_dir, work)
        stats = tfdv.load_stats_binary(statistics_path(work, "train"))
    schema = draft_schema(stats, profile)
    tfdv.write_schema_text(schema, out_path)
    with open(out_path, encoding="utf-8") as f:
        body = f.read()
    header = (
        f"# Draft data contract for profile '{profile.name}', inferred by `twotower schema infer` from\n"
        f"# {os.path.abspath(data_dir)} on {datetime.date.today()}. Ranges are the observed min/max and\n"
        "# domains the observed values: widen or narrow them to what the data SHOULD be, then point\n"
        "# contract.schema in the profile at this file.\n"
    )
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(header + body)
    return out_path
