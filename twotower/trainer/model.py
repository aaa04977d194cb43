"""The TFRS two-tower model and its loss (towers live in towers.py)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from typing import Dict, Optional  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

from twotower.trainer.towers import Tower  # noqa: E402
from twotower.transform.features import ITEM_ID  # noqa: E402


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
