"""Towers: transformed features -> embeddings -> MLP -> unit vectors.

Both towers read the transformed features (see twotower.transform.features):
the query tower the user id plus user and interaction features, the candidate
tower the item id plus item features. Each returns L2-normalised embeddings
``[batch, embedding_dim]`` float32, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from typing import Dict, Mapping, Sequence  # noqa: E402

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from twotower.config import Profile  # noqa: E402
from twotower.transform.features import ITEM_ID, NUM_OOV_BUCKETS, USER_ID  # noqa: E402

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


def vocab_sizes(profile: Profile, tft_output: tft.TFTransformOutput) -> Dict[str, int]:
    """Returns the embedding table size (vocabulary + OOV) of every id and categorical feature."""
    names = [USER_ID, ITEM_ID] + [f.name for f in profile.model_features if f.kind == "categorical"]
    return {n: tft_output.vocabulary_size_by_name(n) + NUM_OOV_BUCKETS for n in names}


def build_towers(profile: Profile, tft_output: tft.TFTransformOutput) -> tuple[Tower, Tower]:
    """Returns (query_tower, candidate_tower) for the profile's features and Transform's vocabularies."""
    t = profile.trainer
    sizes = vocab_sizes(profile, tft_output)

    def tower(id_feature: str, sources: Sequence[str], name: str) -> Tower:
        feats = [f for f in profile.model_features if f.source in sources]
        return Tower(
            id_feature,
            sizes,
            categorical=[f.name for f in feats if f.kind == "categorical"],
            numeric=[f.name for f in feats if f.kind == "numeric"],
            embedding_dim=t.embedding_dim,
            hidden_units=t.hidden_units,
            name=name,
        )

    return tower(USER_ID, ("user", "interaction"), "query_tower"), tower(ITEM_ID, ("item",), "candidate_tower")
