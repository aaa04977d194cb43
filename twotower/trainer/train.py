"""Training: fit the two-tower model phase by phase, embed the catalogue, export the SavedModel.

The export carries the catalogue's retrieval index (``serving.scann_index``), tuned on eval queries.

``train`` is what the TFX run_fn calls; tests and notebooks call it the same way.
It runs under ``strategy.choose_strategy()``, checkpoints as it goes and, run
again on the same checkpoint directory after a crash, resumes at the step of
the last checkpoint (the data order after a resume differs from an unbroken run).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from typing import Any, Dict, List, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from twotower.config import Profile  # noqa: E402
from twotower.serving import scann_index  # noqa: E402
from twotower.serving.onnx_export import export_onnx, raw_examples  # noqa: E402
from twotower.trainer import data, export, model, phases, towers  # noqa: E402
from twotower.trainer.checkpoints import CheckpointCallback, Checkpoints, HistoryCallback  # noqa: E402
from twotower.trainer.export import HISTORY_ASSET  # noqa: E402
from twotower.trainer.strategy import choose_strategy  # noqa: E402
from twotower.transform.features import ITEM_ID, NUM_OOV_BUCKETS, raw_inputs, to_dense  # noqa: E402
from twotower.vocab.vocabularies import export_vocabularies  # noqa: E402

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


def item_counts(examples: tf.data.Dataset, n_items: int) -> np.ndarray:
    """Returns ``[n_items]`` int64 training counts of each transformed item index (one pass; fills the cache)."""
    counts = np.zeros(n_items, dtype=np.int64)
    for batch in examples.batch(65536):
        counts += np.bincount(batch[ITEM_ID].numpy(), minlength=n_items)[:n_items]
    return counts


def embed_catalog(
    patterns: Sequence[str],
    tft_output: tft.TFTransformOutput,
    candidate_tower: tf.keras.Model,
    profile: Profile,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (ids ``[n]`` bytes, names ``[n]`` bytes, embeddings ``[n, dim]`` float32) of the catalogue."""
    d = profile.data
    _, item_raw = raw_inputs(profile)
    spec = {n: tft_output.raw_feature_spec()[n] for n in item_raw + [d.item_name]}
    layer = tft_output.transform_features_layer()
    ids, names, embeddings = [], [], []
    for raw in data.raw_dataset(patterns, spec):
        ids.append(to_dense(raw[d.item_id]).numpy())
        names.append(to_dense(raw[d.item_name]).numpy())
        embeddings.append(candidate_tower(layer({n: raw[n] for n in item_raw})).numpy())
    return np.concatenate(ids), np.concatenate(names), np.concatenate(embeddings)


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


def make_optimizer(name: str, schedule: phases.PhaseSchedule) -> tf.keras.optimizers.Optimizer:
    """Returns the trainer's optimizer ('adagrad' or 'adam') driven by the phase schedule."""
    if name == "adam":
        return tf.keras.optimizers.Adam(schedule)
    return tf.keras.optimizers.Adagrad(schedule)


def fit_phase(
    two_tower: model.TwoTowerModel,
    p: phases.PhaseSteps,
    step: int,
    train_examples: tf.data.Dataset,
    eval_examples: tf.data.Dataset,
    callbacks: List[tf.keras.callbacks.Callback],
) -> int:
    """Trains phase ``p`` from global ``step`` to its end; returns the number of batches run.

    A phase resumed mid-epoch first finishes that epoch (skipping the batches
    already done), then runs its remaining epochs.
    """
    # Keras counts a probing call past the end of a dataset of unknown size as an optimizer step;
    # the known cardinality avoids it (and checks the plan's step count).
    batches = (
        train_examples.shuffle(SHUFFLE_BUFFER, seed=p.index)
        .batch(p.phase.batch_size)
        .apply(tf.data.experimental.assert_cardinality(p.steps_per_epoch))
        .prefetch(2)
    )
    validation = eval_examples.batch(p.phase.batch_size)
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


def train(profile: Profile, paths: Paths) -> Dict[str, Any]:
    """Trains phase by phase, exports to ``paths.serving_model_dir``, returns the history.

    The history (saved as ``assets.extra/history.json`` in the model too) is
    ``{"phases": [{name, first_epoch, last_epoch, first_step, last_step, batch_size, ...}],
    "epochs": [{epoch, phase, loss, val_loss, learning_rate}], "examples_per_s": float,
    "resumed_from_step": int}``.
    """
    t = profile.trainer
    strategy = choose_strategy()
    tft_output = tft.TFTransformOutput(paths.transform_graph)
    query_raw, item_raw = raw_inputs(profile)

    def dataset(patterns: Sequence[str]) -> tf.data.Dataset:
        return data.transformed_dataset(patterns, tft_output, query_raw + item_raw).cache()

    train_examples, eval_examples = dataset(paths.train), dataset(paths.eval)
    n_vocab = tft_output.vocabulary_size_by_name(ITEM_ID)
    counts = item_counts(train_examples, n_vocab + NUM_OOV_BUCKETS)
    plan = phases.plan_steps(t.plan(), int(counts.sum()))
    table = item_table(paths.catalog, tft_output, profile, n_vocab) if any(p.phase.negatives for p in plan) else None
    with strategy.scope():
        query_tower, candidate_tower = towers.build_towers(profile, tft_output)
        two_tower = model.TwoTowerModel(
            query_tower,
            candidate_tower,
            t.temperature,
            learn_temperature=t.learn_temperature,
            item_frequency=model.item_frequency(counts) if t.logq_strength > 0 else None,
            logq_strength=t.logq_strength,
            item_table=table,
        )
        schedule = phases.PhaseSchedule()
        optimizer = make_optimizer(t.optimizer, schedule)
        two_tower.compile(optimizer=optimizer)
        first = next(iter(train_examples.batch(2)))
        query_tower(first), candidate_tower(first)  # create the variables a checkpoint restores into
        optimizer.build(two_tower.trainable_variables)
        average = phases.WeightAverage(two_tower.trainable_variables)
    checkpoints = Checkpoints(
        paths.checkpoint_dir or os.path.join(paths.log_dir, "checkpoints"),
        model=two_tower,
        optimizer=optimizer,
        average=average,
    )
    resumed_from = 0
    if checkpoints.restore():
        resumed_from = int(optimizer.iterations.numpy())
        logging.info("Resuming at step %d of %d from %s", resumed_from, plan[-1].last_step, checkpoints.directory)
    tensorboard = tf.keras.callbacks.TensorBoard(log_dir=paths.log_dir, update_freq="epoch")
    started, examples = time.monotonic(), 0
    for p in plan:
        step = int(optimizer.iterations.numpy())
        if step >= p.last_step:
            continue
        callbacks = [
            phases.PhaseCallback(p, schedule, average, paths.log_dir, resumed=step > p.first_step),
            HistoryCallback(checkpoints, p.phase.name),
            CheckpointCallback(checkpoints, t.checkpoint_every_steps),
            tensorboard,
        ]
        batches = fit_phase(two_tower, p, step, train_examples, eval_examples, callbacks)
        examples += batches * int(counts.sum()) / p.steps_per_epoch
    seconds = time.monotonic() - started
    history = {
        "phases": [
            dict(
                dataclasses.asdict(p.phase),
                first_epoch=p.first_epoch,
                last_epoch=p.first_epoch + p.phase.epochs - 1,
                first_step=p.first_step,
                last_step=p.last_step,
            )
            for p in plan
        ],
        "epochs": checkpoints.history,
        "examples_per_s": examples / seconds if seconds > 0 else 0.0,
        "resumed_from_step": resumed_from,
        "temperature": float(two_tower.temperature),
    }
    ids, names, embeddings = embed_catalog(paths.catalog, tft_output, candidate_tower, profile)
    logging.info("Embedded %d catalogue items; exporting to %s", len(ids), paths.serving_model_dir)
    module = export.RetrievalModule(
        tft_output,
        query_tower,
        candidate_tower,
        query_raw,
        item_raw,
        item_ids=tf.constant(ids),
        item_names=tf.constant(names),
        item_embeddings=tf.constant(embeddings),
        top_k=profile.serving.top_k,
    )
    export.export(module, paths.serving_model_dir, profile.to_json())
    export_vocabularies(profile, tft_output, paths.serving_model_dir)
    tuning = [query_tower(batch).numpy() for batch in eval_examples.batch(scann_index.VALIDATION_QUERIES).take(1)]
    scann_index.build_and_save(
        ids, names, embeddings, paths.serving_model_dir, profile.serving.top_k, tuning[0] if tuning else None
    )
    query_examples = raw_examples(paths.eval, tft_output, query_raw)
    export_onnx(module, paths.serving_model_dir, query_examples, raw_examples(paths.catalog, tft_output, item_raw))
    with tf.io.gfile.GFile(os.path.join(paths.serving_model_dir, HISTORY_ASSET), "w") as f:
        json.dump(history, f, indent=2)
    checkpoints.remove()
    return history
