"""Export: one SavedModel with the transform graph, both towers and the catalogue.

Signatures (all take raw features as ``[batch]`` tensors, named as the CSV
columns of the profile, so TF Serving clients send plain JSON values; a dense
vector column is ``[batch, dim]`` float32, a JSON list per instance):

- ``serving_default``: query features -> ``item_ids`` ``[batch, K]`` string,
  ``item_names`` ``[batch, K]`` string, ``scores`` ``[batch, K]`` float32; exact
  top-K over the whole catalogue by dot product, plus the history's repeat scores
  on the user's own earlier items (standard TF ops only).
- ``query_embedding``: query features -> ``embedding`` ``[batch, dim]`` float32.
- ``query_with_history`` (with a history that scores repeats): query features -> ``embedding``,
  ``history_item_ids`` ``[batch, H]`` string ("" where none) and ``history_scores`` ``[batch, H]``
  float32, the served score of the user's own history items (``export.repeats``), to merge into a
  top-K searched over candidate embeddings (an index).
- ``candidate_embedding``: item features -> ``embedding`` ``[batch, dim]`` float32.

A string feature sent as "" and a numeric feature (or any value of a vector)
sent as NaN count as missing where the data contract allows a feature to be missing.

A history feature (kind history) ``NAME`` is two query inputs, both ``[batch, None]``: ``NAME``,
string item ids, most recent first ("" pads a row to the batch's width), and ``NAME_age_days``,
float32 ages in days aligned with the ids (NaN, or a row shorter than the ids', for unknown
ages: an item then counts as its position's number of days old). A row with no ids is a user
without a history; ids beyond the feature's ``max_length`` are cut.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Sequence, Union

import tensorflow as tf
import tensorflow_transform as tft

from twotower.export import repeats
from twotower.export.assets import PROFILE_ASSET

FeatureSpec = Union[tf.io.FixedLenFeature, tf.io.VarLenFeature]


def vector_dims(tft_output: tft.TFTransformOutput, names: Sequence[str]) -> Dict[str, int]:
    """Returns {name: dim} of the dense vector columns among raw ``names`` (floats kept as ``[batch, dim]``)."""
    raw, out = tft_output.raw_feature_spec(), tft_output.transformed_feature_spec()
    return {
        n: int(out[n].shape[0])
        for n in names
        if raw[n].dtype == tf.float32 and n in out and len(out[n].shape) == 1 and out[n].dtype == tf.float32
    }


def input_signature(
    names: Sequence[str],
    raw_spec: Mapping[str, FeatureSpec],
    dims: Optional[Mapping[str, int]] = None,
    lists: Sequence[str] = (),
) -> Dict[str, tf.TensorSpec]:
    """Returns TensorSpecs named after the raw features ``names``: ``[batch]``, ``[batch, dim]`` for ``dims``,
    ``[batch, None]`` for ``lists`` (history ids and ages)."""
    dims = dims or {}

    def shape(n: str) -> list:
        return [None, None] if n in lists else ([None, dims[n]] if n in dims else [None])

    return {n: tf.TensorSpec(shape(n), raw_spec[n].dtype, name=n) for n in names}


def history_to_raw(ids: tf.Tensor, ages: tf.Tensor) -> tuple:
    """Returns (ids, ages) as SparseTensors ``[batch, width]`` without the "" padding, ages aligned with the ids.

    ``ids``: string ``[batch, width]``; ``ages``: float32 ``[batch, any]``, cut or NaN-padded to the ids' width.
    """
    width = tf.shape(ids)[1]
    ages = tf.cast(ages, tf.float32)[:, :width]
    ages = tf.pad(ages, [[0, 0], [0, width - tf.shape(ages)[1]]], constant_values=float("nan"))
    present = tf.not_equal(ids, "")
    return tf.ragged.boolean_mask(ids, present).to_sparse(), tf.ragged.boolean_mask(ages, present).to_sparse()


def to_raw(
    features: Mapping[str, tf.Tensor],
    raw_spec: Mapping[str, FeatureSpec],
    histories: Optional[Mapping[str, str]] = None,
) -> Dict[str, tf.Tensor]:
    """Returns ``[batch]`` request tensors shaped as the transform graph's raw inputs.

    Fixed-length features become ``[batch, 1]``; features the contract lets be
    missing become SparseTensors ``[batch, 1]`` without the '' / NaN entries.
    Vectors ``[batch, dim]`` stay as they are, or become SparseTensors without
    their NaN and zero values (Transform fills both back in as zeros).
    ``histories`` ({ids input: ages input}) become ``history_to_raw``'s SparseTensors.
    """
    raw = {}
    for ids, ages in (histories or {}).items():
        raw[ids], raw[ages] = history_to_raw(features[ids], features[ages])
    for name, value in features.items():
        if name in raw:
            continue
        fixed = isinstance(raw_spec[name], tf.io.FixedLenFeature)
        if value.shape.rank == 2:
            raw[name] = value if fixed else tf.sparse.from_dense(tf.where(tf.math.is_finite(value), value, 0.0))
            continue
        if fixed:
            raw[name] = tf.expand_dims(value, -1)
            continue
        present = tf.not_equal(value, "") if value.dtype == tf.string else tf.math.is_finite(value)
        rows = tf.where(present)
        raw[name] = tf.SparseTensor(
            indices=tf.concat([rows, tf.zeros_like(rows)], axis=1),
            values=tf.gather_nd(value, rows),
            dense_shape=tf.stack([tf.shape(value, out_type=tf.int64)[0], tf.constant(1, tf.int64)]),
        )
    return raw


class RetrievalModule(tf.Module):
    """What ``export`` saves: transform layer, towers and catalogue embeddings."""

    def __init__(
        self,
        tft_output: tft.TFTransformOutput,
        query_tower: tf.keras.Model,
        candidate_tower: tf.keras.Model,
        query_features: Sequence[str],
        item_features: Sequence[str],
        item_ids: tf.Tensor,
        item_names: tf.Tensor,
        item_embeddings: tf.Tensor,
        top_k: int,
        histories: Optional[Mapping[str, str]] = None,
        item_rows: Optional[tf.Tensor] = None,
        repeat_scale: float = 1.0,
    ):
        """``item_ids``/``item_names``: ``[n]`` string; ``item_embeddings``: ``[n, dim]`` float32.

        ``histories``: {history ids input: its ages input} among the ``query_features`` (module docstring).
        ``item_rows``: ``[n_vocab + 1]`` int64 catalogue row of each item index (-1: none), needed when a
        history scores repeats (``export.repeats``), on the scale ``repeat_scale`` (the softmax temperature).
        """
        super().__init__()
        self.tft_layer = tft_output.transform_features_layer()
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.item_ids = tf.Variable(item_ids, trainable=False, name="item_ids")
        self.item_names = tf.Variable(item_names, trainable=False, name="item_names")
        self.item_embeddings = tf.Variable(item_embeddings, trainable=False, name="item_embeddings")
        self.top_k = min(top_k, int(item_embeddings.shape[0]))
        self.histories = dict(histories or {})
        self.repeats = [h for h in getattr(query_tower, "histories", []) if h.feature.repeat]
        if self.repeats and item_rows is None:
            raise ValueError("a history feature scores repeats: RetrievalModule needs item_rows")
        self.item_rows = None if item_rows is None else tf.Variable(item_rows, trainable=False, name="item_rows")
        self.repeat_scale = float(repeat_scale)
        lists = list(self.histories) + list(self.histories.values())
        raw_spec = tft_output.raw_feature_spec()
        self._raw_spec = {n: raw_spec[n] for n in list(query_features) + list(item_features)}
        dims = vector_dims(tft_output, [n for n in self._raw_spec if n not in lists])
        query_signature = [input_signature(query_features, raw_spec, dims, lists)]
        self.serve = tf.function(self._serve, input_signature=query_signature)
        self.query_embedding = tf.function(self._query_embedding, input_signature=query_signature)
        if self.repeats:  # an attribute is saved (traced) even outside the signatures: only when it can be
            self.query_with_history = tf.function(self._query_with_history, input_signature=query_signature)
        self.candidate_embedding = tf.function(
            self._candidate_embedding, input_signature=[input_signature(item_features, raw_spec, dims)]
        )

    def transform(self, features: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Returns the transformed features of request ``features`` (raw, as the signatures take them)."""
        histories = {ids: ages for ids, ages in self.histories.items() if ids in features}
        return self.tft_layer(to_raw(features, self._raw_spec, histories))

    def _query_embedding(self, features: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        return {"embedding": self.query_tower(self.transform(features))}

    def _query_with_history(self, features: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        transformed = self.transform(features)
        queries = self.query_tower(transformed)
        rows, scores = self._history_scores(transformed, queries)
        ids = tf.where(rows >= 0, tf.gather(self.item_ids, tf.maximum(rows, 0)), "")
        return {"embedding": queries, "history_item_ids": ids, "history_scores": scores}

    def _history_scores(self, transformed: Dict[str, tf.Tensor], queries: tf.Tensor) -> tuple:
        return repeats.history_scores(
            self.repeats, transformed, queries, self.item_rows, self.item_embeddings, self.repeat_scale
        )

    def _candidate_embedding(self, features: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        return {"embedding": self.candidate_tower(self.transform(features))}

    def _serve(self, features: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        transformed = self.transform(features)
        queries = self.query_tower(transformed)
        scores = tf.matmul(queries, self.item_embeddings, transpose_b=True)
        if self.repeats:
            scores = repeats.with_history_scores(scores, *self._history_scores(transformed, queries))
        scores, indices = tf.math.top_k(scores, k=self.top_k)
        return {
            "item_ids": tf.gather(self.item_ids, indices),
            "item_names": tf.gather(self.item_names, indices),
            "scores": scores,
        }

    def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        """Returns the signature name -> concrete function map to save."""
        return {
            "serving_default": self.serve.get_concrete_function(),
            "query_embedding": self.query_embedding.get_concrete_function(),
            **({"query_with_history": self.query_with_history.get_concrete_function()} if self.repeats else {}),
            "candidate_embedding": self.candidate_embedding.get_concrete_function(),
        }


def export(module: RetrievalModule, path: str, profile_json: str) -> None:
    """Saves ``module`` as a SavedModel at ``path`` with its three signatures.

    The profile goes to ``assets.extra/profile.json`` (TF Serving ignores that
    folder) so clients know the feature names and the data contract.
    """
    tf.saved_model.save(module, path, signatures=module.signatures())
    tf.io.gfile.makedirs(os.path.join(path, os.path.dirname(PROFILE_ASSET)))
    with tf.io.gfile.GFile(os.path.join(path, PROFILE_ASSET), "w") as f:
        f.write(profile_json)
