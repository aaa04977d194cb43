"""Validation recall, early stopping and best weights, on hand-made towers whose rankings are known."""

import numpy as np
import pytest
import tensorflow as tf

from twotower.trainer import validation
from twotower.trainer.checkpoints import Checkpoints
from twotower.trainer.validation import ValidationCallback, ValidationSample


class _Lookup(tf.keras.Model):
    """A tower that returns row ``x`` of a (trainable) table: rankings are set by assigning the table."""

    def __init__(self, table: np.ndarray):
        super().__init__()
        self.table = tf.Variable(table.astype(np.float32))

    def call(self, features, training=None):
        return tf.gather(self.table, features["x"])

    def repeat_bias(self, features, candidates):
        return None  # no history (trainer/test_history.py covers the repeat scores)


class _TwoTower(tf.keras.Model):
    def __init__(self, queries: np.ndarray, items: np.ndarray):
        super().__init__()
        self.query_tower, self.candidate_tower = _Lookup(queries), _Lookup(items)
        self.temperature = tf.constant(0.1)


ITEMS = np.eye(4)  # item i is the unit vector e_i: a query's scores are its own entries
# user 0 likes item 2 most, then 1, then 0, 3; user 1 likes item 3, then 0
GOOD = np.array([[0.1, 0.5, 0.9, 0.0], [0.6, 0.0, 0.1, 0.9]])
SAMPLE = ValidationSample(
    queries={"x": np.array([0, 1])},
    truth=[np.array([2]), np.array([0, 3])],
    seen=[np.array([], np.int64), np.array([3])],  # user 1 has seen item 3: it must not count
)


def test_recall_at_k_by_hand():
    model = _TwoTower(GOOD, ITEMS)
    candidates = model.candidate_tower({"x": tf.range(4)})
    # k=1: user 0 -> [2] hits 1/1; user 1 -> item 3 excluded, [0] hits 1/2 -> mean 0.75
    assert validation.recall_at_k(model.query_tower, candidates, SAMPLE, 1) == pytest.approx(0.75)
    # k=2: user 0 -> {2, 1}: 1/1; user 1 -> {0, 2}: 1/2
    assert validation.recall_at_k(model.query_tower, candidates, SAMPLE, 2) == pytest.approx(0.75)
    # k larger than the catalogue is cut to it
    assert validation.recall_at_k(model.query_tower, candidates, SAMPLE, 10) == pytest.approx(1.0)


def test_early_stop_after_patience_and_restore_the_best():
    model = _TwoTower(GOOD, ITEMS)
    callback = ValidationCallback(SAMPLE, {"x": np.arange(4)}, k=1, patience=2)
    callback.set_model(model)
    logs = {}
    callback.on_epoch_end(0, logs)
    assert logs["val_recall@1"] == pytest.approx(0.75) and callback.best_epoch == 0
    bad = GOOD[:, ::-1].copy()  # reversed preferences: user 0 -> item 3 (miss), user 1 -> item 0 (1/2)
    model.query_tower.table.assign(bad)
    callback.on_epoch_end(1, logs)
    assert logs["val_recall@1"] == pytest.approx(0.25) and not model.stop_training
    callback.on_epoch_end(2, logs)
    assert model.stop_training  # two epochs without a new best
    assert callback.restore() == 0
    np.testing.assert_allclose(model.query_tower.table.numpy(), GOOD)
    summary = callback.summary(True, ["softmax"])
    assert summary["best"] == pytest.approx(0.75) and summary["stopped_early"] == ["softmax"]


def test_a_resumed_run_restores_the_best_kept_before_the_cut(tmp_path):
    model = _TwoTower(GOOD, ITEMS)
    checkpoints = Checkpoints(str(tmp_path), model=model)
    before = ValidationCallback(SAMPLE, {"x": np.arange(4)}, k=1, patience=0, keep=checkpoints.save_best)
    before.set_model(model)
    before.on_epoch_end(0, {})  # the best, kept on disk
    model.query_tower.table.assign(GOOD[:, ::-1].copy())
    before.on_epoch_end(1, {})  # worse: the kept best stays epoch 0's
    # the run is cut; a new process builds the model anew (here: with the worse weights) and resumes
    resumed_model = _TwoTower(GOOD[:, ::-1].copy(), ITEMS)
    after = ValidationCallback(SAMPLE, {"x": np.arange(4)}, k=1, patience=0)
    after.set_model(resumed_model)
    after.resume(Checkpoints(str(tmp_path), model=resumed_model).restore_best(resumed_model.weights))
    after.on_epoch_end(2, {})
    assert after.best == pytest.approx(0.75) and after.best_epoch == 0
    assert after.restore() == 0
    np.testing.assert_allclose(resumed_model.query_tower.table.numpy(), GOOD)
    # nothing kept: nothing to resume; kept by another model: a clear error, not a silent mix
    assert Checkpoints(str(tmp_path / "none"), model=model).restore_best(model.weights) is None
    other = _TwoTower(np.zeros((2, 5)), np.eye(5))
    with pytest.raises(ValueError, match="different model"):
        checkpoints.restore_best(other.weights)


def test_a_phase_resumed_after_epochs_without_a_new_best_keeps_their_count():
    model = _TwoTower(GOOD[:, ::-1].copy(), ITEMS)  # every epoch below scores 0.25
    callback = ValidationCallback(SAMPLE, {"x": np.arange(4)}, k=1, patience=3)
    callback.set_model(model)
    callback.resume(validation.Best(epoch=4, value=0.25, weights=[w.numpy() for w in model.weights]))
    # the phase began at epoch 3; epochs 3, 4, 5 and 6 were done, its best at 4: 5 and 6 did not improve
    callback.start_phase(first_epoch=3, epochs_done=4)
    assert callback.waited == 2
    callback.on_epoch_end(7, {})
    assert model.stop_training  # 3 without a new best, as in one uninterrupted run
    # the best came in an earlier phase: every epoch done in this one counts; a new phase counts from 0
    callback.start_phase(first_epoch=5, epochs_done=1)
    assert callback.waited == 1
    callback.start_phase(first_epoch=9)
    assert callback.waited == 0


def test_no_patience_never_stops_and_a_weight_average_can_be_the_best():
    model = _TwoTower(GOOD[:, ::-1].copy(), ITEMS)
    callback = ValidationCallback(SAMPLE, {"x": np.arange(4)}, k=1, patience=0)
    callback.set_model(model)
    for epoch in range(3):
        callback.on_epoch_end(epoch, {})
    assert not model.stop_training
    model.query_tower.table.assign(GOOD)  # as if the phase's weight average was swapped in
    assert callback.check_average(2, "stabilise") == pytest.approx(0.75)
    assert callback.best == pytest.approx(0.75) and callback.summary(False, [])["weight_averages"] == [
        {"phase": "stabilise", "epoch": 2, "val_recall@1": pytest.approx(0.75)}
    ]


def test_sample_users_takes_first_eval_rows_and_training_items_to_exclude():
    def examples(users, items):
        return tf.data.Dataset.from_tensor_slices({"user_id": tf.constant(users), "item_id": tf.constant(items)})

    eval_examples = examples([5, 5, 7], [1, 2, 3])
    train_examples = examples([5, 7, 9], [4, 6, 8])
    sample = validation.sample_users(eval_examples, train_examples, 10, exclude_seen=True)
    assert sample.queries["user_id"].tolist() == [5, 7] and sample.queries["item_id"].tolist() == [1, 3]
    assert [t.tolist() for t in sample.truth] == [[1, 2], [3]]
    assert [s.tolist() for s in sample.seen] == [[4], [6]]
    one = validation.sample_users(eval_examples, train_examples, 1, exclude_seen=False)
    assert len(one.truth) == 1 and one.seen[0].size == 0
    assert validation.sample_users(examples([], []), train_examples, 5, exclude_seen=True) is None


def test_calibrate_repeats_scales_the_learned_scores_to_the_best_factor():
    from twotower.config import Feature
    from twotower.trainer.history import HistoryEncoder
    from twotower.trainer.towers import Tower

    candidate = Tower("item_id", 5, [], embedding_dim=2, hidden_units=())  # 4 items + OOV
    encoder = HistoryEncoder(Feature("h", "interaction", "history", max_length=2), candidate.id_embedding, n_items=4)
    query = Tower("user_id", 3, [], embedding_dim=2, hidden_units=(), histories=[encoder])
    queries = {"user_id": np.array([0, 1]), "h": np.array([[3, -1], [3, 3]]), "h_age_days": np.zeros((2, 2))}
    query({k: tf.constant(v) for k, v in queries.items()}), candidate({"item_id": tf.range(4)})
    # candidates: item i's vector is row i (the candidate MLP is the identity); every query is (1, 0)
    candidate.id_embedding.set_weights([np.array([[1, 0], [0.9, 0.1], [0.5, 0.5], [0, 1], [0, 0]], np.float32)])
    candidate.mlp.layers[-1].set_weights([np.eye(2, dtype=np.float32), np.zeros(2, np.float32)])
    query.mlp.layers[-1].set_weights([np.zeros((4, 2), np.float32), np.array([1, 0], np.float32)])
    encoder.repeat.assign(np.ones(16, np.float32))  # one logit per occurrence of a history item
    model = _TwoTower(GOOD, ITEMS)
    model.query_tower, model.candidate_tower = query, candidate  # temperature 0.1: item 0 scores 10 logits
    sample = ValidationSample(queries, truth=[np.array([3]), np.array([3])], seen=[np.array([], np.int64)] * 2)
    callback = ValidationCallback(sample, {"item_id": np.arange(4)}, k=1, patience=0)
    callback.set_model(model)
    # item 3 (in both histories; user 1 twice) beats item 0's 10 logits only at 16 x 1 (user 0) or 8 x 2 (user 1)
    result = callback.calibrate_repeats()
    assert result["scales"] == {"0.0": 0.0, "0.5": 0.0, "1.0": 0.0, "2.0": 0.0, "4.0": 0.0, "8.0": 0.5, "16.0": 1.0}
    assert result["chosen"] == 16.0
    np.testing.assert_allclose(encoder.repeat.numpy(), 16.0)
