"""Pooling a user's history in the query tower (feature kind ``history``).

A history arrives transformed (``transform.features.history_features``): item indices ``[batch, L]``
(most recent first, -1 padding, ``n_items`` the OOV bucket) and ages in days ``[batch, L]``. Each item
becomes its item-id embedding, looked up in the candidate tower's own table by default (shared: a
history item and a candidate are the same vector), concatenated with the embeddings of the
``item_features`` of that item (looked up by item index in a table built from the catalogue, then
embedded through the candidate tower's tables). Padding and OOV items are masked out. Pooling:

- ``mean``: the mean of the items' vectors;
- ``recency``: a mean weighted by ``0.5 ** (age / half_life_days)``;
- ``attention``: one causal self-attention block (SASRec-style, most recent first: each position
  attends to itself and older ones) over the vectors plus learned position and log-age embeddings,
  read at the most recent position, next to the plain mean.

An empty history pools to zeros, so a user without one still gets a query embedding.

With ``repeat`` (default), the encoder also learns how much a user's own earlier items are worth
as candidates: a score per log-age bucket, zero at first, added to the logit of every candidate
that is in the user's history (once per occurrence, so a regular buy counts more). Fashion and
wholesale customers rebuy; a dot product alone cannot rank "exactly the items this user had" above
their look-alikes. Where nobody repeats (MovieLens), the score learns to go negative. Serving adds
the same score to the history items' dot products (``export.signatures``).
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional

import numpy as np
import tensorflow as tf

from twotower.config import Feature

AGE_BUCKETS = 16  # log2-spaced age buckets of the attention block: 0, 1, 2-3, 4-7, ... days
SMALL_VOCABULARY = 1024  # item features with at most this many values are pooled by value (``pooled_by_value``)


class HistoryEncoder(tf.keras.layers.Layer):
    """Transformed history ``[batch, L]`` ids and ages -> ``[batch, width]`` float32 (module docstring)."""

    def __init__(
        self,
        feature: Feature,
        item_embedding: tf.keras.layers.Embedding,
        n_items: int,
        feature_embeddings: Optional[Mapping[str, tf.keras.layers.Embedding]] = None,
        feature_tables: Optional[Mapping[str, np.ndarray]] = None,
        **kwargs,
    ):
        """``item_embedding``: the item-id table (``n_items`` + OOV rows); ``feature_tables``: per item feature,
        ``[n_items + 1]`` int64 indices of each item's value (the last row: the OOV item), embedded by
        ``feature_embeddings``."""
        super().__init__(name=f"history_{feature.name}", **kwargs)
        self.feature = feature
        self.item_embedding = item_embedding
        self.n_items = n_items
        names = list(feature.item_features)
        self.feature_embeddings = {n: feature_embeddings[n] for n in names}
        self.feature_tables = {n: tf.Variable(feature_tables[n], trainable=False, name=f"{n}_by_item") for n in names}
        self.width = item_embedding.output_dim + sum(e.output_dim for e in self.feature_embeddings.values())
        if feature.repeat:
            self.repeat = self.add_weight(name="repeat", shape=[AGE_BUCKETS], initializer="zeros", trainable=True)
        if feature.pooling == "attention":
            self.project = tf.keras.layers.Dense(self.width)
            self.positions = tf.keras.layers.Embedding(feature.max_length, self.width)
            self.age_buckets = tf.keras.layers.Embedding(AGE_BUCKETS, self.width)
            self.attention = SelfAttention(self.width, heads=2 if self.width % 2 == 0 else 1)
            self.norm1, self.norm2 = tf.keras.layers.LayerNormalization(), tf.keras.layers.LayerNormalization()
            self.ffn = tf.keras.Sequential(
                [tf.keras.layers.Dense(2 * self.width, activation="relu"), tf.keras.layers.Dense(self.width)]
            )

    @property
    def output_width(self) -> int:
        """The pooled vector's width: twice the item vector's for attention (the block and the mean)."""
        return 2 * self.width if self.feature.pooling == "attention" else self.width

    def item_parts(self, ids: tf.Tensor) -> List[tf.Tensor]:
        """Returns each history item's id embedding and item feature embeddings, each ``[batch, L, dim]``."""
        index = tf.clip_by_value(ids, 0, self.n_items)
        parts = [self.item_embedding(index)]
        for name, table in self.feature_tables.items():
            parts.append(self.feature_embeddings[name](tf.gather(table, index)))
        return parts

    def item_vectors(self, ids: tf.Tensor) -> tf.Tensor:
        """Returns ``[batch, L, width]``: each history item's ``item_parts`` side by side."""
        return tf.concat(self.item_parts(ids), axis=-1)

    def call(self, ids: tf.Tensor, ages: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        """Returns ``[batch, output_width]`` float32 for ``ids`` int64 and ``ages`` float32, both ``[batch, L]``.

        The means pool each part on its own and then concatenate: the same vector as pooling the
        concatenation, without building and differentiating ``[batch, L, width]`` (pooling about a third
        faster). An item feature with few values is pooled by value (``pooled_by_value``).
        """
        mask = tf.cast((ids >= 0) & (ids < self.n_items), tf.float32)  # [batch, L]
        if self.feature.pooling == "attention":
            vectors = self.item_vectors(ids)
            return tf.concat([self.attend(vectors, ages, mask, training), masked_mean(vectors, mask)], axis=-1)
        weights = mask
        if self.feature.pooling == "recency":
            weights = mask * tf.pow(0.5, tf.cast(ages, tf.float32) / self.feature.half_life_days)
        index = tf.clip_by_value(ids, 0, self.n_items)
        pooled = [masked_mean(self.item_embedding(index), weights)]
        for name, table in self.feature_tables.items():
            values, embedding = tf.gather(table, index), self.feature_embeddings[name]
            if embedding.input_dim <= SMALL_VOCABULARY:
                pooled.append(pooled_by_value(values, weights, embedding))
            else:
                pooled.append(masked_mean(embedding(values), weights))
        return tf.concat(pooled, axis=-1)

    def repeat_scores(self, ids: tf.Tensor, ages: tf.Tensor) -> tf.Tensor:
        """Returns ``[batch, L]`` float32: the learned score of each history item by its age (0 where padded or OOV).

        Added to the logit of a candidate equal to that item (``repeat_bias``), in logit units.
        """
        mask = tf.cast((ids >= 0) & (ids < self.n_items), tf.float32)
        return tf.gather(self.repeat, age_buckets(ages)) * mask

    def attend(self, vectors: tf.Tensor, ages: tf.Tensor, mask: tf.Tensor, training: Optional[bool]) -> tf.Tensor:
        """Returns ``[batch, width]``: the causal self-attention block read at the most recent item."""
        length = tf.shape(vectors)[1]
        x = self.project(vectors) + self.positions(tf.range(length))[None] + self.age_buckets(age_buckets(ages))
        older = tf.linalg.band_part(tf.ones([length, length]), 0, -1)  # [i, j] = 1 where j >= i (older or same)
        # every position may attend to itself, so no row is all masked (NaN in a float16 softmax)
        allowed = tf.cast(older[None] * tf.maximum(mask[:, None, :], tf.eye(length)[None]), tf.bool)
        x = self.norm1(x + self.attention(x, allowed, training=training))
        x = self.norm2(x + self.ffn(x))
        return x[:, 0, :] * mask[:, :1]  # zeros when the most recent position is empty (no history)


class SelfAttention(tf.keras.layers.Layer):
    """Multi-head scaled dot-product self-attention under a boolean mask ``[batch, L, L]``.

    Masked scores are set to -1e4 rather than added a large negative: the same in float32, and the
    graph stays finite when the ONNX tower is converted to float16 (Keras' MultiHeadAttention adds
    ``(1 - mask) * -1e9``, which is ``0 * -inf = NaN`` in float16).
    """

    def __init__(self, width: int, heads: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.key_width = heads, width // heads
        self.qkv = tf.keras.layers.Dense(3 * width, use_bias=False)
        self.out = tf.keras.layers.Dense(width)
        self.dropout = tf.keras.layers.Dropout(dropout)

    def call(self, x: tf.Tensor, allowed: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        """Returns ``[batch, L, width]`` for ``x`` ``[batch, L, width]``; ``allowed[b, i, j]``: i may attend to j."""
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        qkv = tf.reshape(self.qkv(x), [batch, length, 3, self.heads, self.key_width])
        q, k, v = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))  # each [batch, heads, L, key_width]
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.key_width)
        scores = tf.where(allowed[:, None], scores, tf.constant(-1e4, scores.dtype))
        weights = self.dropout(tf.nn.softmax(scores, axis=-1), training=training)
        mixed = tf.reshape(tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3]), [batch, length, -1])
        return self.out(mixed)


def age_buckets(ages: tf.Tensor) -> tf.Tensor:
    """Returns int64 log2 buckets of ``ages`` in days: 0 for < 1 day, 1 for 1 day, 2 for 2-3, ..., at most 15."""
    buckets = tf.cast(tf.math.log1p(tf.maximum(tf.cast(ages, tf.float32), 0.0)) / math.log(2.0), tf.int64)
    return tf.minimum(buckets, AGE_BUCKETS - 1)


def repeat_bias(history: tf.Tensor, scores: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """Returns ``[batch, n]``: for each row and candidate, the sum of ``scores`` where the history holds it.

    ``history``: int64 ``[batch, L]`` item indices (-1 padding); ``scores``: float32 ``[batch, L]`` (0 where
    nothing counts); ``candidates``: int64 ``[n]`` item indices. History entries are looked up among the sorted
    distinct candidates (``tf.searchsorted``), so the work is ``batch x (L + distinct candidates)``: never the
    catalogue, nor the batch's every history item.
    """
    batch = tf.shape(history)[0]
    distinct = tf.sort(tf.unique(candidates)[0])
    width = tf.shape(distinct)[0]
    flat = tf.reshape(history, [-1])
    slot = tf.minimum(tf.searchsorted(distinct, flat, out_type=tf.int32), width - 1)
    found = tf.equal(tf.gather(distinct, slot), flat)
    row = tf.repeat(tf.range(batch), tf.shape(history)[1])
    segment = tf.where(found, row * width + slot, batch * width)  # misses go to one extra, dropped segment
    table = tf.math.unsorted_segment_sum(tf.reshape(scores, [-1]), segment, batch * width + 1)
    table = tf.reshape(table[: batch * width], [batch, width])
    # gathering rows of the transpose is several times faster on CPU than gathering columns (axis=1)
    return tf.transpose(tf.gather(tf.transpose(table), tf.searchsorted(distinct, candidates, out_type=tf.int32)))


def pooled_by_value(values: tf.Tensor, weights: tf.Tensor, embedding: tf.keras.layers.Embedding) -> tf.Tensor:
    """Returns ``[batch, dim]``: ``masked_mean(embedding(values), weights)``, as (weight of each value) x table.

    ``values``: int64 ``[batch, L]`` indices into ``embedding``'s table; ``weights``: ``[batch, L]``. The same
    vector, but its gradient is one small dense ``[values, dim]`` matrix instead of ``batch x L`` sparse
    rows that the optimizer deduplicates: 0.84-0.88 ms instead of 2.6-2.7 ms for three item features of
    5-50 values with their Adagrad update, at batch 512 and 50 items (``bench/pooling_by_value.py``).
    """
    size = embedding.input_dim
    if not embedding.built:
        embedding.build(None)
    batch = tf.shape(values, out_type=tf.int64)[0]
    cells = tf.reshape(tf.range(batch)[:, None] * size + values, [-1])  # row b, value v -> b * size + v
    share = tf.math.divide_no_nan(weights, tf.reduce_sum(weights, axis=1, keepdims=True))
    by_value = tf.math.unsorted_segment_sum(tf.reshape(share, [-1]), cells, batch * size)
    return tf.matmul(tf.reshape(by_value, [batch, size]), tf.cast(embedding.embeddings, share.dtype))


def masked_mean(vectors: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Returns ``[batch, width]``: sum of ``vectors`` ``[batch, L, width]`` by ``weights`` ``[batch, L]``, normalised.

    Zero where every weight is zero (no history).
    """
    total = tf.reduce_sum(vectors * weights[:, :, None], axis=1)
    return tf.math.divide_no_nan(total, tf.reduce_sum(weights, axis=1, keepdims=True))


def feature_tables(
    item_table: Mapping[str, np.ndarray], names, sizes: Mapping[str, int], n_items: int
) -> Dict[str, np.ndarray]:
    """Returns {item feature: ``[n_items + 1]`` int64 value index by item index}, the OOV item in the last row.

    ``item_table``: transformed item features by item index (``trainer.train.item_table``); ``sizes``: each
    feature's table size (vocabulary + OOV): the OOV item gets the feature's OOV index.
    """
    out = {}
    for name in names:
        values = np.asarray(item_table[name], dtype=np.int64)[:n_items]
        out[name] = np.concatenate([values, [sizes[name] - 1]]).astype(np.int64)
    return out
