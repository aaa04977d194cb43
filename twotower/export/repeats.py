"""The history's repeat scores at serving time: a user's own earlier items, scored as in training.

Training adds a learned score to the logit of every candidate in the user's history
(``trainer.history``, ``repeat``): logit = q.c / temperature + bias. Serving ranks by
``q.c + temperature x bias``, the same order on the dot products' scale. ``history_scores``
computes it for the history items themselves; the signatures put those scores in place of
the plain dot products (``serving_default``) or return them next to the query embedding
(``query_embedding``'s ``history_item_ids`` and ``history_scores``), so a client searching an
index of candidate embeddings (ScaNN) merges them into its top-K.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import tensorflow as tf

from twotower.transform.features import history_ages

UNSCORED = -1e9  # a padding slot's score: below any real one


def history_scores(
    histories: Sequence[tf.keras.layers.Layer],
    transformed: Dict[str, tf.Tensor],
    queries: tf.Tensor,
    item_rows: tf.Tensor,
    item_embeddings: tf.Tensor,
    scale: float,
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Returns (catalogue rows ``[batch, H]`` int64, -1 where none; scores ``[batch, H]`` float32) of history items.

    ``histories``: the query tower's history encoders with ``repeat``; ``transformed``: the request's
    transformed features; ``queries``: ``[batch, dim]``; ``item_rows``: ``[n_vocab + 1]`` catalogue row of each
    item index (-1: not in the catalogue). An item that occurs twice gets the sum of its occurrences' scores.
    """
    all_rows, all_scores = [], []
    for history in histories:
        ids = transformed[history.feature.name]
        bias = history.repeat_scores(ids, transformed[history_ages(history.feature)]) * scale  # [batch, L]
        same = tf.cast(tf.equal(ids[:, :, None], ids[:, None, :]), tf.float32)
        total = tf.reduce_sum(same * bias[:, None, :], axis=2)
        rows = tf.gather(item_rows, tf.clip_by_value(ids, 0, tf.shape(item_rows, out_type=ids.dtype)[0] - 1))
        rows = tf.where(ids >= 0, rows, tf.constant(-1, rows.dtype))
        vectors = tf.gather(item_embeddings, tf.maximum(rows, 0))  # [batch, L, dim]
        dots = tf.reduce_sum(queries[:, None, :] * vectors, axis=-1)
        all_rows.append(rows)
        all_scores.append(tf.where(rows >= 0, dots + total, UNSCORED))
    return tf.concat(all_rows, axis=1), tf.concat(all_scores, axis=1)


def merge_top_k(
    rows: tf.Tensor, scores: tf.Tensor, history_rows: tf.Tensor, history: tf.Tensor, k: int
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Returns the top ``k`` (rows, scores) of an index search (``[batch, k]``) merged with the history items.

    An item in both takes its history score; an item twice in the history counts once; history slots
    with row -1 are ignored. Rows are catalogue rows (int64), scores float32.
    """
    rows = tf.cast(rows, tf.int64)
    in_history = tf.reduce_any(tf.equal(rows[:, :, None], history_rows[:, None, :]), axis=2)
    scores = tf.where(in_history, UNSCORED, scores)
    length = tf.shape(history_rows)[1]
    earlier = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0) & ~tf.eye(length, dtype=tf.bool)
    repeated = tf.reduce_any(tf.equal(history_rows[:, :, None], history_rows[:, None, :]) & earlier[None], axis=2)
    history = tf.where(repeated | (history_rows < 0), UNSCORED, history)
    merged_scores, slots = tf.math.top_k(tf.concat([scores, history], axis=1), k=k)
    return tf.gather(tf.concat([rows, history_rows], axis=1), slots, batch_dims=1), merged_scores


def with_history_scores(scores: tf.Tensor, rows: tf.Tensor, history: tf.Tensor) -> tf.Tensor:
    """Returns ``scores`` ``[batch, n]`` with each history item's column set to its ``history`` score."""
    slots = tf.where(rows >= 0)  # [m, 2]: (row of the batch, slot of the history)
    targets = tf.stack([slots[:, 0], tf.gather_nd(rows, slots)], axis=1)
    return tf.tensor_scatter_nd_update(scores, targets, tf.gather_nd(history, slots))
