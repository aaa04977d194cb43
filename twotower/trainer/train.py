"""Training: fit the two-tower model phase by phase (fitting only; ``twotower.export`` packages the result).

``fit`` runs under ``strategy.choose_strategy()`` (one device, the machine's devices, or
MultiWorkerMirroredStrategy when ``TF_CONFIG`` names several workers: every worker sees its share
of each global batch), checkpoints as it goes and, run again on the same checkpoint directory
after a crash, resumes at the step of the last checkpoint (the data order after a resume differs
from an unbroken run).
``twotower.export.package.train_and_export`` (what the TFX run_fn calls; tests and
notebooks call it the same way) fits, then exports.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from twotower.config import Profile
from twotower.trainer import cache, data, model, phases, towers
from twotower.trainer.checkpoints import CheckpointCallback, Checkpoints, HistoryCallback
from twotower.trainer.strategy import choose_strategy, shard_by_data
from twotower.trainer.validation import ValidationCallback, sample_users
from twotower.transform.features import ITEM_ID, NUM_OOV_BUCKETS, history_item_features, raw_inputs

SHUFFLE_BUFFER = 100_000


@dataclasses.dataclass(frozen=True)
class Paths:
    """Inputs and outputs of one training run (file patterns and directories)."""

    train: Sequence[str]
    eval: Sequence[str]
    catalog: Sequence[str]
    transform_graph: str
    serving_model_dir: str
    log_dir: str  # TensorBoard logs
    checkpoint_dir: str = ""  # where to checkpoint and resume from; default: log_dir/checkpoints
    histories: Sequence[str] = ()  # the histories split (each user's history at the end of the data), if any
    checkpoint_write_dir: str = (
        ""  # where this worker saves (a non-chief worker: a temporary one); default checkpoint_dir
    )


def item_counts(examples: tf.data.Dataset, n_items: int) -> np.ndarray:
    """Returns ``[n_items]`` int64 training counts of each transformed item index (one pass; fills the cache)."""
    counts = np.zeros(n_items, dtype=np.int64)
    for batch in examples.batch(65536):
        counts += np.bincount(batch[ITEM_ID].numpy(), minlength=n_items)[:n_items]
    return counts


def item_table(
    patterns: Sequence[str], tft_output: tft.TFTransformOutput, profile: Profile, n_vocab: int
) -> Dict[str, np.ndarray]:
    """Returns every transformed item feature as ``[n_vocab, ...]`` values by item index (for sampled negatives).

    Built from the catalogue split; catalogue items outside the training
    vocabulary (the OOV bucket) are left out, so sampling never draws OOV.
    """
    _, item_raw = raw_inputs(profile)
    table: Dict[str, np.ndarray] = {}
    for batch in data.transformed_dataset(patterns, tft_output, item_raw).batch(65536):
        index = batch[ITEM_ID].numpy()
        known = index < n_vocab
        for name, tensor in batch.items():
            values = tensor.numpy()
            if name not in table:
                table[name] = np.zeros((n_vocab,) + values.shape[1:], dtype=values.dtype)
            table[name][index[known]] = values[known]
    table[ITEM_ID] = np.arange(n_vocab, dtype=np.int64)
    return table


def make_optimizer(
    name: str, schedule: phases.PhaseSchedule, weight_decay: float = 0.0, mixed_precision: str = ""
) -> tf.keras.optimizers.Optimizer:
    """Returns the trainer's optimizer ('adagrad', 'adam' or 'adamw' with ``weight_decay``) driven by the schedule.

    Under ``mixed_float16`` it is wrapped in a LossScaleOptimizer (float16 gradients underflow otherwise).
    """
    if name == "adam":
        optimizer = tf.keras.optimizers.Adam(schedule)
    elif name == "adamw":
        optimizer = tf.keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
    else:
        optimizer = tf.keras.optimizers.Adagrad(schedule)
    if mixed_precision == "mixed_float16":
        return tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def fit_phase(
    two_tower: model.TwoTowerModel,
    p: phases.PhaseSteps,
    step: int,
    train_blocks: tf.data.Dataset,
    eval_examples: tf.data.Dataset,
    callbacks: List[tf.keras.callbacks.Callback],
) -> int:
    """Trains phase ``p`` from global ``step`` to its end; returns the number of batches run.

    A phase resumed mid-epoch first finishes that epoch (skipping the batches
    already done), then runs its remaining epochs.
    """
    # Keras counts a probing call past the end of a dataset of unknown size as an optimizer step;
    # the known cardinality avoids it (and checks the plan's step count).
    batches = shard_by_data(
        data.shuffled_batches(train_blocks, p.phase.batch_size, SHUFFLE_BUFFER, seed=p.index)
        .apply(tf.data.experimental.assert_cardinality(p.steps_per_epoch))
        .prefetch(2)
    )
    validation = shard_by_data(eval_examples.batch(p.phase.batch_size))
    epoch, done = divmod(step - p.first_step, p.steps_per_epoch)
    epoch += p.first_epoch
    last_epoch = p.first_epoch + p.phase.epochs
    if done:
        two_tower.fit(
            batches.skip(done),
            initial_epoch=epoch,
            epochs=epoch + 1,
            validation_data=validation,
            callbacks=callbacks,
            verbose=2,
        )
        epoch += 1
    if epoch < last_epoch:
        two_tower.fit(
            batches, initial_epoch=epoch, epochs=last_epoch, validation_data=validation, callbacks=callbacks, verbose=2
        )
    return p.last_step - step


@dataclasses.dataclass
class Fitted:
    """What ``fit`` hands to the export: the trained towers, their data and the training history."""

    model: model.TwoTowerModel
    tft_output: tft.TFTransformOutput
    eval_examples: tf.data.Dataset  # transformed eval examples, unbatched (the index is tuned on their queries)
    history: Dict[str, Any]  # history.json's content (see ``fit``)
    checkpoints: Checkpoints  # removed once the export is complete: a finished run is not resumed

    @property
    def query_tower(self) -> towers.Tower:
        return self.model.query_tower

    @property
    def candidate_tower(self) -> towers.Tower:
        return self.model.candidate_tower


def build_model(
    profile: Profile,
    tft_output: tft.TFTransformOutput,
    counts: np.ndarray,
    table: Optional[Dict[str, np.ndarray]],
    first: Dict[str, tf.Tensor],
) -> Tuple[model.TwoTowerModel, tf.keras.optimizers.Optimizer, phases.PhaseSchedule, phases.WeightAverage]:
    """Returns (model, optimizer, schedule, weight average), built in the current strategy's scope.

    ``counts``: ``[n_items]`` training counts by item index; ``table``: the item feature table for sampled
    negatives (or None); ``first``: a batch of transformed examples, run once to create the variables a
    checkpoint restores into.
    """
    t = profile.trainer
    query_tower, candidate_tower = towers.build_towers(profile, tft_output, table)
    two_tower = model.TwoTowerModel(
        query_tower,
        candidate_tower,
        t.temperature,
        learn_temperature=t.learn_temperature,
        item_frequency=model.item_frequency(counts) if t.logq_strength > 0 else None,
        logq_strength=t.logq_strength,
        item_table=table,
        alignment_feature=t.alignment_feature,
    )
    schedule = phases.PhaseSchedule()
    optimizer = make_optimizer(t.optimizer, schedule, t.weight_decay, t.mixed_precision)
    two_tower.compile(optimizer=optimizer)
    query_tower(first), candidate_tower(first)
    optimizer.build(two_tower.trainable_variables)
    return two_tower, optimizer, schedule, phases.WeightAverage(two_tower.trainable_variables)


@dataclasses.dataclass
class Session:
    """One ``fit`` run: the model and its training state, the plan, the data, where logs go."""

    model: model.TwoTowerModel
    schedule: phases.PhaseSchedule
    average: phases.WeightAverage
    checkpoints: Checkpoints
    plan: Sequence[phases.PhaseSteps]
    train_blocks: tf.data.Dataset  # transformed, in parse batches
    eval_examples: tf.data.Dataset
    n_examples: int  # training examples per epoch
    log_dir: str
    checkpoint_every_steps: int
    validation: Optional[ValidationCallback] = None


def run_plan(session: Session) -> Tuple[float, List[str]]:
    """Runs every phase not yet done (by the optimizer's step); returns (examples/s of this run, phases stopped early).

    A phase stopped early by validation jumps the optimizer's step to the phase's end, so the next
    phase starts where the plan lays it out.
    """
    s = session
    tensorboard = tf.keras.callbacks.TensorBoard(log_dir=s.log_dir, update_freq="epoch")
    started, examples, stopped = time.monotonic(), 0.0, []
    optimizer = s.model.optimizer
    for p in s.plan:
        step = int(optimizer.iterations.numpy())
        if step >= p.last_step:
            continue
        callbacks: List[tf.keras.callbacks.Callback] = [
            phases.PhaseCallback(p, s.schedule, s.average, s.log_dir, resumed=step > p.first_step)
        ]
        if s.validation is not None:
            s.validation.start_phase(p.first_epoch, (step - p.first_step) // p.steps_per_epoch)
            callbacks.append(s.validation)
        callbacks += [
            HistoryCallback(s.checkpoints, p.phase.name),
            CheckpointCallback(s.checkpoints, s.checkpoint_every_steps),
            tensorboard,
        ]
        batches = fit_phase(s.model, p, step, s.train_blocks, s.eval_examples, callbacks)
        examples += batches * s.n_examples / p.steps_per_epoch
        if int(optimizer.iterations.numpy()) < p.last_step:
            stopped.append(p.phase.name)
            optimizer.iterations.assign(p.last_step)
        elif p.phase.ema and s.validation is not None:  # the weight average replaced the weights after the last epoch
            s.validation.check_average(p.first_epoch + p.phase.epochs - 1, p.phase.name)
    seconds = time.monotonic() - started
    return (examples / seconds if seconds > 0 else 0.0), stopped


def fit(profile: Profile, paths: Paths) -> Fitted:
    """Trains phase by phase (resuming from ``paths``' checkpoints); returns the fitted model, not yet exported.

    ``Fitted.history`` (exported as ``assets.extra/history.json``) is
    ``{"phases": [{name, first_epoch, last_epoch, first_step, last_step, batch_size, ...}],
    "epochs": [{epoch, phase, loss, val_loss, val_recall@K, learning_rate}], "examples_per_s": float,
    "resumed_from_step": int, "temperature": float, "validation": {metric, best, best_epoch, restored,
    stopped_early}}``.
    """
    t = profile.trainer
    strategy = choose_strategy(t.worker_start_timeout_s)  # several workers: before any other TensorFlow op
    if t.seed:
        tf.keras.utils.set_random_seed(t.seed)
    tft_output = tft.TFTransformOutput(paths.transform_graph)
    query_raw, item_raw = raw_inputs(profile)

    def blocks(split: str, patterns: Sequence[str]) -> tf.data.Dataset:
        batches = data.transformed_batches(patterns, tft_output, query_raw + item_raw)
        return cache.cached(batches, cache.plan_cache(t.cache, split, patterns, batches))

    train_blocks = blocks("train", paths.train)
    train_examples, eval_examples = train_blocks.unbatch(), blocks("eval", paths.eval).unbatch()
    n_vocab = tft_output.vocabulary_size_by_name(ITEM_ID)
    counts = item_counts(train_examples, n_vocab + NUM_OOV_BUCKETS)
    plan = phases.plan_steps(t.plan(), int(counts.sum()))
    needs_table = any(p.phase.negatives for p in plan) or history_item_features(profile) or t.validation_users
    table = item_table(paths.catalog, tft_output, profile, n_vocab) if needs_table else None
    with strategy.scope():
        first = next(iter(train_examples.batch(2)))
        two_tower, optimizer, schedule, average = build_model(profile, tft_output, counts, table, first)
    checkpoints = Checkpoints(
        paths.checkpoint_dir or os.path.join(paths.log_dir, "checkpoints"),
        paths.checkpoint_write_dir,
        model=two_tower,
        optimizer=optimizer,
        average=average,
    )
    resumed_from = 0
    if checkpoints.restore():
        resumed_from = int(optimizer.iterations.numpy())
        logging.info("Resuming at step %d of %d from %s", resumed_from, plan[-1].last_step, checkpoints.directory)
    validation = validation_callback(profile, two_tower, table, train_examples, eval_examples, checkpoints)
    if validation is not None and resumed_from:
        validation.resume(checkpoints.restore_best(two_tower.weights))
    session = Session(
        model=two_tower,
        schedule=schedule,
        average=average,
        checkpoints=checkpoints,
        plan=plan,
        train_blocks=train_blocks,
        eval_examples=eval_examples,
        n_examples=int(counts.sum()),
        log_dir=paths.log_dir,
        checkpoint_every_steps=t.checkpoint_every_steps,
        validation=validation,
    )
    speed, stopped = run_plan(session)
    history = {
        "phases": [dict(dataclasses.asdict(p.phase), **p.bounds()) for p in plan],
        "epochs": checkpoints.history,
        "examples_per_s": speed,
        "resumed_from_step": resumed_from,
        "temperature": float(two_tower.temperature),
    }
    if validation is not None:
        restored = validation.restore() if t.restore_best else None
        history["validation"] = validation.summary(restored is not None, stopped)
        history["validation"]["repeat_calibration"] = validation.calibrate_repeats()
    return Fitted(two_tower, tft_output, eval_examples, history, checkpoints)


def validation_callback(
    profile: Profile,
    two_tower: model.TwoTowerModel,
    table: Optional[Dict[str, np.ndarray]],
    train_examples: tf.data.Dataset,
    eval_examples: tf.data.Dataset,
    checkpoints: Checkpoints,
) -> Optional[ValidationCallback]:
    """Returns the validation callback (``trainer.validation``), or None when it is off or eval is empty.

    With ``trainer.restore_best`` it keeps each new best beside ``checkpoints``, so that a resumed run
    still ends on the best weights.
    """
    t = profile.trainer
    if not t.validation_users or table is None:
        return None
    sample = sample_users(eval_examples, train_examples, t.validation_users, profile.evaluator.exclude_seen)
    if sample is None:
        return None
    items = {name: table[name] for name in two_tower.candidate_tower.feature_names}
    keep = checkpoints.save_best if t.restore_best else None
    callback = ValidationCallback(sample, items, t.validation_k, t.patience, keep=keep)
    callback.set_model(two_tower)  # fit() sets it too, but a run resumed after its last phase never calls fit()
    return callback
