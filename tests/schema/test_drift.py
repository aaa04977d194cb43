"""Drift reports on real TFDV statistics of small frames generated from the hm profile and its contract schema."""

import base64
import dataclasses
import json
import math
import os
import struct

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from twotower.config import load_profile
from twotower.schema import drift
from twotower.schema.contract import load_schema, row_ranges

N = 200


@pytest.fixture(scope="module")
def profile():
    return load_profile("hm")


@pytest.fixture(scope="module")
def schema(profile):
    return load_schema(profile.contract.schema)


def make_frame(profile, schema, n=N, seed=0):
    """Returns n rows with every schema column: ids, timestamp, item name and the profile's features.

    Categorical features cycle through their schema domain (or made-up values); numeric
    ones are uniform over the lower half of their schema range, so a shift stays in range.
    """
    rng = np.random.default_rng(seed)
    d = profile.data
    domains = {dom.name: list(dom.value) for dom in schema.string_domain}
    by_name = {f.name: f for f in schema.feature}
    ranges = row_ranges(schema)
    columns = {
        d.user_id: [f"u{i % 50}" for i in range(n)],
        d.item_id: [f"a{i % 30}" for i in range(n)],
        d.timestamp: np.full(n, 1_600_000_000, dtype=np.int64),  # the schema's t_dat is INT
        d.item_name: [f"name {i % 30}" for i in range(n)],
    }
    for f in (f for f in profile.features if not f.derived):  # time and cross features are not columns
        if f.kind == "numeric":  # FLOAT in the schema
            lo, hi = ranges[f.name]
            columns[f.name] = (lo + (hi - lo) * rng.uniform(0.0, 0.5, n)).astype(np.float32)
        else:  # BYTES in the schema: str columns
            values = domains.get(by_name[f.name].domain) or [f"{f.name}_{k}" for k in range(3)]
            columns[f.name] = [values[i % len(values)] for i in range(n)]
    return pd.DataFrame(columns)


def stats_of(frame):
    return tfdv.generate_statistics_from_dataframe(frame)


def entry(report, name):
    (found,) = [f for f in report["features"] if f["feature"] == name]
    return found


def club_shift(profile, schema):
    """Baseline 90% ACTIVE / 10% PRE-CREATE, current 50% / 50%; everything else identical."""
    base, cur = make_frame(profile, schema), make_frame(profile, schema)
    base["club_member_status"] = ["ACTIVE"] * 180 + ["PRE-CREATE"] * 20
    cur["club_member_status"] = ["ACTIVE"] * 100 + ["PRE-CREATE"] * 100
    return stats_of(base), stats_of(cur)


def test_apply_drift_thresholds_sets_one_comparator_per_checked_column(profile, schema):
    contract = dataclasses.replace(profile.contract, drift_thresholds={"age": 0.05, "customer_id": 0.3})
    configured = drift.apply_drift_thresholds(schema, dataclasses.replace(profile, contract=contract))
    by_name = {f.name: f for f in configured.feature}
    assert by_name["age"].drift_comparator.jensen_shannon_divergence.threshold == pytest.approx(0.05)  # override
    assert by_name["price"].drift_comparator.jensen_shannon_divergence.threshold == pytest.approx(0.1)  # default
    assert not by_name["price"].drift_comparator.HasField("infinity_norm")
    assert by_name["club_member_status"].drift_comparator.infinity_norm.threshold == pytest.approx(0.25)
    assert by_name["customer_id"].drift_comparator.infinity_norm.threshold == pytest.approx(0.3)
    assert not by_name["article_id"].HasField("drift_comparator")  # an id not named: unchecked
    assert not any(f.HasField("drift_comparator") for f in schema.feature)  # input untouched


def test_apply_drift_thresholds_errors_name_the_column(profile, schema):
    trimmed = type(schema)()
    trimmed.CopyFrom(schema)
    del trimmed.feature[[f.name for f in trimmed.feature].index("colour_group_name")]
    with pytest.raises(ValueError, match="schema has no feature 'colour_group_name'"):
        drift.apply_drift_thresholds(trimmed, profile)
    contract = dataclasses.replace(profile.contract, drift_thresholds={"colour": 0.3})
    with pytest.raises(ValueError, match="'contract.drift_thresholds' names 'colour'"):
        drift.apply_drift_thresholds(schema, dataclasses.replace(profile, contract=contract))


def test_unchanged_copy_has_no_drift(profile, schema):
    stats = stats_of(make_frame(profile, schema))
    report = drift.compare(stats, stats_of(make_frame(profile, schema)), schema, profile)
    assert report["drifted"] == []
    assert [f["feature"] for f in report["features"]] == sorted(f.name for f in profile.features if not f.derived)
    assert all(f["distance"] == 0.0 and not f["drifted"] and f["top_changes"] == [] for f in report["features"])
    assert report["baseline_examples"] == report["current_examples"] == N


def test_categorical_shift_is_tfdv_l_infinity(profile, schema):
    report = drift.compare(*club_shift(profile, schema), schema, profile)
    # ACTIVE 0.9 -> 0.5 and PRE-CREATE 0.1 -> 0.5: L-infinity = max(|0.5 - 0.9|, |0.5 - 0.1|) = 0.4
    club = report["features"][0]
    assert club["feature"] == "club_member_status" and club["metric"] == "l_infinity" and club["kind"] == "categorical"
    assert club["distance"] == pytest.approx(0.4) and club["threshold"] == pytest.approx(0.25) and club["drifted"]
    assert report["drifted"] == ["club_member_status"]
    assert sorted(club["top_changes"], key=lambda c: c["value"]) == [
        {"value": "ACTIVE", "baseline": pytest.approx(0.9), "current": pytest.approx(0.5)},
        {"value": "PRE-CREATE", "baseline": pytest.approx(0.1), "current": pytest.approx(0.5)},
    ]
    assert all(f["distance"] == 0.0 for f in report["features"][1:])  # below threshold, still measured


def test_numeric_shift_is_flagged_by_jensen_shannon(profile, schema):
    base, cur = make_frame(profile, schema), make_frame(profile, schema)
    cur["age"] = cur["age"] + 20  # ages 16..57.5 -> 36..77.5
    base_stats, cur_stats = stats_of(base), stats_of(cur)
    report = drift.compare(base_stats, cur_stats, schema, profile)
    age = entry(report, "age")
    assert age["metric"] == "jensen_shannon" and age["drifted"] and report["drifted"] == ["age"]
    assert age["threshold"] == pytest.approx(0.05)  # hm.yaml: drift_thresholds {age: 0.05}
    assert 0.05 < age["distance"] <= 1.0
    assert 1 <= len(age["top_changes"]) <= 5
    assert all(c["value"].startswith("[") and c["value"].endswith(")") for c in age["top_changes"])
    changes = [abs(c["current"] - c["baseline"]) for c in age["top_changes"]]
    assert changes == sorted(changes, reverse=True)
    # The buckets shown are the ones TFDV measured: JS over all of them is TFDV's distance.
    freqs = drift.value_frequencies(
        drift.feature_stats(base_stats.datasets[0], "age"), drift.feature_stats(cur_stats.datasets[0], "age")
    )
    assert js([f["baseline"] for f in freqs], [f["current"] for f in freqs]) == pytest.approx(age["distance"])


def js(p, q):
    """Jensen-Shannon divergence in bits, as TFDV computes it."""
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl = lambda x: sum(a * math.log2(a / c) for a, c in zip(x, m, strict=True) if a > 0)
    return (kl(p) + kl(q)) / 2


def numeric_stats(buckets):
    """Statistics with one FLOAT feature 'age' whose STANDARD histogram is ``buckets`` [(lo, hi, count)]."""
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(num_examples=int(sum(b[2] for b in buckets)))
    feature = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.FLOAT)
    feature.path.step.append("age")
    feature.num_stats.common_stats.num_non_missing = dataset.num_examples
    histogram = feature.num_stats.histograms.add(type=statistics_pb2.Histogram.STANDARD)
    for lo, hi, count in buckets:
        histogram.buckets.add(low_value=lo, high_value=hi, sample_count=count)
    return stats


def test_histograms_are_aligned_as_tfdv_does(profile, schema):
    base = numeric_stats([(0, 10, 10), (10, 20, 10)])
    cur = numeric_stats([(5, 15, 20)])
    report = drift.compare(base, cur, schema, profile)
    # Edges 0, 5, 10, 15, 20: P = (.25, .25, .25, .25), Q = (0, .5, .5, 0), M = (.125, .375, .375, .125).
    # KL(P||M) = .5 * log2(2) + .5 * log2(2/3) = 0.2075; KL(Q||M) = log2(4/3) = 0.4150; JS = 0.3113
    assert entry(report, "age")["distance"] == pytest.approx(0.311278, abs=1e-6)
    assert entry(report, "age")["top_changes"][:2] == [
        {"value": "[0, 5)", "baseline": 0.25, "current": 0.0},
        {"value": "[5, 10)", "baseline": 0.25, "current": 0.5},
    ]
    club = entry(report, "club_member_status")  # absent from both: listed, not measured, last
    assert club["distance"] is None and club["note"] == "no statistics in baseline and current"
    assert report["features"][0]["feature"] == "age" and report["drifted"] == ["age"]


def test_profile_override_wins_over_default(profile, schema):
    contract = dataclasses.replace(profile.contract, drift_thresholds={"club_member_status": 0.5, "customer_id": 0.9})
    report = drift.compare(*club_shift(profile, schema), schema, dataclasses.replace(profile, contract=contract))
    club = entry(report, "club_member_status")
    assert club["threshold"] == pytest.approx(0.5) and club["distance"] == pytest.approx(0.4)
    assert not club["drifted"] and report["drifted"] == []
    assert entry(report, "age")["threshold"] == pytest.approx(0.1)  # the hm override replaced: back to default
    ids = entry(report, "customer_id")
    assert ids["kind"] == "id" and ids["metric"] == "l_infinity" and ids["distance"] == 0.0


def test_several_datasets_need_a_split(profile, schema):
    stats = stats_of(make_frame(profile, schema))
    both = statistics_pb2.DatasetFeatureStatisticsList()
    for name in ("train", "eval"):
        both.datasets.add().CopyFrom(stats.datasets[0])
        both.datasets[-1].name = name
    with pytest.raises(ValueError, match=r"baseline statistics hold 2 datasets \['train', 'eval'\]"):
        drift.compare(both, both, schema, profile)
    assert drift.compare(both, stats, schema, profile, split="eval")["drifted"] == []


def test_write_report_is_self_contained(profile, schema, tmp_path):
    report = drift.compare(*club_shift(profile, schema), schema, profile)
    json_path, html_path = drift.write_report(report, str(tmp_path / "out"), "Drift <train> & more")
    with open(json_path, encoding="utf-8") as f:
        assert json.load(f) == report
    with open(html_path, encoding="utf-8") as f:
        page = f.read()
    assert "club_member_status" in page and "PRE-CREATE" in page and "1 of 10 features drifted" in page
    assert "Drift &lt;train&gt; &amp; more" in page and "<train>" not in page
    assert "http" not in page and "<link" not in page and "<script" not in page
    png = base64.b64decode(page.split("data:image/png;base64,")[1].split("'")[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # IHDR
    assert width == 800 and 300 <= height <= 600 and 10_000 < len(png) < 200_000


def write_binary_as_tfx(stats, path):
    """Writes ``stats`` the way TFX StatisticsGen does: tfdv.WriteStatisticsToBinaryFile in a Beam pipeline."""
    with beam.Pipeline() as pipeline:
        _ = pipeline | beam.Create([stats]) | tfdv.WriteStatisticsToBinaryFile(path)


def test_load_statistics_reads_tfx_artifacts_and_files(profile, schema, tmp_path):
    train, shifted = club_shift(profile, schema)
    artifact = tmp_path / "ExampleStatistics" / "7"
    for split, stats in (("train", train), ("eval", shifted)):
        os.makedirs(artifact / f"Split-{split}")
        write_binary_as_tfx(stats, str(artifact / f"Split-{split}" / drift.STATS_FILE))
    assert drift.load_statistics(str(artifact)) == train
    assert drift.load_statistics(str(artifact), split="eval") == shifted
    assert drift.load_statistics(str(artifact / "Split-eval")) == shifted
    assert drift.load_statistics(str(artifact / "Split-eval" / drift.STATS_FILE)) == shifted
    tfdv.write_stats_text(train, str(tmp_path / "train.pbtxt"))
    assert drift.load_statistics(str(tmp_path / "train.pbtxt")) == train

    with pytest.raises(
        ValueError, match=r"7: no statistics: expected Split-test/FeatureStats.pb .*Split-eval, Split-train"
    ):
        drift.load_statistics(str(artifact), split="test")
    with pytest.raises(ValueError, match="nowhere: statistics not found"):
        drift.load_statistics(str(tmp_path / "nowhere"))
    (tmp_path / "bad.pbtxt").write_text("datasets { bogus: 1 }")
    with pytest.raises(ValueError, match="bad.pbtxt: not a text DatasetFeatureStatisticsList"):
        drift.load_statistics(str(tmp_path / "bad.pbtxt"))
