"""Every feature kind analysed and transformed for real (tft_beam.AnalyzeAndTransformDataset, 300 rows)."""

import calendar
import datetime
import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
import yaml
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from twotower.config import from_dict, load_profile
from twotower.transform import features
from twotower.transform.features import ITEM_ID, TEXT_PADDING, USER_ID, preprocess, raw_inputs
from twotower.transform.preprocessing import TF_COMPAT_V1

N = 300
START = 1600214400  # 2020-09-16 00:00:00 UTC, a Wednesday, day 259 (0-based) of leap year 2020
FEATURES = [
    {"name": "age", "source": "user", "kind": "numeric", "transform": "quantiles", "buckets": 4},
    {"name": "club", "source": "user", "kind": "categorical", "min_frequency": 5},
    {"name": "when", "source": "interaction", "kind": "time", "parts": ["hour", "day_of_week", "day_of_year"]},
    {"name": "age_of", "source": "interaction", "kind": "time", "recency": True},
    {"name": "desc", "source": "item", "kind": "text"},
    {"name": "genres", "source": "item", "kind": "text", "separator": "|", "max_tokens": 3},
    {"name": "vec", "source": "item", "kind": "dense", "dim": 3},
    {"name": "type", "source": "item", "kind": "categorical"},
    {"name": "colour", "source": "item", "kind": "categorical", "model": False},
    {"name": "type_x_colour", "source": "item", "kind": "cross", "cross": ["type", "colour"], "hash_buckets": 7},
]
TYPES, COLOURS = ["Dress", "Top", "Trousers"], ["Black", "White"]
GENRES = ["Action|Comedy|Drama|Horror", "Comedy", " Drama | Comedy ", ""]


def feature_profile():
    with open(load_profile("hm").path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    raw["data"].update(timestamp="ts", timestamp_format="unix", user_min_frequency=2)
    raw["features"] = FEATURES
    raw.pop("contract")
    return from_dict(raw)


def raw_row(i: int) -> dict:
    return {
        # u0..u19 about 15 times each; r290..r299 once each: below user_min_frequency 2
        "customer_id": [f"u{i % 20}" if i < 290 else f"r{i}"],
        "article_id": [f"a{i % 4}"],
        "club": ["RARE" if i in (1, 2, 3) else ("ACTIVE" if i % 2 else "LEFT CLUB")],
        "age": [] if i % 7 == 0 else [float(i % 100)],
        "ts": [START + 3600 * i],  # hourly, 12.5 days
        "desc": [] if i % 5 == 0 else [f"Soft cotton T-shirt, {COLOURS[i % 2]}!"],
        "genres": [GENRES[i % 4]],
        "vec": [] if i % 4 == 0 else [float(i), 2.0 * i, 3.0 * i],
        "type": [TYPES[i % 3]],
        "colour": [COLOURS[i % 2]],
    }


RAW_SPEC = {
    "customer_id": tf.io.FixedLenFeature([1], tf.string),
    "article_id": tf.io.FixedLenFeature([1], tf.string),
    "club": tf.io.FixedLenFeature([1], tf.string),
    "age": tf.io.VarLenFeature(tf.float32),
    "ts": tf.io.FixedLenFeature([1], tf.int64),
    "desc": tf.io.VarLenFeature(tf.string),
    "genres": tf.io.FixedLenFeature([1], tf.string),
    "vec": tf.io.VarLenFeature(tf.float32),
    "type": tf.io.FixedLenFeature([1], tf.string),
    "colour": tf.io.FixedLenFeature([1], tf.string),
}


def analyze_and_transform(profile, temp: str, out: str) -> list:
    """Runs Transform on the N rows; writes the transform graph (raw metadata too) to ``out``; returns the rows."""
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    metadata_io.write_metadata(metadata, os.path.join(out, tft.TFTransformOutput.RAW_METADATA_DIR))
    with tft_beam.Context(temp_dir=temp, force_tf_compat_v1=TF_COMPAT_V1):  # as the pipeline traces it
        (data, _), transform_fn = ([raw_row(i) for i in range(N)], metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocess(inputs, profile)
        )
        _ = transform_fn | tft_beam.WriteTransformFn(out)
    return data


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    profile = feature_profile()
    out = str(tmp_path_factory.mktemp("tft_out"))
    data = analyze_and_transform(profile, str(tmp_path_factory.mktemp("tft")), out)
    return profile, data, tft.TFTransformOutput(out)


def test_raw_inputs_add_the_timestamp_and_crossed_columns():
    query, items = raw_inputs(feature_profile())
    assert query == ["customer_id", "age", "club", "ts"]  # 'ts' once, for both time features
    assert items == ["article_id", "desc", "genres", "vec", "type", "colour"]  # colour: crossed, model: false


def test_every_output_has_a_fixed_shape(transformed):
    _, _, output = transformed
    spec = output.transformed_feature_spec()
    shapes = {name: (list(s.shape), s.dtype) for name, s in spec.items()}
    assert shapes == {
        USER_ID: ([], tf.int64),
        ITEM_ID: ([], tf.int64),
        "age": ([], tf.int64),
        "club": ([], tf.int64),
        "when": ([6], tf.float32),  # sin, cos of 3 parts
        "age_of": ([1], tf.float32),
        "desc": ([16], tf.int64),
        "genres": ([3], tf.int64),
        "vec": ([3], tf.float32),
        "type": ([], tf.int64),
        "type_x_colour": ([], tf.int64),
    }


def test_rare_ids_and_values_go_to_the_oov_bucket(transformed):
    _, data, output = transformed
    assert output.vocabulary_size_by_name(USER_ID) == 20  # r290..r299 seen once: below user_min_frequency 2
    assert [row[USER_ID] for row in data[290:]] == [20] * 10
    # 'RARE' 3 times, below min_frequency 5
    assert sorted(output.vocabulary_by_name("club")) == [b"ACTIVE", b"LEFT CLUB"]
    assert [row["club"] for row in data[1:4]] == [2, 2, 2]


def test_quantile_buckets_are_in_range_and_ordered(transformed):
    _, data, _ = transformed
    ages = [(raw_row(i)["age"], row["age"]) for i, row in enumerate(data)]
    assert {b for a, b in ages if not a} == {4}  # missing -> bucket 'buckets'
    present = sorted((a[0], b) for a, b in ages if a)
    assert {b for _, b in present} == {0, 1, 2, 3}
    assert [b for _, b in present] == sorted(b for _, b in present)  # monotone in age
    # ages 0..99 about uniform: quartile boundaries near 25, 50, 75
    assert dict(present)[10.0] == 0 and dict(present)[90.0] == 3


def _expected_time(seconds: int) -> list:
    t = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    year_days = 366 if calendar.isleap(t.year) else 365
    fractions = [
        (t.hour * 3600 + t.minute * 60 + t.second) / 86400,
        t.weekday() / 7,
        (t.timetuple().tm_yday - 1) / year_days,
    ]
    return [f(2 * math.pi * x) for x in fractions for f in (math.sin, math.cos)]


def test_cyclical_time_parts_match_the_calendar(transformed):
    _, data, _ = transformed
    for i in (0, 13, 100, N - 1):
        assert data[i]["when"] == pytest.approx(_expected_time(START + 3600 * i), abs=1e-5), i
    # row 0: midnight (hour angle 0), Wednesday (2/7 of the week), day 259 of 366
    assert data[0]["when"][:2] == pytest.approx([0.0, 1.0], abs=1e-6)
    assert data[0]["when"][2:4] == pytest.approx([math.sin(4 * math.pi / 7), math.cos(4 * math.pi / 7)], abs=1e-6)
    assert np.all(np.abs([row["when"] for row in data]) <= 1.0)


@pytest.mark.parametrize("date", ["1900-03-01", "1970-01-01", "1999-12-31", "2000-02-29", "2020-12-31", "2100-03-01"])
def test_day_of_year_matches_python(date):
    d = datetime.date.fromisoformat(date)
    days = (d - datetime.date(1970, 1, 1)).days
    day, length = features.day_of_year(tf.constant([days], tf.int64))
    assert (int(day[0]), int(length[0])) == (d.timetuple().tm_yday - 1, 366 if calendar.isleap(d.year) else 365)


def test_recency_is_log_scaled_age_and_clipped_after_training(transformed):
    _, data, output = transformed
    # span: 299 hours = 12.458 days; row 0 is the oldest (1), row 299 the newest (0)
    assert data[0]["age_of"] == pytest.approx([1.0]) and data[N - 1]["age_of"] == pytest.approx([0.0])
    span = 299 / 24
    assert data[N - 1 - 24]["age_of"] == pytest.approx([math.log1p(1) / math.log1p(span)], abs=1e-5)
    later = output.transform_features_layer()({"ts": tf.constant([[START + 3600 * 1000]], tf.int64)})
    assert later["age_of"].numpy().tolist() == [[0.0]]  # a serving request after the training data


def test_cross_is_a_deterministic_bucket_of_the_value_pair(transformed):
    _, data, _ = transformed
    crosses = [row["type_x_colour"] for row in data]
    assert all(0 <= c < 7 for c in crosses)
    for i in range(6):
        want = tf.strings.to_hash_bucket_fast(f"{TYPES[i % 3]}\x1f{COLOURS[i % 2]}", 7).numpy()
        assert crosses[i] == want == crosses[i + 6]  # same pair every 6 rows


def test_text_tokens_are_padded_vocabulary_indices(transformed):
    _, data, output = transformed
    words = output.vocabulary_by_name("desc")
    assert sorted(words) == [b"black", b"cotton", b"shirt", b"soft", b"t", b"white"]
    row = data[1]["desc"]  # "Soft cotton T-shirt, White!"
    assert [words[i] for i in row[:5]] == [b"soft", b"cotton", b"t", b"shirt", b"white"]
    assert list(row[5:]) == [TEXT_PADDING] * 11
    assert list(data[0]["desc"]) == [TEXT_PADDING] * 16  # missing text: no tokens
    genres = output.vocabulary_by_name("genres")
    assert sorted(genres) == [b"Action", b"Comedy", b"Drama"]  # 'Horror' was always the 4th of max_tokens 3
    assert [genres[i] for i in data[0]["genres"]] == [b"Action", b"Comedy", b"Drama"]
    assert [genres[i] for i in data[2]["genres"][:2]] == [b"Drama", b"Comedy"]  # stripped
    assert list(data[3]["genres"]) == [TEXT_PADDING] * 3  # empty value
    layer = output.transform_features_layer()
    unseen = layer({"genres": tf.constant([["Horror|Comedy"]])})["genres"].numpy()[0]
    assert list(unseen) == [len(genres), genres.index(b"Comedy"), TEXT_PADDING]  # unseen -> OOV


def test_dense_vectors_pass_through_and_missing_is_zeros(transformed):
    _, data, _ = transformed
    assert list(data[5]["vec"]) == [5.0, 10.0, 15.0]
    assert list(data[4]["vec"]) == [0.0, 0.0, 0.0]
    fixed = features.dense_vector(tf.constant([[1.0, 2.0, 3.0]]), 3)
    assert fixed.shape == (1, 3)
