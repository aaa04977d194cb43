"""Serving the repeat scores: history items scored as in training, merged into the catalogue's scores."""

import numpy as np
import tensorflow as tf

from twotower.config import Feature
from twotower.export import repeats
from twotower.trainer.history import HistoryEncoder


def test_history_scores_add_each_occurrence_to_the_dot_product_on_the_temperature_scale():
    items = tf.keras.layers.Embedding(4, 2)
    items.build([None])
    encoder = HistoryEncoder(Feature("h", "interaction", "history", max_length=3), items, n_items=3)
    encoder.repeat.assign(np.full(16, 2.0, np.float32))  # every occurrence scores 2 logits
    transformed = {"h": tf.constant([[1, 1, -1], [2, 3, -1]], tf.int64), "h_age_days": tf.zeros([2, 3])}
    queries = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    embeddings = tf.constant([[0.1, 0.0], [0.2, 0.3], [0.4, 0.5]])  # catalogue rows
    item_rows = tf.constant([2, 0, 1, -1], tf.int64)  # item index 0 is row 2, 1 -> row 0, 2 -> row 1, OOV -> none
    rows, scores = repeats.history_scores([encoder], transformed, queries, item_rows, embeddings, scale=0.1)
    assert rows.numpy().tolist() == [[0, 0, -1], [1, -1, -1]]
    # row 0: item 1 twice -> q.e(row 0) = 0.1, plus 0.1 x (2 + 2); row 1: item 2 -> q.e(row 1) = 0.3, plus 0.1 x 2
    np.testing.assert_allclose(scores.numpy()[:, :2], [[0.5, 0.5], [0.5, repeats.UNSCORED]], rtol=1e-6)
    catalogue = tf.matmul(queries, embeddings, transpose_b=True)
    merged = repeats.with_history_scores(catalogue, rows, scores).numpy()
    np.testing.assert_allclose(merged, [[0.5, 0.2, 0.4], [0.0, 0.5, 0.5]], rtol=1e-6)


def test_merge_top_k_takes_history_scores_counts_repeats_once_and_ignores_empty_slots():
    rows = tf.constant([[5, 7, 9]], tf.int64)  # an index's top 3 by dot product
    scores = tf.constant([[0.9, 0.8, 0.7]])
    history_rows = tf.constant([[7, 2, 7, -1]], tf.int64)  # item 7 twice, item 2 not in the index's top
    history = tf.constant([[0.95, 0.85, 0.95, 5.0]])  # the -1 slot must never win
    merged_rows, merged = repeats.merge_top_k(rows, scores, history_rows, history, k=3)
    assert merged_rows.numpy().tolist() == [[7, 5, 2]]
    np.testing.assert_allclose(merged.numpy(), [[0.95, 0.9, 0.85]], rtol=1e-6)
