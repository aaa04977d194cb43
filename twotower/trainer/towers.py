"""Towers: transformed features -> embeddings -> MLP -> unit vectors.

Both towers read the transformed features (see twotower.transform.features):
the query tower the user id plus user and interaction features, the candidate
tower the item id plus item features. Each feature becomes one part of the MLP
input (``TowerInput``): an embedding of an index (categorical, quantile bucket,
cross), the mean embedding of a bag of token indices (text), a linear
projection (dense vectors) or the floats as they are (z-scores, time). Each
tower returns L2-normalised embeddings ``[batch, embedding_dim]`` float32, so a
dot product is a cosine similarity.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from twotower.config import Feature, Profile
from twotower.trainer.history import HistoryEncoder, feature_tables, repeat_bias
from twotower.transform.features import (
    ITEM_ID,
    NUM_OOV_BUCKETS,
    USER_ID,
    history_ages,
    table_size,
    vocabulary_features,
)

_WIDTHS = ((50, 8), (500, 16), (5_000, 32), (50_000, 64), (500_000, 128))
QUERY_SOURCES = ("user", "interaction")
CANDIDATE_SOURCES = ("item",)

EMBEDDING = "embedding"  # int64 [batch] index -> [batch, width]
BAG = "bag"  # int64 [batch, L] indices padded with -1 -> mean embedding [batch, width]
PROJECTION = "projection"  # float32 [batch, d] -> Dense(width) [batch, width]
FLOATS = "floats"  # float32 [batch] or [batch, k], used as they are


def embedding_width(cardinality: int) -> int:
    """Returns the default embedding width for a vocabulary of ``cardinality`` entries."""
    for bound, width in _WIDTHS:
        if cardinality < bound:
            return width
    return 256


@dataclasses.dataclass(frozen=True)
class TowerInput:
    """How a tower reads one transformed feature: ``kind`` (EMBEDDING, BAG, PROJECTION, FLOATS) and sizes."""

    name: str
    kind: str
    size: int = 0  # EMBEDDING, BAG: table size (OOV included)
    width: int = 0  # EMBEDDING, BAG: embedding width; PROJECTION: output units


def tower_input(feature: Feature, sizes: Mapping[str, int]) -> TowerInput:
    """Returns how a tower reads ``feature``; ``sizes`` maps vocabulary features to table sizes (OOV included).

    Embedding widths follow ``embedding_width`` of the table size (of ``dim`` for a
    dense projection) unless the feature sets ``embedding_dim``.
    """
    if feature.kind == "dense":
        return TowerInput(feature.name, PROJECTION, width=feature.embedding_dim or embedding_width(feature.dim))
    if feature.kind in ("categorical", "text"):
        size = sizes[feature.name]
    else:
        size = table_size(feature)
    if not size:
        return TowerInput(feature.name, FLOATS)
    kind = BAG if feature.kind == "text" else EMBEDDING
    return TowerInput(feature.name, kind, size=size, width=feature.embedding_dim or embedding_width(size))


def tower_inputs(profile: Profile, sizes: Mapping[str, int], sources: Sequence[str]) -> List[TowerInput]:
    """Returns the ``TowerInput`` of every model feature of ``sources`` but histories, in profile order."""
    return [tower_input(f, sizes) for f in profile.model_features if f.source in sources and f.kind != "history"]


class Tower(tf.keras.Model):
    """Id embedding + one part per feature (``TowerInput``) -> MLP -> unit vector."""

    def __init__(
        self,
        id_feature: str,
        id_size: int,
        inputs: Sequence[TowerInput],
        embedding_dim: int,
        hidden_units: Sequence[int],
        histories: Sequence[HistoryEncoder] = (),
        dropout: float = 0.0,
        batch_norm: bool = False,
        mixed_precision: str = "",
        **kwargs,
    ):
        """``id_size``: the id table size (OOV included); the id embedding and the output are ``embedding_dim`` wide.

        ``histories``: pooled history features, part of the MLP input next to the ``inputs``; ``dropout`` and
        ``batch_norm`` apply to each hidden layer of the MLP, which computes in ``mixed_precision`` when set
        (a Keras policy name; embeddings, pooling and the output stay float32).
        """
        super().__init__(**kwargs)
        self.id_feature = id_feature
        self.specs = list(inputs)
        self.histories = list(histories)
        self.id_embedding = tf.keras.layers.Embedding(id_size, embedding_dim)
        self.parts = {}
        for spec in self.specs:
            if spec.kind in (EMBEDDING, BAG):
                self.parts[spec.name] = tf.keras.layers.Embedding(spec.size, spec.width)
            elif spec.kind == PROJECTION:
                self.parts[spec.name] = tf.keras.layers.Dense(spec.width)
        policy = mixed_precision or None
        self.mlp = tf.keras.Sequential(mlp_layers(hidden_units, embedding_dim, dropout, batch_norm, policy))

    @property
    def feature_names(self) -> List[str]:
        """The transformed features the tower reads: the id, every input's, and each history's ids and ages."""
        names = [self.id_feature] + [spec.name for spec in self.specs]
        return names + [n for h in self.histories for n in (h.feature.name, history_ages(h.feature))]

    def compute_in_float32(self) -> None:
        """Switches a mixed-precision MLP to float32 (its weights are float32 already): exports serve on CPUs."""
        for layer in self.mlp.layers:
            layer._set_dtype_policy(tf.keras.mixed_precision.Policy("float32"))  # tf-keras has no public setter

    def repeat_bias(self, features: Dict[str, tf.Tensor], candidates: tf.Tensor) -> Optional[tf.Tensor]:
        """Returns ``[batch, n]`` logit bias of candidates (``[n]`` item indices) in each row's history, or None.

        The sum over history features with ``repeat`` (``trainer.history``); None when none has it.
        """
        biases = []
        for history in self.histories:
            if history.feature.repeat:
                ids, ages = features[history.feature.name], features[history_ages(history.feature)]
                biases.append(repeat_bias(ids, history.repeat_scores(ids, ages), candidates))
        return tf.add_n(biases) if biases else None

    def _part(self, spec: TowerInput, x: tf.Tensor) -> tf.Tensor:
        """Returns ``[batch, width]`` float32 for one transformed feature ``x``."""
        if spec.kind == EMBEDDING:
            return self.parts[spec.name](x)
        if spec.kind == BAG:
            present = tf.cast(x >= 0, tf.float32)[:, :, None]  # [batch, L, 1]
            vectors = self.parts[spec.name](tf.maximum(x, 0)) * present
            return tf.math.divide_no_nan(tf.reduce_sum(vectors, axis=1), tf.reduce_sum(present, axis=1))
        x = tf.cast(x, tf.float32)
        x = tf.expand_dims(x, -1) if x.shape.rank == 1 else x
        return self.parts[spec.name](x) if spec.kind == PROJECTION else x

    def call(self, features: Dict[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        """Returns ``[batch, embedding_dim]`` float32 unit vectors for transformed ``features`` (``[batch, ...]``)."""
        parts = [self.id_embedding(features[self.id_feature])]
        parts += [self._part(spec, features[spec.name]) for spec in self.specs]
        for history in self.histories:
            name = history.feature.name
            parts.append(history(features[name], features[history_ages(history.feature)], training=training))
        out = self.mlp(tf.concat(parts, axis=1), training=training)
        return tf.math.l2_normalize(tf.cast(out, tf.float32), axis=1)


def mlp_layers(
    hidden_units: Sequence[int], output: int, dropout: float, batch_norm: bool, dtype: Optional[str] = None
) -> List[tf.keras.layers.Layer]:
    """Returns the MLP's layers: per hidden layer Dense [-> BatchNorm] -> ReLU [-> Dropout], then Dense(output).

    ``dtype``: a Keras dtype policy for all of them (``mixed_float16``, ``mixed_bfloat16``); None: float32.
    """
    layers: List[tf.keras.layers.Layer] = []
    for units in hidden_units:
        layers.append(tf.keras.layers.Dense(units, use_bias=not batch_norm, dtype=dtype))
        if batch_norm:
            layers.append(tf.keras.layers.BatchNormalization(dtype=dtype))
        layers.append(tf.keras.layers.ReLU(dtype=dtype))
        if dropout:
            layers.append(tf.keras.layers.Dropout(dropout, dtype=dtype))
    return layers + [tf.keras.layers.Dense(output, dtype=dtype)]


def vocab_sizes(profile: Profile, tft_output: tft.TFTransformOutput) -> Dict[str, int]:
    """Returns the table size (vocabulary + OOV) of the ids and every categorical and text model feature."""
    return {n: tft_output.vocabulary_size_by_name(n) + NUM_OOV_BUCKETS for n in vocabulary_features(profile)}


def build_towers(
    profile: Profile, tft_output: tft.TFTransformOutput, item_table: Optional[Mapping[str, np.ndarray]] = None
) -> tuple[Tower, Tower]:
    """Returns (query_tower, candidate_tower) for the profile's features and Transform's vocabularies.

    ``item_table``: transformed item features by item index (``trainer.train.item_table``), needed when a
    history feature pools ``item_features``.
    """
    t = profile.trainer
    sizes = vocab_sizes(profile, tft_output)

    def tower(id_feature: str, sources: Sequence[str], name: str, histories: Sequence[HistoryEncoder] = ()) -> Tower:
        inputs = tower_inputs(profile, sizes, sources)
        return Tower(
            id_feature,
            sizes[id_feature],
            inputs,
            t.embedding_dim,
            t.hidden_units,
            histories,
            dropout=t.dropout,
            batch_norm=t.batch_norm,
            mixed_precision=t.mixed_precision,
            name=name,
        )

    candidate = tower(ITEM_ID, CANDIDATE_SOURCES, "candidate_tower")
    histories = [
        history_encoder(f, candidate, sizes, item_table) for f in profile.model_features if f.kind == "history"
    ]
    return tower(USER_ID, QUERY_SOURCES, "query_tower", histories), candidate


def history_encoder(
    feature: Feature, candidate: Tower, sizes: Mapping[str, int], item_table: Optional[Mapping[str, np.ndarray]]
) -> HistoryEncoder:
    """Returns the encoder of history ``feature``: through ``candidate``'s item tables, or tables of its own."""
    n_items = sizes[ITEM_ID] - NUM_OOV_BUCKETS
    if feature.share_embeddings:
        item_embedding = candidate.id_embedding
        embeddings = {n: candidate.parts[n] for n in feature.item_features}
    else:
        item_embedding = tf.keras.layers.Embedding(sizes[ITEM_ID], candidate.id_embedding.output_dim)
        embeddings = {
            n: tf.keras.layers.Embedding(sizes[n], candidate.parts[n].output_dim) for n in feature.item_features
        }
    tables = {}
    if feature.item_features:
        if item_table is None:
            raise ValueError(
                f"history feature '{feature.name}' pools item_features: it needs the catalogue's item_table"
            )
        tables = feature_tables(item_table, feature.item_features, sizes, n_items)
    return HistoryEncoder(feature, item_embedding, n_items, embeddings, tables)
