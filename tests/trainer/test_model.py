"""The two-tower model's loss options on hand-made embeddings, checked against hand-computed losses.

The towers here are fixed lookup tables, so every score is known: the real
TFRS Retrieval task and our options over it are what is under test.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from twotower.trainer import model
from twotower.transform.features import ITEM_ID, USER_ID

# 4 users, 4 items in 2-d, unit vectors: user u likes item u most.
ANGLES = np.array([0.0, 0.5, 1.0, 1.5])
USERS = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1).astype(np.float32)
ITEMS = np.stack([np.cos(ANGLES + 0.1), np.sin(ANGLES + 0.1)], axis=1).astype(np.float32)
BATCH = {USER_ID: tf.constant([0, 1, 2, 3], tf.int64), ITEM_ID: tf.constant([0, 1, 2, 3], tf.int64)}
TEMPERATURE = 0.5


class Lookup(tf.keras.Model):
    """A tower that returns fixed rows of ``table`` for ``features[name]``."""

    def __init__(self, name: str, table: np.ndarray):
        super().__init__()
        self.key, self.table = name, tf.constant(table)

    def call(self, features, training=None):
        return tf.gather(self.table, features[self.key])

    def repeat_bias(self, features, candidates):
        return None  # no history: the dot products alone (the bias has its own test)


def _model(frequency=None, item_table=None, **kwargs) -> model.TwoTowerModel:
    return model.TwoTowerModel(
        Lookup(USER_ID, USERS),
        Lookup(ITEM_ID, ITEMS),
        TEMPERATURE,
        item_frequency=frequency,
        item_table=item_table,
        **kwargs,
    )


def _loss(two_tower, batch=BATCH) -> float:
    return float(two_tower.compute_loss(batch))


def _logits() -> np.ndarray:
    return USERS @ ITEMS.T / TEMPERATURE


def test_item_frequency_is_add_one_smoothed():
    # counts [3, 1, 0] + 1 -> [4, 2, 1] / 7
    assert model.item_frequency(np.array([3, 1, 0])) == pytest.approx([4 / 7, 2 / 7, 1 / 7])


def test_softmax_loss_is_the_summed_in_batch_cross_entropy():
    logits = _logits()
    expected = sum(np.log(np.exp(row).sum()) - row[i] for i, row in enumerate(logits))
    assert _loss(_model()) == pytest.approx(expected, rel=1e-5)


def test_logq_correction_subtracts_strength_times_log_q():
    q = np.array([0.7, 0.1, 0.1, 0.1], np.float32)
    for strength in (1.0, 2.0):
        logits = _logits() - strength * np.log(q)[None, :]
        expected = sum(np.log(np.exp(row).sum()) - row[i] for i, row in enumerate(logits))
        assert _loss(_model(q, logq_strength=strength)) == pytest.approx(expected, rel=1e-5)
    # a uniform q shifts every logit alike: the loss is the uncorrected one
    assert _loss(_model(np.full(4, 0.25, np.float32))) == pytest.approx(_loss(_model()), rel=1e-5)


def test_accidental_hits_are_removed():
    # rows 0 and 1 bought the same item 0: neither counts it as the other's negative
    batch = {USER_ID: tf.constant([0, 1], tf.int64), ITEM_ID: tf.constant([0, 0], tf.int64)}
    logits = USERS[:2] @ ITEMS[[0, 0]].T / TEMPERATURE
    assert _loss(_model(), batch) == pytest.approx(0.0, abs=1e-5)
    assert float(np.log(np.exp(logits[0]).sum()) - logits[0, 0]) > 0.1  # what it would be with the hit


def test_bpr_averages_softplus_of_negative_minus_positive():
    two_tower = _model()
    two_tower.set_loss("bpr")
    logits = _logits()
    expected = sum(
        np.mean([math.log1p(math.exp(row[j] - row[i])) for j in range(4) if j != i]) for i, row in enumerate(logits)
    )
    assert _loss(two_tower) == pytest.approx(expected, rel=1e-5)


def test_hard_negatives_keep_the_highest_scoring_negatives():
    two_tower = _model()
    two_tower.set_loss("softmax", hard_negatives=1)
    logits = _logits()
    expected = 0.0
    for i, row in enumerate(logits):
        hardest = max(row[j] for j in range(4) if j != i)
        expected += math.log(math.exp(row[i]) + math.exp(hardest)) - row[i]
    assert _loss(two_tower) == pytest.approx(expected, rel=1e-5)


def _tfrs_mining(scores, labels, hard_negatives):
    import tensorflow_recommenders as tfrs

    return tfrs.layers.loss.HardNegativeMining(hard_negatives)(scores, labels)


def _kept(scores, labels):
    """Each row's kept (score, label) pairs as a sorted list: the kept columns, whatever their order."""
    return [
        sorted(zip(s, y, strict=True)) for s, y in zip(scores.numpy().tolist(), labels.numpy().tolist(), strict=True)
    ]


@pytest.mark.parametrize("case", ["random", "ties at the cut", "removed hits", "fewer candidates than k"])
def test_hard_negative_mining_keeps_tfrs_columns_and_loss(case):
    rng = np.random.default_rng(0)
    queries, candidates, hard = 64, 300, 40
    scores = rng.normal(size=(queries, candidates)).astype(np.float32)
    if case == "ties at the cut":  # ten copies of each row's cut value: top_k keeps the first in column order
        scores[:, 100:110] = np.sort(scores, axis=1)[:, -(hard + 1)][:, None]
    if case == "removed hits":  # the accidental-hit marker on many columns, the positive among the marked
        scores[:, ::3] = model._REMOVED
    if case == "fewer candidates than k":
        hard = candidates + 5
    scores = tf.constant(scores)
    labels = tf.one_hot(rng.integers(0, candidates, queries), candidates)
    ours, theirs = model.hard_negative_mining(scores, labels, hard), _tfrs_mining(scores, labels, hard)
    assert ours[0].shape == theirs[0].shape == (queries, min(hard + 1, candidates))
    assert _kept(*ours) == _kept(*theirs)
    assert tf.reduce_all(tf.reduce_sum(ours[1], axis=1) == 1.0)  # every positive is kept

    def loss_and_gradient(mine):
        with tf.GradientTape() as tape:
            tape.watch(scores)
            kept, y = mine(scores, labels, hard)
            loss = tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(y, kept))
        return loss.numpy(), tape.gradient(loss, scores).numpy()

    (ours_loss, ours_grad), (tfrs_loss, tfrs_grad) = map(loss_and_gradient, (model.hard_negative_mining, _tfrs_mining))
    assert ours_loss == pytest.approx(tfrs_loss, rel=1e-6)
    np.testing.assert_allclose(ours_grad, tfrs_grad, atol=1e-6)


def test_hard_negative_mining_keeps_nan_scores_so_every_diverged_row_has_a_nan_loss():
    # NaN beside the positive, a whole row of NaN, NaN at the positive only (a diverged item embedding)
    scores = tf.constant([[0.5, np.nan, 0.1, np.nan], [np.nan] * 4, [np.nan, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]])
    labels = tf.one_hot([0, 2, 0, 0], 4)
    kept, y = tf.function(model.hard_negative_mining)(scores, labels, 2)
    assert kept.shape == (4, 3)
    rows = tf.nn.softmax_cross_entropy_with_logits(y, kept).numpy()
    assert np.isnan(rows[:3]).all() and np.isfinite(rows[3])


def test_sampled_negatives_join_every_querys_candidates():
    table = {ITEM_ID: np.arange(4, dtype=np.int64)}
    two_tower = _model(item_table=table)
    two_tower.set_loss("softmax", negatives=64)
    tf.random.set_seed(0)
    with_negatives = _loss(two_tower)
    # 64 extra candidates drawn from the 4 items make every softmax denominator larger
    assert with_negatives > _loss(_model()) + 1.0
    with pytest.raises(ValueError, match="item_table"):
        _model().set_loss("softmax", negatives=8)


class FixedDraws(model.TwoTowerModel):
    """The model with known 'uniform' draws."""

    def sample_rows(self):
        return tf.constant([0, 0, 2, 3, 3, 3], tf.int64)


def test_mixed_sampling_probability_covers_both_samplers():
    # q(i) = (B p_i + M / n) / (B + M): B = 4 in-batch, M = 6 uniform over the n = 4 items
    p = np.array([0.4, 0.3, 0.2, 0.1], np.float32)
    table = {ITEM_ID: np.arange(4, dtype=np.int64)}
    two_tower = FixedDraws(
        Lookup(USER_ID, USERS), Lookup(ITEM_ID, ITEMS), TEMPERATURE, item_frequency=p, item_table=table
    )
    two_tower.set_loss("softmax", negatives=6)
    ids = np.array([0, 1, 2, 3, 0, 0, 2, 3, 3, 3])
    q = (4 * p[ids] + 6 / 4) / (4 + 6)
    logits = USERS @ ITEMS[ids].T / TEMPERATURE - np.log(q)[None, :]
    expected = 0.0
    for i, row in enumerate(logits):
        keep = [j for j in range(len(ids)) if j == i or ids[j] != ids[i]]  # accidental hits removed
        expected += np.log(np.exp(row[keep]).sum()) - row[i]
    assert _loss(two_tower) == pytest.approx(expected, rel=1e-5)


def test_temperature_is_learnable_only_when_asked():
    fixed, learned = _model(), _model(learn_temperature=True)
    assert float(fixed.temperature) == pytest.approx(TEMPERATURE)
    assert fixed.log_temperature not in fixed.trainable_variables
    assert any(v is learned.log_temperature for v in learned.trainable_variables)
    with tf.GradientTape() as tape:
        loss = learned.compute_loss(BATCH)
    assert float(tape.gradient(loss, learned.log_temperature)) != 0.0


def test_alignment_loss_by_hand():
    # two items of category 0 at 90 degrees: their mean direction is 45 degrees -> 1 - cos(45) each;
    # one item alone in category 3 is its own mean -> 0
    e = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    loss = model.alignment_loss(e, tf.constant([0, 0, 3], tf.int64))
    assert float(loss) == pytest.approx(2 * (1 - np.cos(np.pi / 4)), rel=1e-6)


def test_alignment_needs_its_feature():
    with pytest.raises(ValueError, match="alignment_feature"):
        _model().set_loss(alignment=0.5)
