"""The phased training schedule as Keras callbacks.

``plan_steps`` lays the phases out on the global step axis (the optimizer's
iteration count), so a resumed run knows which phase, epoch and batch it is in.
``PhaseCallback`` switches the model's loss options and the learning-rate
schedule when its phase begins, keeps the weight average of an ``ema`` phase,
and writes phase boundaries, learning rate and temperature to TensorBoard.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Dict, List, Optional, Sequence

import tensorflow as tf

from twotower.config import PHASE_SCHEDULES, PhaseConfig


@dataclasses.dataclass(frozen=True)
class PhaseSteps:
    """Where a phase sits on the global step axis."""

    index: int
    phase: PhaseConfig
    steps_per_epoch: int
    first_step: int  # global step at which the phase starts
    first_epoch: int  # global epoch number of its first epoch

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.phase.epochs

    @property
    def last_step(self) -> int:
        """The global step after its last batch."""
        return self.first_step + self.steps

    def bounds(self) -> Dict[str, int]:
        """Returns {first_epoch, last_epoch, first_step, last_step} (global numbers; last_epoch included)."""
        return {
            "first_epoch": self.first_epoch,
            "last_epoch": self.first_epoch + self.phase.epochs - 1,
            "first_step": self.first_step,
            "last_step": self.last_step,
        }


def plan_steps(phases: Sequence[PhaseConfig], n_examples: int) -> List[PhaseSteps]:
    """Returns each phase's steps for ``n_examples`` training examples (the last batch may be short)."""
    out, step, epoch = [], 0, 0
    for i, ph in enumerate(phases):
        per_epoch = max(1, math.ceil(n_examples / ph.batch_size))
        out.append(PhaseSteps(i, ph, per_epoch, step, epoch))
        step += per_epoch * ph.epochs
        epoch += ph.epochs
    return out


def position(plan: Sequence[PhaseSteps], step: int) -> Optional[tuple[PhaseSteps, int, int]]:
    """Returns (phase, epoch within the phase, batches done in that epoch) at global ``step``; None when done."""
    for p in plan:
        if step < p.last_step:
            done = step - p.first_step
            return p, done // p.steps_per_epoch, done % p.steps_per_epoch
    return None


class PhaseSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate of the current phase at global step ``step``; the phase callback sets its variables.

    Shapes within a phase of S steps starting at s0 with peak rate r:
    constant r; cosine r * (1 + cos(pi * t)) / 2; warmup r * t (linear rise),
    where t = (step - s0 + 1) / S.
    """

    def __init__(self):
        self.peak = tf.Variable(0.0, trainable=False, name="phase_peak_rate")
        self.first_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase_first_step")
        self.steps = tf.Variable(1, dtype=tf.int64, trainable=False, name="phase_steps")
        self.shape = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase_shape")

    def set(self, phase: PhaseSteps) -> None:
        """Starts ``phase``'s schedule."""
        self.peak.assign(phase.phase.learning_rate)
        self.first_step.assign(phase.first_step)
        self.steps.assign(phase.steps)
        self.shape.assign(PHASE_SCHEDULES.index(phase.phase.schedule))

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        done = tf.cast(tf.cast(step, tf.int64) - self.first_step + 1, tf.float32)
        t = tf.clip_by_value(done / tf.cast(self.steps, tf.float32), 0.0, 1.0)
        cosine = 0.5 * (1.0 + tf.cos(math.pi * t))
        factor = tf.gather(tf.stack([1.0, cosine, t]), self.shape)
        return self.peak * factor

    def get_config(self) -> Dict[str, Any]:
        return {}


class WeightAverage(tf.Module):
    """An exponential moving average of a model's trainable variables (checkpointed with it)."""

    def __init__(self, variables: Sequence[tf.Variable]):
        super().__init__(name="weight_average")
        self.variables_ = list(variables)
        self.shadows = [tf.Variable(v, trainable=False, name="ema") for v in self.variables_]

    @tf.function
    def reset(self) -> None:
        """Starts the average at the current weights."""
        for shadow, v in zip(self.shadows, self.variables_, strict=True):
            shadow.assign(v)

    @tf.function
    def update(self, decay: tf.Tensor) -> None:
        """shadow = decay * shadow + (1 - decay) * weight."""
        for shadow, v in zip(self.shadows, self.variables_, strict=True):
            shadow.assign(decay * shadow + (1.0 - decay) * v)

    @tf.function
    def swap_in(self) -> None:
        """Copies the average into the model's weights."""
        for shadow, v in zip(self.shadows, self.variables_, strict=True):
            v.assign(shadow)


# An ``ema`` phase starts its average where the weights before it would weigh under this in the end.
EMA_TOLERANCE = 1e-6


def ema_window(decay: float) -> int:
    """Returns the number of last steps whose weights make up all but ``EMA_TOLERANCE`` of an EMA with ``decay``."""
    return math.ceil(math.log(EMA_TOLERANCE) / math.log(decay))


def ema_start(p: PhaseSteps) -> int:
    """Returns the step at which phase ``p``'s weight average starts: its first, or ``ema_window`` before its last.

    Each update of the average reads and writes every weight (at the full H&M size, 1.4M
    customer rows: about 0.15-0.27 s a step), so a long phase starts averaging late. Weights
    from before the start would weigh ``decay ** window`` < EMA_TOLERANCE in the final average.
    """
    return max(p.first_step, p.last_step - ema_window(p.phase.ema))


class PhaseCallback(tf.keras.callbacks.Callback):
    """Runs one phase: loss options, learning-rate schedule, weight average, TensorBoard records.

    ``resumed`` says the phase already ran partly (restored from a checkpoint),
    so its weight average is the restored one rather than a fresh copy.
    """

    def __init__(
        self,
        phase: PhaseSteps,
        schedule: PhaseSchedule,
        average: WeightAverage,
        log_dir: str,
        resumed: bool = False,
    ):
        super().__init__()
        self.phase = phase
        self.schedule = schedule
        self.average = average
        self.resumed = resumed
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "phases"))
        self.decay = tf.constant(phase.phase.ema, tf.float32)
        self.ema_start = ema_start(phase) if phase.phase.ema else 0

    def on_train_begin(self, logs: Optional[Dict[str, float]] = None) -> None:
        ph = self.phase.phase
        self.model.set_loss(ph.loss, ph.negatives, ph.hard_negatives, ph.alignment)
        # fit() built its train function before this call; tracing happens at the first batch.
        self.model.train_function = self.model.make_train_function(force=True)
        self.model.test_function = None
        self.schedule.set(self.phase)
        if ph.ema and not self.resumed and self.ema_start == self.phase.first_step:
            self.average.reset()
        with self.writer.as_default():
            text = (
                f"phase {self.phase.index + 1} **{ph.name}** from epoch {self.phase.first_epoch} "
                f"(step {self.phase.first_step}): {ph.epochs} epoch(s), batch {ph.batch_size}, loss {ph.loss}, "
                f"lr {ph.learning_rate:g} {ph.schedule}, negatives {ph.negatives}, hard {ph.hard_negatives}, "
                f"ema {ph.ema:g}"
            )
            tf.summary.text("phase", text, step=self.phase.first_epoch)

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, float]] = None) -> None:
        if not self.phase.phase.ema:
            return
        step = int(self.model.optimizer.iterations.numpy())
        if step == self.ema_start:  # a late start (ema_start): the average begins at this step's weights
            self.average.reset()
        elif step > self.ema_start:
            self.average.update(self.decay)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, float]] = None) -> None:
        optimizer = self.model.optimizer
        rate = float(self.schedule(optimizer.iterations))
        if logs is not None:
            logs["learning_rate"] = rate
        with self.writer.as_default():
            tf.summary.scalar("phase", self.phase.index, step=epoch)
            tf.summary.scalar("learning_rate", rate, step=epoch)
            tf.summary.scalar("temperature", float(self.model.temperature), step=epoch)
        self.writer.flush()

    def on_train_end(self, logs: Optional[Dict[str, float]] = None) -> None:
        # a resumed phase may take two fit() calls; the average replaces the weights once, at its very end
        if self.phase.phase.ema and int(self.model.optimizer.iterations.numpy()) >= self.phase.last_step:
            self.average.swap_in()
