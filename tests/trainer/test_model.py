"""The two-tower model's loss options, on tiny hand-made batches (real TFRS, real Keras)."""

import numpy as np
import pytest
import tensorflow as tf

from twotower.trainer import model, towers
from twotower.transform.features import ITEM_ID, USER_ID


def test_sampling_probability_is_smoothed_frequency():
    # counts [3, 1, 0] + 1 -> [4, 2, 1] / 7
    assert model.sampling_probability(np.array([3, 1, 0])) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    # strength 2 squares them: the loss then subtracts 2 * log q
    assert model.sampling_probability(np.array([3, 1, 0]), 2.0) == pytest.approx([16 / 49, 4 / 49, 1 / 49])


def _model(probability):
    tf.keras.utils.set_random_seed(0)
    sizes = {USER_ID: 5, ITEM_ID: 4}
    query = towers.Tower(USER_ID, sizes, [], [], embedding_dim=8, hidden_units=[8])
    candidate = towers.Tower(ITEM_ID, sizes, [], [], embedding_dim=8, hidden_units=[8])
    return model.TwoTowerModel(query, candidate, temperature=0.5, item_probability=probability)


def _loss(two_tower) -> float:
    batch = {USER_ID: tf.constant([0, 1, 2, 3]), ITEM_ID: tf.constant([0, 1, 2, 3])}
    return float(two_tower.compute_loss(batch))


def test_logq_correction_changes_the_loss_only_when_sampling_is_uneven():
    plain = _loss(_model(None))
    # a uniform q shifts every logit by the same log(1/4): softmax and loss are unchanged
    assert _loss(_model(np.full(4, 0.25, np.float32))) == pytest.approx(plain, rel=1e-5)
    # an uneven q changes the logits item by item
    assert abs(_loss(_model(np.array([0.7, 0.1, 0.1, 0.1], np.float32))) - plain) > 1e-3
