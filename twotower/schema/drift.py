"""Drift between two sets of TFDV statistics: the profile's thresholds, TFDV's distances, a JSON + HTML report.

TFDV measures drift; this module configures it and presents the result.
``apply_drift_thresholds`` writes the profile's thresholds into the schema as drift
comparators (L-infinity distance for categorical features and id columns,
Jensen-Shannon divergence for numeric ones). ``compare`` runs
``tfdv.validate_statistics`` with the baseline as the previous statistics and reads
the distances from the returned ``Anomalies.drift_skew_info``, which TFDV fills for
every compared feature, below its threshold too, so every number in the report is
TFDV's own. ``value_frequencies`` lists the value (or histogram bucket) frequencies
TFDV compares, from which the report's "top changes" come; ``write_report`` renders
the report as ``report.json`` and a self-contained ``report.html``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf
import tensorflow_data_validation as tfdv
from google.protobuf import message, text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from twotower.config import Profile
from twotower.schema.contract import TRAINING, feature_stats
from twotower.schema.drift_html import render_html

L_INFINITY = "l_infinity"
JENSEN_SHANNON = "jensen_shannon"
ID_KIND = "id"
TOP_CHANGES = 5
STATS_FILE = "FeatureStats.pb"  # what TFX StatisticsGen writes into each Split-<name> directory
TEXT_SUFFIXES = (".pbtxt", ".textproto", ".txt")
_DRIFT_TYPES = (
    anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
)


def drift_checks(profile: Profile) -> Dict[str, Tuple[str, str, float]]:
    """Returns ``{column: (kind, metric, threshold)}`` for every column the profile's contract checks for drift.

    Every profile feature that is a column is checked (categorical and text: L-infinity,
    numeric and dense: Jensen-Shannon; derived time and cross features have no column),
    plus the user/item id columns named in ``contract.drift_thresholds`` (kind 'id',
    L-infinity). A per-column threshold in ``contract.drift_thresholds`` wins over
    the default. Raises ValueError for a name there that is neither.
    """
    contract = profile.contract
    checks: Dict[str, Tuple[str, str, float]] = {}
    for feature in profile.features:
        if feature.derived:
            continue
        numeric = feature.kind in ("numeric", "dense")
        default = contract.drift_jensen_shannon if numeric else contract.drift_l_infinity
        metric = JENSEN_SHANNON if numeric else L_INFINITY
        checks[feature.name] = (feature.kind, metric, contract.drift_thresholds.get(feature.name, default))
    ids = (profile.data.user_id, profile.data.item_id)
    for name, threshold in contract.drift_thresholds.items():
        if name in checks:
            continue
        if name not in ids:
            raise ValueError(
                f"{profile.path}: 'contract.drift_thresholds' names '{name}', which is neither a feature "
                f"of the profile nor the user/item id column ({', '.join(ids)})"
            )
        checks[name] = (ID_KIND, L_INFINITY, threshold)
    return checks


def apply_drift_thresholds(schema: schema_pb2.Schema, profile: Profile) -> schema_pb2.Schema:
    """Returns a copy of ``schema`` whose checked columns (see ``drift_checks``) carry the profile's drift comparator.

    A comparator already in the schema for such a column is replaced; other features
    are left as they are. Raises ValueError naming the columns the schema lacks.
    """
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    by_name = {feature.name: feature for feature in out.feature}
    checks = drift_checks(profile)
    missing = [name for name in checks if name not in by_name]
    if missing:
        raise ValueError(
            f"schema has no feature {', '.join(repr(n) for n in missing)}, which profile "
            f"{profile.path or profile.name} checks for drift"
        )
    for name, (_, metric, threshold) in checks.items():
        comparator = by_name[name].drift_comparator
        comparator.Clear()
        if metric == L_INFINITY:
            comparator.infinity_norm.threshold = threshold
        else:
            comparator.jensen_shannon_divergence.threshold = threshold
    return out


def _dataset(
    stats: statistics_pb2.DatasetFeatureStatisticsList, split: Optional[str], role: str
) -> statistics_pb2.DatasetFeatureStatistics:
    """Returns the only dataset of ``stats``, or the one named ``split`` when there are several."""
    names = [d.name for d in stats.datasets]
    if len(names) == 1:
        return stats.datasets[0]
    if not names:
        raise ValueError(f"{role} statistics hold no dataset")
    if split is None:
        raise ValueError(f"{role} statistics hold {len(names)} datasets {names}: pass split= to pick one")
    for dataset in stats.datasets:
        if dataset.name == split:
            return dataset
    raise ValueError(f"{role} statistics have no dataset named '{split}'; they hold {names}")


def _counts(feature: Optional[statistics_pb2.FeatureNameStatistics]) -> Dict[str, float]:
    """Returns {value: count} from the rank histogram, the counts TFDV's L-infinity and string JS use."""
    if feature is None:
        return {}
    return {b.label: b.sample_count for b in feature.string_stats.rank_histogram.buckets}


def _histogram(feature: Optional[statistics_pb2.FeatureNameStatistics]) -> statistics_pb2.Histogram:
    """Returns the STANDARD histogram of a numeric feature (empty if it has none), the one TFDV's JS uses."""
    if feature is not None:
        for histogram in feature.num_stats.histograms:
            if histogram.type == statistics_pb2.Histogram.STANDARD:
                return histogram
    return statistics_pb2.Histogram()


def _aligned_counts(a: statistics_pb2.Histogram, b: statistics_pb2.Histogram) -> List[Tuple[str, float, float]]:
    """Returns ``[(bucket, count_a, count_b)]`` with both histograms on the union of their bucket boundaries.

    As TFDV's ``AlignHistograms``: counts spread uniformly within a bucket; point
    buckets (low == high) kept as single values; infinite and NaN counts apart
    (TFDV keeps those of the two sides in separate buckets; here they share a row).
    """
    regular: List[List[Tuple[float, float, float]]] = [[], []]
    points: Dict[float, List[float]] = {}
    infinite, nan = [0.0, 0.0], [float(a.num_nan), float(b.num_nan)]
    for side, histogram in enumerate((a, b)):
        for bucket in histogram.buckets:
            lo, hi, count = bucket.low_value, bucket.high_value, bucket.sample_count
            if not (math.isfinite(lo) and math.isfinite(hi)):
                infinite[side] += count
            elif lo == hi:
                points.setdefault(lo, [0.0, 0.0])[side] += count
            else:
                regular[side].append((lo, hi, count))
    edges = sorted({edge for buckets in regular for lo, hi, _ in buckets for edge in (lo, hi)})
    rows = []
    for left, right in itertools.pairwise(edges):
        counts = [
            sum(n * (right - left) / (hi - lo) for lo, hi, n in buckets if lo <= left and right <= hi)
            for buckets in regular
        ]
        rows.append((f"[{left:.6g}, {right:.6g})", counts[0], counts[1]))
    rows += [(f"{value:.6g}", n[0], n[1]) for value, n in sorted(points.items())]
    if any(infinite):
        rows.append(("±inf", infinite[0], infinite[1]))
    if any(nan):
        rows.append(("NaN", nan[0], nan[1]))
    return rows


def value_frequencies(
    baseline: Optional[statistics_pb2.FeatureNameStatistics],
    current: Optional[statistics_pb2.FeatureNameStatistics],
) -> List[Dict[str, Any]]:
    """Returns ``[{"value", "baseline", "current"}]``: the frequencies (fractions) TFDV compares for one feature.

    String values come from the rank histograms; numbers from the STANDARD histograms
    aligned on the union of their buckets (values '[lo, hi)'). In value/bucket order.
    """
    base_counts, cur_counts = _counts(baseline), _counts(current)
    if base_counts and cur_counts:
        rows = [(v, base_counts.get(v, 0.0), cur_counts.get(v, 0.0)) for v in sorted({*base_counts, *cur_counts})]
    else:
        rows = _aligned_counts(_histogram(baseline), _histogram(current))
    base_total = sum(r[1] for r in rows) or 1.0
    cur_total = sum(r[2] for r in rows) or 1.0
    return [{"value": v, "baseline": b / base_total, "current": c / cur_total} for v, b, c in rows]


def _top_changes(frequencies: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Returns the ``TOP_CHANGES`` rows of ``frequencies`` that changed most, biggest absolute change first."""
    changed = [f for f in frequencies if f["baseline"] != f["current"]]
    changed.sort(key=lambda f: -abs(f["current"] - f["baseline"]))
    return [
        {"value": f["value"], "baseline": round(f["baseline"], 6), "current": round(f["current"], 6)}
        for f in changed[:TOP_CHANGES]
    ]


def compare(
    baseline: statistics_pb2.DatasetFeatureStatisticsList,
    current: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    profile: Profile,
    split: Optional[str] = None,
) -> Dict[str, Any]:
    """Returns the drift of ``current`` against ``baseline`` for every column ``drift_checks(profile)`` names.

    The distances and verdicts are TFDV's (``tfdv.validate_statistics`` with the
    profile's comparators, the schema's TRAINING environment if it has one). JSON-able:
    ``{"features": [{"feature", "kind", "metric", "distance", "threshold", "drifted",
    "top_changes", "note"}] (by distance/threshold, highest first; distance None and a
    note when TFDV could not measure), "drifted": [names], "baseline_examples",
    "current_examples"}``. ``split`` picks the dataset when a statistics list holds several.
    """
    base = _dataset(baseline, split, "baseline")
    cur = _dataset(current, split, "current")
    configured = apply_drift_thresholds(schema, profile)
    anomalies = tfdv.validate_statistics(
        statistics_pb2.DatasetFeatureStatisticsList(datasets=[cur]),
        configured,
        environment=TRAINING if TRAINING in configured.default_environment else None,
        previous_statistics=statistics_pb2.DatasetFeatureStatisticsList(datasets=[base]),
    )
    measured = {".".join(info.path.step): info.drift_measurements for info in anomalies.drift_skew_info}
    flagged = {
        name for name, info in anomalies.anomaly_info.items() if any(r.type in _DRIFT_TYPES for r in info.reason)
    }
    features = []
    for name, (kind, metric, threshold) in drift_checks(profile).items():
        entry: Dict[str, Any] = {
            "feature": name,
            "kind": kind,
            "metric": metric,
            "distance": None,
            "threshold": threshold,
            "drifted": name in flagged,
            "top_changes": [],
            "note": "",
        }
        base_feature, cur_feature = feature_stats(base, name), feature_stats(cur, name)
        if measured.get(name):
            entry["distance"] = float(measured[name][0].value)
            entry["threshold"] = float(measured[name][0].threshold)
            entry["top_changes"] = _top_changes(value_frequencies(base_feature, cur_feature))
        else:
            absent = [role for role, f in (("baseline", base_feature), ("current", cur_feature)) if f is None]
            entry["note"] = f"no statistics in {' and '.join(absent)}" if absent else "TFDV could not measure it"
        features.append(entry)
    features.sort(key=lambda f: (f["distance"] is None, -(f["distance"] or 0.0) / f["threshold"], f["feature"]))
    return {
        "features": features,
        "drifted": [f["feature"] for f in features if f["drifted"]],
        "baseline_examples": int(base.num_examples),
        "current_examples": int(cur.num_examples),
    }


def load_statistics(path: str, split: str = "train") -> statistics_pb2.DatasetFeatureStatisticsList:
    """Returns the statistics at ``path``: a TFX ExampleStatistics artifact directory, a ``Split-<split>``
    directory, or one file (binary ``FeatureStats.pb`` as StatisticsGen writes it, or text ``.pbtxt``).

    Raises ValueError naming the path when there are no statistics there.
    """
    gfile = tf.io.gfile
    if gfile.isdir(path):
        split_dir = os.path.join(path, f"Split-{split}")
        if gfile.isdir(split_dir):
            return load_statistics(split_dir, split)
        stats_file = os.path.join(path, STATS_FILE)
        if gfile.exists(stats_file):
            return load_statistics(stats_file, split)
        splits = sorted(n.rstrip("/") for n in gfile.listdir(path) if n.startswith("Split-"))
        found = f"; it holds {', '.join(splits)}" if splits else ""
        raise ValueError(f"{path}: no statistics: expected Split-{split}/{STATS_FILE} or {STATS_FILE}{found}")
    if not gfile.exists(path):
        raise ValueError(f"{path}: statistics not found")
    try:
        if path.endswith(TEXT_SUFFIXES):
            stats = tfdv.load_stats_text(path)
        else:
            stats = tfdv.load_stats_binary(path)
    except (text_format.ParseError, message.DecodeError) as e:
        kind = "text" if path.endswith(TEXT_SUFFIXES) else "binary"
        raise ValueError(f"{path}: not a {kind} DatasetFeatureStatisticsList: {e}") from e
    if not stats.datasets:
        raise ValueError(f"{path}: statistics hold no dataset")
    return stats


def write_report(report: Dict[str, Any], out_dir: str, title: str) -> Tuple[str, str]:
    """Writes ``report.json`` and a self-contained ``report.html`` into ``out_dir``; returns (json_path, html_path)."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "report.json")
    html_path = os.path.join(out_dir, "report.html")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(render_html(report, title))
    return json_path, html_path
