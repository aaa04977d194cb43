"""Towers over every kind of transformed input, on hand-made batches (real Keras)."""

import numpy as np
import pytest
import tensorflow as tf
import yaml

from twotower.config import from_dict, load_profile
from twotower.trainer import towers
from twotower.trainer.towers import BAG, EMBEDDING, FLOATS, PROJECTION, TowerInput
from twotower.transform.features import ITEM_ID, TEXT_PADDING, USER_ID


def _profile(features):
    with open(load_profile("hm").path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    raw["data"].update(timestamp_format="unix")
    raw["features"] = features
    raw.pop("contract")
    return from_dict(raw)


PROFILE = _profile(
    [
        {"name": "age", "source": "user", "kind": "numeric"},
        {"name": "age_bucket", "source": "user", "kind": "numeric", "transform": "quantiles", "buckets": 10},
        {"name": "club", "source": "user", "kind": "categorical", "embedding_dim": 5},
        {"name": "when", "source": "interaction", "kind": "time", "parts": ["hour"], "recency": True},
        {"name": "desc", "source": "item", "kind": "text"},
        {"name": "vec", "source": "item", "kind": "dense", "dim": 768},
        {"name": "type", "source": "item", "kind": "categorical"},
        {"name": "colour", "source": "item", "kind": "categorical"},
        {"name": "type_x_colour", "source": "item", "kind": "cross", "cross": ["type", "colour"], "hash_buckets": 1000},
    ]
)
SIZES = {USER_ID: 11, ITEM_ID: 5, "club": 4, "desc": 600, "type": 49, "colour": 50}  # vocabulary + OOV


def test_widths_default_from_cardinality_and_honour_overrides():
    query = towers.tower_inputs(PROFILE, SIZES, towers.QUERY_SOURCES)
    candidate = towers.tower_inputs(PROFILE, SIZES, towers.CANDIDATE_SOURCES)
    assert query == [
        TowerInput("age", FLOATS),
        TowerInput("age_bucket", EMBEDDING, size=11, width=8),  # 10 buckets + missing; < 50 -> 8
        TowerInput("club", EMBEDDING, size=4, width=5),  # embedding_dim: 5 wins over 8
        TowerInput("when", FLOATS),
    ]
    assert candidate == [
        TowerInput("desc", BAG, size=600, width=32),  # 500 <= 600 < 5,000 -> 32
        TowerInput("vec", PROJECTION, width=32),  # projected to embedding_width(dim 768) = 32
        TowerInput("type", EMBEDDING, size=49, width=8),  # 49 < 50 -> 8
        TowerInput("colour", EMBEDDING, size=50, width=16),  # 50 -> 16
        TowerInput("type_x_colour", EMBEDDING, size=1000, width=32),
    ]


@pytest.mark.parametrize(
    "cardinality, width",
    [(1, 8), (49, 8), (50, 16), (499, 16), (500, 32), (4_999, 32), (5_000, 64), (49_999, 64), (50_000, 128)]
    + [(499_999, 128), (500_000, 256), (10_000_000, 256)],
)
def test_embedding_width_table(cardinality, width):
    assert towers.embedding_width(cardinality) == width


def _batch(n: int) -> dict:
    rng = np.random.default_rng(0)
    desc = np.full((n, 16), TEXT_PADDING, np.int64)
    desc[:, :3] = rng.integers(0, 600, (n, 3))
    desc[0] = TEXT_PADDING  # a row without tokens
    return {
        USER_ID: tf.constant(rng.integers(0, 11, n)),
        ITEM_ID: tf.constant(rng.integers(0, 5, n)),
        "age": tf.constant(rng.normal(size=n), tf.float32),
        "age_bucket": tf.constant(rng.integers(0, 11, n)),
        "club": tf.constant(rng.integers(0, 4, n)),
        "when": tf.constant(rng.uniform(-1, 1, (n, 3)), tf.float32),
        "desc": tf.constant(desc),
        "vec": tf.constant(rng.normal(size=(n, 768)), tf.float32),
        "type": tf.constant(rng.integers(0, 49, n)),
        "colour": tf.constant(rng.integers(0, 50, n)),
        "type_x_colour": tf.constant(rng.integers(0, 1000, n)),
    }


@pytest.mark.parametrize("sources, id_feature", [(towers.QUERY_SOURCES, USER_ID), (towers.CANDIDATE_SOURCES, ITEM_ID)])
def test_tower_with_every_kind_of_input_returns_unit_vectors(sources, id_feature):
    tf.keras.utils.set_random_seed(0)
    inputs = towers.tower_inputs(PROFILE, SIZES, sources)
    tower = towers.Tower(id_feature, SIZES[id_feature], inputs, embedding_dim=12, hidden_units=[16])
    out = tower(_batch(6)).numpy()
    assert out.shape == (6, 12) and out.dtype == np.float32
    assert np.linalg.norm(out, axis=1) == pytest.approx(np.ones(6), abs=1e-5)
    assert len(tower.parts) == sum(spec.kind != FLOATS for spec in inputs)


def test_bag_of_tokens_is_the_mean_over_present_tokens():
    tower = towers.Tower(ITEM_ID, 2, [TowerInput("desc", BAG, size=4, width=3)], embedding_dim=2, hidden_units=[])
    spec = tower.specs[0]
    tower.parts["desc"].build((None,))
    table = tower.parts["desc"].embeddings.numpy()
    got = tower._part(spec, tf.constant([[1, 3, TEXT_PADDING], [TEXT_PADDING] * 3])).numpy()
    assert got[0] == pytest.approx((table[1] + table[3]) / 2)  # padding does not count
    assert got[1] == pytest.approx(np.zeros(3))  # no tokens: zeros


def test_mlp_options_build_the_layers_asked_for():
    plain = towers.mlp_layers((8,), 4, dropout=0.0, batch_norm=False)
    assert [type(x).__name__ for x in plain] == ["Dense", "ReLU", "Dense"]
    full = towers.mlp_layers((8, 6), 4, dropout=0.3, batch_norm=True, dtype="mixed_bfloat16")
    names = [type(x).__name__ for x in full]
    assert names == ["Dense", "BatchNormalization", "ReLU", "Dropout"] * 2 + ["Dense"]
    assert not full[0].use_bias and full[3].rate == 0.3 and full[-1].compute_dtype == "bfloat16"
