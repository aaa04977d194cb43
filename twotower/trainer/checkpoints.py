"""Checkpoints every N steps and at phase ends, and resuming from the last one.

A checkpoint holds the model, the optimizer (its step counter tells the phase
plan where to resume), the weight average and the per-epoch history so far, so
a killed run picks up where it stopped instead of starting over. The best weights validation has
seen are kept beside them (``best_weights.npz``, written on each new best), so a resumed run can
still end on weights from before the cut.
"""

from __future__ import annotations

import io
import json
import logging
import os
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf

HISTORY_FILE = "history.json"
BEST_FILE = "best_weights.npz"


class Best(NamedTuple):
    """The best weights validation has seen: their epoch, their metric, the model's weights in order."""

    epoch: int
    value: float
    weights: List[np.ndarray]


class Checkpoints:
    """A CheckpointManager over ``objects`` in ``directory`` plus the training history beside it.

    ``write_directory`` (default ``directory``) is where this process saves: a multi-worker run's
    non-chief workers restore from the chief's ``directory`` but save to a temporary one, as
    TensorFlow's multi-worker guide prescribes (every worker saves: saving may run collective ops).
    """

    def __init__(self, directory: str, write_directory: str = "", **objects: Any):
        self.directory = directory
        self.write_directory = write_directory or directory
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.write_directory, max_to_keep=2)
        self.history: List[Dict[str, Any]] = []

    def restore(self) -> Optional[str]:
        """Restores the latest checkpoint and its history; returns its path, or None if there is none."""
        path = tf.train.latest_checkpoint(self.directory)
        if path is None:
            return None
        self.checkpoint.restore(path).assert_existing_objects_matched()
        history = os.path.join(self.directory, HISTORY_FILE)
        if tf.io.gfile.exists(history):
            with tf.io.gfile.GFile(history) as f:
                self.history = json.load(f)
        return path

    def save(self, step: int) -> str:
        """Writes a checkpoint numbered ``step`` and the history; returns its path."""
        path = self.manager.save(checkpoint_number=step)
        with tf.io.gfile.GFile(os.path.join(self.write_directory, HISTORY_FILE), "w") as f:
            json.dump(self.history, f)
        logging.info("Checkpoint at step %d: %s", step, path)
        return path

    def save_best(self, best: Best) -> None:
        """Writes ``best`` beside the checkpoints (replacing the one there, never leaving half a file)."""
        buffer = io.BytesIO()
        np.savez(buffer, *best.weights, epoch=best.epoch, value=best.value)
        tf.io.gfile.makedirs(self.write_directory)
        path = os.path.join(self.write_directory, BEST_FILE)
        with tf.io.gfile.GFile(path + ".tmp", "wb") as f:
            f.write(buffer.getvalue())
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)

    def restore_best(self, expected: Sequence[tf.Variable]) -> Optional[Best]:
        """Returns the best weights kept in ``directory`` (None if there are none), checked against the
        model's ``expected`` weights: a checkpoint of another model is an error, not a silent mix."""
        path = os.path.join(self.directory, BEST_FILE)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path, "rb") as f:
            kept = np.load(io.BytesIO(f.read()))
        weights = [kept[f"arr_{i}"] for i in range(len(kept.files) - 2)]
        shapes = [tuple(w.shape) for w in weights]
        if shapes != [tuple(v.shape) for v in expected]:
            raise ValueError(
                f"{path} holds {len(weights)} weights that do not match this model's {len(expected)}: it was "
                "written by a different model; delete the checkpoint directory to train from the start"
            )
        return Best(int(kept["epoch"]), float(kept["value"]), weights)

    def remove(self) -> None:
        """Deletes the directory this process writes: a finished run is not resumed."""
        if tf.io.gfile.exists(self.write_directory):
            tf.io.gfile.rmtree(self.write_directory)


class CheckpointCallback(tf.keras.callbacks.Callback):
    """Saves every ``every_steps`` global steps (0: never mid-phase) and when a fit() ends."""

    def __init__(self, checkpoints: Checkpoints, every_steps: int):
        super().__init__()
        self.checkpoints = checkpoints
        self.every_steps = every_steps
        self.step = 0

    def on_train_begin(self, logs: Optional[Dict[str, float]] = None) -> None:
        self.step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, float]] = None) -> None:
        self.step += 1
        if self.every_steps and self.step % self.every_steps == 0:
            self.checkpoints.save(self.step)

    def on_train_end(self, logs: Optional[Dict[str, float]] = None) -> None:
        self.checkpoints.save(int(self.model.optimizer.iterations.numpy()))


class HistoryCallback(tf.keras.callbacks.Callback):
    """Appends each epoch's logs (loss, val_loss, learning_rate, ...) with its phase to the checkpoint history."""

    def __init__(self, checkpoints: Checkpoints, phase: str):
        super().__init__()
        self.checkpoints = checkpoints
        self.phase = phase

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, float]] = None) -> None:
        record = {"epoch": epoch, "phase": self.phase}
        record.update({k: float(v) for k, v in (logs or {}).items()})
        self.checkpoints.history.append(record)
