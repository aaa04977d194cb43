"""The weight average of an ``ema`` phase: where it starts, and that a late start gives the same average."""

import numpy as np
import tensorflow as tf

from twotower.config import PhaseConfig
from twotower.trainer import phases


def test_the_window_holds_all_but_the_tolerance():
    for decay in (0.5, 0.9, 0.99, 0.999):
        w = phases.ema_window(decay)
        assert decay**w < phases.EMA_TOLERANCE <= decay ** (w - 1)
    assert phases.ema_window(0.99) == 1375


def test_a_short_phase_averages_from_its_first_step_a_long_one_from_its_window():
    short = phases.PhaseSteps(2, PhaseConfig("stabilise", 1, ema=0.99), 400, 5000, 7)
    long = phases.PhaseSteps(2, PhaseConfig("stabilise", 1, ema=0.99), 60_000, 5000, 7)
    assert phases.ema_start(short) == 5000
    assert phases.ema_start(long) == 65_000 - 1375


class Linear(tf.keras.Model):
    """A real Keras model with the one hook PhaseCallback calls on the two-tower model."""

    def __init__(self):
        super().__init__()
        self.dense = tf.keras.layers.Dense(1)
        self.temperature = tf.Variable(1.0, trainable=False)

    def call(self, x):
        return self.dense(x)

    def set_loss(self, *args):
        pass


class Weights(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(np.concatenate([v.numpy().ravel() for v in self.model.trainable_variables]))


def train(decay: float, steps: int, tmp_path) -> tuple:
    """Trains ``steps`` SGD steps in one ema phase; returns (weights after each step, final weights, phase)."""
    tf.keras.utils.set_random_seed(0)
    model = Linear()
    schedule = phases.PhaseSchedule()
    model.compile(optimizer=tf.keras.optimizers.SGD(schedule), loss="mse")
    x, y = np.random.default_rng(0).normal(size=(2, steps, 3)).astype(np.float32)
    model(x[:1])
    p = phases.PhaseSteps(0, PhaseConfig("stabilise", 1, learning_rate=0.1, ema=decay), steps, 0, 0)
    weights = Weights()
    callback = phases.PhaseCallback(p, schedule, phases.WeightAverage(model.trainable_variables), str(tmp_path))
    model.fit(x, y[:, :1], batch_size=1, epochs=1, callbacks=[weights, callback], verbose=0, shuffle=False)
    final = np.concatenate([v.numpy().ravel() for v in model.trainable_variables])
    return np.stack(weights.seen), final, p


def ema(weights: np.ndarray, start: np.ndarray, decay: float) -> np.ndarray:
    shadow = start
    for w in weights:
        shadow = decay * shadow + (1 - decay) * w
    return shadow


def test_a_late_start_averages_from_its_window_and_equals_the_full_average(tmp_path):
    decay, steps = 0.5, 60  # window 20: the average starts at step 40
    seen, final, p = train(decay, steps, tmp_path)
    start = phases.ema_start(p)
    assert start == 40
    # seen[i] are the weights after step i + 1; the average starts at the weights after step `start`
    late = ema(seen[start:], seen[start - 1], decay)
    np.testing.assert_allclose(final, late, rtol=1e-6, atol=1e-7)
    full = ema(seen[1:], seen[0], decay)  # averaged from the first step, as before the window
    assert np.max(np.abs(final - full)) <= phases.EMA_TOLERANCE * np.max(np.abs(seen))
    assert np.max(np.abs(final - seen[-1])) > 1e-4  # the average is not simply the last weights
