"""Statistics checked against the contract: TFDV anomalies, drift against a baseline, readable reports.

``check_statistics`` is what both the pipeline's gate and ``twotower validate``
call, so a data producer's CI and the training pipeline judge data the same way.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from twotower.config import Profile
from twotower.schema.contract import TRAINING, feature_stats
from twotower.schema.drift import apply_drift_thresholds

DRIFT_KINDS = ("COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH")


def _sample(stats: statistics_pb2.DatasetFeatureStatistics, name: str) -> str:
    """Returns a few values of feature ``name`` from ``stats``: top strings, or min/mean/max of numbers."""
    f = feature_stats(stats, name)
    if f is not None and f.HasField("string_stats"):
        return ", ".join(f"{v.value!r} ({v.frequency:.0f})" for v in f.string_stats.top_values[:3])
    if f is not None and f.HasField("num_stats"):
        n = f.num_stats
        return f"min {n.min:g}, mean {n.mean:g}, max {n.max:g}"
    return ""


def anomaly_list(
    anomalies: anomalies_pb2.Anomalies, stats: Optional[statistics_pb2.DatasetFeatureStatistics] = None
) -> List[Dict[str, Any]]:
    """Returns ``[{feature, kind, description, sample}]``, one entry per anomaly reason, sorted by feature."""
    out = []
    for name, info in sorted(anomalies.anomaly_info.items()):
        for reason in info.reason:
            out.append(
                {
                    "feature": name,
                    "kind": anomalies_pb2.AnomalyInfo.Type.Name(reason.type),
                    "description": reason.description or reason.short_description,
                    "sample": _sample(stats, name) if stats is not None else "",
                }
            )
    if anomalies.HasField("dataset_anomaly_info"):
        for reason in anomalies.dataset_anomaly_info.reason:
            out.append(
                {
                    "feature": "(dataset)",
                    "kind": anomalies_pb2.AnomalyInfo.Type.Name(reason.type),
                    "description": reason.description,
                    "sample": "",
                }
            )
    return out


def is_drift(anomaly: Dict[str, Any]) -> bool:
    """Returns True for an anomaly that is drift against the baseline, not a contract violation."""
    return anomaly["kind"] in DRIFT_KINDS


def format_anomalies(split: str, anomalies: List[Dict[str, Any]]) -> str:
    """Returns the anomalies of one split as lines 'split: feature: KIND: description [sample]'."""
    lines = []
    for a in anomalies:
        sample = f"  [seen: {a['sample']}]" if a["sample"] else ""
        lines.append(f"  {split}: {a['feature']}: {a['kind']}: {a['description']}{sample}")
    return "\n".join(lines)


def open_domains(schema: schema_pb2.Schema, keep: Sequence[str] = ()) -> schema_pb2.Schema:
    """Returns a copy of ``schema`` whose categorical columns take any value, except those named in ``keep``."""
    schema = copy.deepcopy(schema)
    for feature in schema.feature:
        if feature.HasField("domain") and feature.name not in keep:
            feature.ClearField("domain")
    used = {f.domain for f in schema.feature if f.HasField("domain")}
    kept = [domain for domain in schema.string_domain if domain.name in used]
    del schema.string_domain[:]
    schema.string_domain.extend(kept)
    return schema


def validate(
    stats: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    profile: Profile,
    baseline: Optional[statistics_pb2.DatasetFeatureStatisticsList] = None,
) -> anomalies_pb2.Anomalies:
    """Returns TFDV's anomalies of ``stats`` against the contract, plus drift against ``baseline`` when given.

    The schema's TRAINING environment applies when it has one (a contract does; a
    schema inferred for a profile without one has no environments). Drift uses the
    profile's thresholds (L-infinity for categorical, Jensen-Shannon for numeric features).
    """
    if not profile.contract.schema:  # inferred from the train split: its domains are what train happened to hold
        schema = open_domains(schema)
    if baseline is not None:
        schema = apply_drift_thresholds(schema, profile)
    environment = TRAINING if TRAINING in schema.default_environment else None
    return tfdv.validate_statistics(stats, schema, environment=environment, previous_statistics=baseline)


def check_statistics(
    stats: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    profile: Profile,
    baseline: Optional[statistics_pb2.DatasetFeatureStatisticsList] = None,
) -> List[Dict[str, Any]]:
    """Returns ``anomaly_list`` of ``validate(...)``: one readable entry per anomaly reason."""
    return anomaly_list(validate(stats, schema, profile, baseline), stats.datasets[0] if stats.datasets else None)
