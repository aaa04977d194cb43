"""Towers and the TFRS two-tower model.

Both towers read the transformed features (see twotower.transform.features):
the query tower the user id plus user and interaction features, the candidate
tower the item id plus item features. Each returns L2-normalised embeddings
``[batch, embedding_dim]`` float32, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from typing import Dict, Mapping, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

from twotower.config import Profile  # noqa: E402
from twotower.transform.features import ITEM_ID, USER_ID  # noqa: E402

_WIDTHS = ((50, 8), (500, 16), (5_000, 32), (50_000, 64), (500_000, 128))


def embedding_width(cardinality: int) -> int:
    """Returns the default embedding width for a vocabulary of ``cardinality`` entries."""
    for bound, width in _WIDTHS:
        if cardinality < bound:
            return width
    return 256


class Tower(tf.keras.Model):
    """Id embedding + categorical embeddings + numeric features -> MLP -> unit vector."""

    def __init__(
        self,
        id_feature: str,
        vocab_sizes: Mapping[str, int],
        categorical: Sequence[str],
        numeric: Sequence[str],
        embedding_dim: int,
        hidden_units: Sequence[int],
        **kwargs,
    ):
        """``vocab_sizes`` maps id and categorical feature names to table sizes (OOV included)."""
        super().__init__(**kwargs)
        self.id_feature = id_feature
        self.categorical = list(categorical)
        self.numeric = list(numeric)
        self.id_embedding = tf.keras.layers.Embedding(vocab_sizes[id_feature], embedding_dim)
        self.embeddings = {
            name: tf.keras.layers.Embedding(vocab_sizes[name], embedding_width(vocab_sizes[name]))
            for name in self.categorical
        }
        layers = [tf.keras.layers.Dense(units, activation="relu") for units in hidden_units]
        self.mlp = tf.keras.Sequential(layers + [tf.keras.layers.Dense(embedding_dim)])

    def call(self, features: Dict[str, tf.Tensor]) -> tf.Tensor:
        """Returns ``[batch, embedding_dim]`` float32 unit vectors for ``features`` of shape ``[batch]``."""
        parts = [self.id_embedding(features[self.id_feature])]
        parts += [self.embeddings[name](features[name]) for name in self.categorical]
        parts += [tf.expand_dims(tf.cast(features[name], tf.float32), -1) for name in self.numeric]
        return tf.math.l2_normalize(self.mlp(tf.concat(parts, axis=1)), axis=1)


def build_towers(profile: Profile, vocab_sizes: Mapping[str, int]) -> tuple[Tower, Tower]:
    """Returns (query_tower, candidate_tower) for the profile's features."""
    t = profile.trainer

    def tower(id_feature: str, sources: Sequence[str], name: str) -> Tower:
        feats = [f for f in profile.model_features if f.source in sources]
        return Tower(
            id_feature,
            vocab_sizes,
            categorical=[f.name for f in feats if f.kind == "categorical"],
            numeric=[f.name for f in feats if f.kind == "numeric"],
            embedding_dim=t.embedding_dim,
            hidden_units=t.hidden_units,
            name=name,
        )

    return tower(USER_ID, ("user", "interaction"), "query_tower"), tower(ITEM_ID, ("item",), "candidate_tower")


def sampling_probability(item_counts: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Returns ``[n_items]`` float32 probabilities that an in-batch negative is each item, raised to ``strength``.

    In-batch negatives are the other rows' items, so an item is sampled in
    proportion to its training count. Add-one smoothing keeps unseen items
    (and the OOV bucket) finite under the log. ``strength`` < 1 corrects only
    part of the popularity bias (the loss subtracts strength * log q).
    """
    counts = np.asarray(item_counts, dtype=np.float64) + 1.0
    return ((counts / counts.sum()) ** strength).astype(np.float32)


class TwoTowerModel(tfrs.Model):
    """In-batch softmax retrieval over (query, candidate) pairs; accidental hits removed.

    With ``item_probability`` (``[n_items]``, see ``sampling_probability``) the
    logits get the logQ correction (score - log q(item)), so popular items are not
    pushed down merely for being frequent negatives.
    """

    def __init__(
        self,
        query_tower: Tower,
        candidate_tower: Tower,
        temperature: float,
        item_probability: Optional[np.ndarray] = None,
    ):
        super().__init__()
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.task = tfrs.tasks.Retrieval(temperature=temperature, remove_accidental_hits=True)
        self.item_probability = None if item_probability is None else tf.constant(item_probability, tf.float32)

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Returns the scalar softmax loss of a batch of transformed ``features``."""
        probability = None
        if self.item_probability is not None:
            probability = tf.gather(self.item_probability, features[ITEM_ID])
        return self.task(
            self.query_tower(features),
            self.candidate_tower(features),
            candidate_sampling_probability=probability,
            candidate_ids=features[ITEM_ID],
        )
