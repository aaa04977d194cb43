"""``twotower schema infer``: draft a contract schema from a data set, for a person to review.

TFDV infers types and presence from the train split's statistics; on top of that
the draft gets what a twotower contract needs: the ids, timestamp and item name
required with shape [1], value ranges of numeric columns set to the min and max
observed in the files (so the draft accepts the very data it was drafted from,
in every split), the timestamp with a lower bound only (later days of data are not out of
range), and a SERVING environment without item and interaction columns (a
recommendation request carries only the user's). Categorical columns get no
closed domain (a new country in next week's data is not an anomaly) unless named
in ``closed_domains``: those get every value seen in any split.
"""

from __future__ import annotations

import datetime
import math
import os
import tempfile
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from twotower.config import Profile
from twotower.schema.checks import open_domains

SERVING = "SERVING"


def observed_ranges(profile: Profile, data_dir: str) -> Dict[str, Tuple[float, float]]:
    """Returns {numeric column or timestamp: (min, max)} over every row of the files that the row checks accept.

    Read from the files themselves, not the splits' statistics: a user without
    interactions is in no split, yet its row is range-checked at ingestion.
    """
    from twotower.ingest import csv_source, rows
    from twotower.ingest.tables import check_inputs

    specs = rows.table_specs(profile, check_inputs(data_dir, profile), ranges={})
    found: Dict[str, Tuple[float, float]] = {}
    for spec in specs.values():
        parse = rows.RowParser(spec)
        columns = [c for c in spec.columns if c in spec.numeric or c == spec.timestamp]
        for chunk in csv_source.plan_chunks(os.path.join(data_dir, spec.name)):
            for _, raw in csv_source.read_lines(chunk):
                record = parse(raw)
                for column in columns if isinstance(record, dict) else ():
                    if column in record:
                        low, high = found.get(column, (math.inf, -math.inf))
                        found[column] = (min(low, record[column]), max(high, record[column]))
    return found


def _float32_outside(low: float, high: float) -> Tuple[float, float]:
    """Returns float32 bounds that hold [low, high] (the schema stores float_domain in 32 bits)."""
    lo, hi = np.float32(low), np.float32(high)
    lo = np.nextafter(lo, np.float32(-np.inf)) if lo > low else lo
    hi = np.nextafter(hi, np.float32(np.inf)) if hi < high else hi
    return float(lo), float(hi)


def draft_schema(
    stats: statistics_pb2.DatasetFeatureStatisticsList,
    profile: Profile,
    ranges: Mapping[str, Tuple[float, float]],
    more_stats: Sequence[statistics_pb2.DatasetFeatureStatisticsList] = (),
    closed_domains: Sequence[str] = (),
) -> schema_pb2.Schema:
    """Returns TFDV's schema inferred from ``stats`` (train) with the additions in the module docstring.

    ``ranges``: {column: (min, max)} observed in the files (``observed_ranges``);
    ``more_stats``: the other splits' statistics, for closed domains.
    """
    schema = tfdv.infer_schema(stats, infer_feature_shape=False)
    for other in more_stats:  # widens the closed domains to every value seen (only those kept below)
        schema = tfdv.update_schema(schema, other, infer_feature_shape=False)
    d = profile.data
    required = {d.user_id, d.item_id, d.timestamp, d.item_name}
    not_served = {d.item_id, d.timestamp, d.item_name} | {
        f.name for f in profile.features if f.source in ("item", "interaction") and not f.derived
    }
    schema.default_environment[:] = ["TRAINING", SERVING]
    for feature in schema.feature:
        if feature.name in required:
            feature.presence.min_fraction = 1.0
            feature.presence.min_count = 1
            feature.ClearField("value_count")
            feature.shape.dim.add().size = 1
        if feature.name in ranges:
            low, high = ranges[feature.name]
            if feature.type == schema_pb2.INT:
                feature.int_domain.min = math.floor(low)
                if feature.name != d.timestamp:  # time goes on: no upper bound
                    feature.int_domain.max = math.ceil(high)
            else:
                feature.float_domain.min, feature.float_domain.max = _float32_outside(low, high)
        if feature.name in not_served:
            feature.not_in_environment.append(SERVING)
    return open_domains(schema, keep=closed_domains)


def infer_contract(profile: Profile, data_dir: str, out_path: str, closed_domains: Sequence[str] = ()) -> str:
    """Ingests ``data_dir``, drafts a schema from its splits and writes it to ``out_path``; returns the path."""
    from twotower.schema.validate import ingest_and_profile, statistics_path

    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as work:
        ingest_and_profile(profile, data_dir, work)
        stats = tfdv.load_stats_binary(statistics_path(work, "train"))
        others = [
            tfdv.load_stats_binary(statistics_path(work, split))
            for split in ("eval", "test", "catalog")
            if os.path.exists(statistics_path(work, split))
        ]
    schema = draft_schema(stats, profile, observed_ranges(profile, data_dir), others, closed_domains)
    tfdv.write_schema_text(schema, out_path)
    with open(out_path, encoding="utf-8") as f:
        body = f.read()
    header = (
        f"# Draft data contract for profile '{profile.name}', inferred by `twotower schema infer` from\n"
        f"# {os.path.abspath(data_dir)} on {datetime.date.today()}. Ranges are the min/max observed in\n"
        "# every split (the timestamp has no upper bound); categorical columns are open unless named\n"
        "# with --closed-domain. Widen or narrow them to what the data SHOULD be, then point\n"
        "# contract.schema in the profile at this file.\n"
    )
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(header + body)
    return out_path
