"""preprocessing_fn run for real with tft_beam.AnalyzeAndTransformDataset on a few hundred rows."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from twotower.config import load_profile
from twotower.transform.features import ITEM_ID, USER_ID, preprocess, to_dense
from twotower.transform.preprocessing import TF_COMPAT_V1

N = 300


def _rows():
    rows = []
    for i in range(N):
        row = {
            "customer_id": f"u{i % 10}",
            "article_id": f"a{i % 4}",
            "club_member_status": "ACTIVE" if i % 3 else "PRE-CREATE",
            "fashion_news_frequency": "NONE",
            "product_type_name": "Dress",
            "product_group_name": "Garment Full body",
            "colour_group_name": ["Black", "White"][i % 2],
            "index_group_name": "Ladieswear",
            "garment_group_name": "Dresses",
        }
        # age 20 or 40 (mean 30, std 10); every 10th row has no age
        row["age"] = [] if i % 10 == 0 else [20.0 if i % 2 else 40.0]
        # the history: a known item and one never seen in training; every 5th row has none
        row["recent_items"] = [] if i % 5 == 0 else [f"a{(i + 1) % 4}", "zz"]
        row["recent_items_age_days"] = [] if i % 5 == 0 else [1.5, -2.0]  # a negative age counts as 0
        rows.append(row)
    return rows


def _hm_with_zscored_age():
    """The hm profile with age z-scored (test_feature_kinds.py covers its quantile buckets)."""
    profile = load_profile("hm")
    age = dataclasses.replace(profile.features[0], transform="zscore", buckets=10)
    return dataclasses.replace(profile, features=(age,) + profile.features[1:])


def _feature_spec():
    profile = load_profile("hm")
    spec = {
        name: tf.io.FixedLenFeature([1], tf.string)
        for name in ["customer_id", "article_id"] + [f.name for f in profile.model_features if f.kind == "categorical"]
    }
    spec["age"] = tf.io.VarLenFeature(tf.float32)  # may be missing, as SchemaGen infers for real data
    spec["recent_items"] = tf.io.VarLenFeature(tf.string)
    spec["recent_items_age_days"] = tf.io.VarLenFeature(tf.float32)
    return spec


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    profile = _hm_with_zscored_age()
    rows = _rows()
    for row in rows:
        for key, value in row.items():
            if not isinstance(value, list):
                row[key] = [value]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(_feature_spec()))
    temp = str(tmp_path_factory.mktemp("tft"))
    with tft_beam.Context(temp_dir=temp, force_tf_compat_v1=TF_COMPAT_V1):  # as the pipeline traces it
        (data, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocess(inputs, profile)
        )
        out = str(tmp_path_factory.mktemp("tft_out"))
        _ = transform_fn | tft_beam.WriteTransformFn(out)
    return data, tft.TFTransformOutput(out)


def test_vocabularies_hold_every_value_with_one_oov_bucket(transformed):
    data, output = transformed
    assert output.vocabulary_size_by_name(USER_ID) == 10  # u0..u9
    assert output.vocabulary_size_by_name(ITEM_ID) == 4  # a0..a3
    assert sorted(output.vocabulary_by_name("colour_group_name")) == [b"Black", b"White"]
    assert {row[USER_ID] for row in data} == set(range(10))


def test_age_is_z_scored_and_missing_age_is_zero(transformed):
    data, _ = transformed
    # present ages: 150 odd rows of 20, 120 even rows of 40 (30 multiples of 10 missing)
    # mean = (150*20 + 120*40) / 270 = 28.89; std = 20 * sqrt(150*120) / 270 = 9.94
    mean, std = (150 * 20 + 120 * 40) / 270, 20 * math.sqrt(150 * 120) / 270
    ages = [row["age"] for row in data]
    assert ages[1] == pytest.approx((20 - mean) / std, abs=1e-5)  # i=1: age 20 -> -0.894
    assert ages[2] == pytest.approx((40 - mean) / std, abs=1e-5)  # i=2: age 40 -> 1.118
    assert ages[0] == pytest.approx(0.0, abs=1e-6)  # i=0: missing -> mean -> 0
    assert all(math.isfinite(a) for a in ages)


def test_hm_cross_of_group_and_colour(transformed):
    data, _ = transformed
    # one product group, colours alternate Black / White: two buckets, alternating
    crosses = [row["group_x_colour"] for row in data]
    assert all(0 <= c < 1000 for c in crosses) and crosses[0::2] == [crosses[0]] * 150
    assert crosses[1::2] == [crosses[1]] * 150 and crosses[0] != crosses[1]


def test_unseen_value_maps_to_oov_bucket(transformed):
    _, output = transformed
    layer = output.transform_features_layer()
    raw = {
        "customer_id": tf.constant([["u3"], ["stranger"]]),
        "age": tf.sparse.from_dense(tf.constant([[20.0], [0.0]])),
    }
    out = layer(raw)
    # vocabulary has 10 users -> ids 0..9, the OOV bucket is index 10
    assert out[USER_ID].numpy()[1] == 10
    assert 0 <= out[USER_ID].numpy()[0] < 10


def test_history_ids_map_through_the_item_vocabulary_with_unseen_ones_oov(transformed):
    data, output = transformed
    vocabulary = [v.decode() for v in output.vocabulary_by_name(ITEM_ID)]
    oov = len(vocabulary)  # one OOV bucket after the vocabulary
    for i, row in enumerate(data[:10]):
        ids, ages = list(row["recent_items"]), list(row["recent_items_age_days"])
        assert len(ids) == len(ages) == 50  # max_length: padded with -1, ages with 0
        if i % 5 == 0:
            assert ids == [-1] * 50 and ages == [0.0] * 50
        else:
            assert ids[:2] == [vocabulary.index(f"a{(i + 1) % 4}"), oov] and ids[2:] == [-1] * 48
            assert ages[:2] == [1.5, 0.0] and ages[2:] == [0.0] * 48


def test_to_dense_fills_missing_values():
    sparse = tf.SparseTensor(indices=[[1, 0]], values=["x"], dense_shape=[3, 1])
    assert to_dense(sparse).numpy().tolist() == [b"", b"x", b""]
    numbers = tf.SparseTensor(indices=[[0, 0]], values=[2.0], dense_shape=[2, 1])
    dense = to_dense(numbers).numpy()
    assert dense[0] == 2.0 and np.isnan(dense[1])
    # integers stay exact (timestamps in seconds); a missing one is 0
    assert to_dense(tf.constant([[1], [2]], tf.int32)).dtype == tf.int64
    ints = tf.SparseTensor(indices=[[1, 0]], values=tf.constant([1600000000], tf.int64), dense_shape=[2, 1])
    assert to_dense(ints).numpy().tolist() == [0, 1600000000]


def test_analysis_reads_only_the_columns_analyzers_need():
    """Traced as the pipeline traces it, Transform's analysis does not decode the 50-wide history columns."""
    profile = load_profile("hm")
    specs = {
        name: tf.SparseTensorSpec([None, None], spec.dtype)
        if isinstance(spec, tf.io.VarLenFeature)
        else tf.TensorSpec([None, *spec.shape], spec.dtype)
        for name, spec in _feature_spec().items()
    }
    columns = set(
        tft.get_analyze_input_columns(
            lambda inputs: preprocess(inputs, profile), specs, force_tf_compat_v1=TF_COMPAT_V1
        )
    )
    assert {"customer_id", "article_id", "age", "product_group_name"} <= columns
    assert not columns & {"recent_items", "recent_items_age_days"}
