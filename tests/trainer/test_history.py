"""History pooling and repeat scores on hand-made tables (real Keras layers)."""

import numpy as np
import pytest
import tensorflow as tf

from twotower.config import Feature
from twotower.trainer import history
from twotower.trainer.history import HistoryEncoder

# 3 items + the OOV row (index 3); item i's vector is e_i (the OOV row is all 9s: it must never count)
TABLE = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [9.0, 9.0, 9.0]], np.float32)


def _embedding(table):
    layer = tf.keras.layers.Embedding(*table.shape)
    layer.build([None])
    layer.set_weights([table])
    return layer


def _encoder(**options):
    feature = Feature("h", "interaction", "history", max_length=4, **options)
    return HistoryEncoder(feature, _embedding(TABLE), n_items=3)


IDS = tf.constant([[0, 1, 3, -1], [-1, -1, -1, -1]], tf.int64)  # row 1: no history; 3 = OOV, -1 = padding
AGES = tf.constant([[0.0, 30.0, 5.0, 0.0], [0.0, 0.0, 0.0, 0.0]])


def test_mean_pools_known_items_only_and_empty_is_zero():
    out = _encoder(pooling="mean")(IDS, AGES).numpy()
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])  # (e_0 + e_1) / 2; OOV and padding masked


def test_recency_halves_the_weight_every_half_life():
    out = _encoder(pooling="recency", half_life_days=30.0)(IDS, AGES).numpy()
    np.testing.assert_allclose(out[0], [1 / 1.5, 0.5 / 1.5, 0.0], rtol=1e-6)  # weights 1 and 0.5
    np.testing.assert_allclose(out[1], 0.0)


def test_attention_pools_to_a_finite_vector_and_an_empty_history_keeps_only_the_mean():
    encoder = _encoder(pooling="attention")
    out = encoder(IDS, AGES).numpy()
    assert out.shape == (2, encoder.output_width) and encoder.output_width == 6 and np.isfinite(out).all()
    np.testing.assert_allclose(out[1], 0.0)  # no history: the block's output is masked, the mean is 0


def test_item_features_are_pooled_through_their_own_tables():
    feature = Feature("h", "interaction", "history", max_length=4, item_features=("colour",))
    colours = _embedding(np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]], np.float32))  # 2 colours + OOV
    by_item = {"colour": np.array([1, 1, 0, 2])}  # items 0, 1 are colour 1, item 2 colour 0, OOV item -> OOV colour
    encoder = HistoryEncoder(feature, _embedding(TABLE), 3, {"colour": colours}, by_item)
    out = encoder(IDS, AGES).numpy()
    np.testing.assert_allclose(out[0], [0.5, 0.5, 0.0, 0.0, 1.0])  # ids' mean, then colour 1 twice
    assert encoder.output_width == 5


@pytest.mark.parametrize("pooling", ["mean", "recency"])
def test_pooling_by_value_matches_the_masked_mean_of_the_embeddings_in_value_and_gradient(pooling):
    rng = np.random.default_rng(0)
    colours = _embedding(rng.normal(size=(6, 3)).astype(np.float32))
    values = tf.constant(rng.integers(0, 6, (9, 7)), tf.int64)
    weights = tf.constant(rng.uniform(0, 1, (9, 7)) * (rng.random((9, 7)) < 0.6), tf.float32)
    weights = tf.concat([weights, tf.zeros([1, 7])], axis=0)  # and a row without history
    values = tf.concat([values, tf.zeros([1, 7], tf.int64)], axis=0)
    if pooling == "mean":
        weights = tf.cast(weights > 0, tf.float32)
    probe = tf.constant(rng.normal(size=(10, 3)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        by_value = history.pooled_by_value(values, weights, colours)
        dense = history.masked_mean(colours(values), weights)
        by_value_loss, dense_loss = tf.reduce_sum(by_value * probe), tf.reduce_sum(dense * probe)
    np.testing.assert_allclose(by_value.numpy(), dense.numpy(), atol=1e-6)
    np.testing.assert_allclose(by_value.numpy()[-1], 0.0)
    got = tf.convert_to_tensor(tape.gradient(by_value_loss, colours.embeddings)).numpy()
    want = tf.convert_to_tensor(tape.gradient(dense_loss, colours.embeddings)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(want).max() > 0.1  # the check compares real gradients


def test_age_buckets_are_log2_days():
    ages = tf.constant([0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 7.0, 8.0, 1e9, -3.0])
    assert history.age_buckets(ages).numpy().tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 15, 0]


def test_repeat_bias_sums_each_occurrence_for_matching_candidates():
    histories = tf.constant([[2, 5, 2, -1], [7, -1, -1, -1]], tf.int64)
    scores = tf.constant([[1.0, 0.5, 0.25, 0.0], [3.0, 0.0, 0.0, 0.0]])
    candidates = tf.constant([2, 5, 7, 9], tf.int64)
    bias = history.repeat_bias(histories, scores, candidates).numpy()
    np.testing.assert_allclose(bias, [[1.25, 0.5, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]])


def test_repeat_scores_start_at_zero_and_skip_padding_and_oov():
    encoder = _encoder()
    np.testing.assert_allclose(encoder.repeat_scores(IDS, AGES).numpy(), 0.0)
    encoder.repeat.assign(np.arange(16, dtype=np.float32))
    # ages 0 -> bucket 0, 30 -> bucket 4 (log2(31) = 4.95); the OOV item and the padding score 0
    np.testing.assert_allclose(encoder.repeat_scores(IDS, AGES).numpy()[0], [0.0, 4.0, 0.0, 0.0])
    assert not hasattr(_encoder(repeat=False), "repeat")


def test_masked_mean_by_hand():
    vectors = tf.constant([[[2.0, 0.0], [0.0, 4.0]]])
    assert history.masked_mean(vectors, tf.constant([[1.0, 3.0]])).numpy().tolist() == [[0.5, 3.0]]
    assert history.masked_mean(vectors, tf.constant([[0.0, 0.0]])).numpy().tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("pooling", ["mean", "recency", "attention"])
def test_gradients_reach_the_shared_item_table(pooling):
    encoder = _encoder(pooling=pooling)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(IDS, AGES) ** 2)
    grad = tape.gradient(loss, encoder.item_embedding.embeddings)
    values = tf.convert_to_tensor(grad).numpy()
    assert np.abs(values[:2]).sum() > 0 and np.abs(values[3]).sum() == 0  # history items learn; OOV does not
