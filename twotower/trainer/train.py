"""Training: fit the two-tower model, embed the catalogue, export the SavedModel.

``train`` is what the TFX run_fn calls; tests and notebooks call it the same way.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses  # noqa: E402
import logging  # noqa: E402
from typing import Dict, List, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from twotower.config import Profile  # noqa: E402
from twotower.trainer import data, export, model, towers  # noqa: E402
from twotower.transform.features import ITEM_ID, NUM_OOV_BUCKETS, raw_inputs, to_dense  # noqa: E402

SHUFFLE_BUFFER = 100_000


@dataclasses.dataclass(frozen=True)
class Paths:
    """Inputs and outputs of one training run (file patterns and directories)."""

    train: Sequence[str]
    eval: Sequence[str]
    catalog: Sequence[str]
    transform_graph: str
    serving_model_dir: str
    log_dir: str


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


def train(profile: Profile, paths: Paths) -> Dict[str, List[float]]:
    """Trains, exports to ``paths.serving_model_dir`` and returns the Keras history (loss per epoch)."""
    t = profile.trainer
    tft_output = tft.TFTransformOutput(paths.transform_graph)
    query_raw, item_raw = raw_inputs(profile)
    keep = list(tft_output.transformed_feature_spec())

    def dataset(patterns: Sequence[str]) -> tf.data.Dataset:
        return data.transformed_dataset(patterns, tft_output, query_raw + item_raw, keep).cache()

    train_examples = dataset(paths.train)
    eval_ds = dataset(paths.eval).batch(t.batch_size)
    n_items = tft_output.vocabulary_size_by_name(ITEM_ID) + NUM_OOV_BUCKETS
    probability = None
    if t.logq_strength > 0:
        probability = model.sampling_probability(item_counts(train_examples, n_items), t.logq_strength)
    train_ds = train_examples.shuffle(SHUFFLE_BUFFER, seed=0).batch(t.batch_size).prefetch(2)
    query_tower, candidate_tower = towers.build_towers(profile, tft_output)
    two_tower = model.TwoTowerModel(query_tower, candidate_tower, t.temperature, probability)
    two_tower.compile(optimizer=tf.keras.optimizers.Adagrad(t.learning_rate))
    history = two_tower.fit(
        train_ds,
        validation_data=eval_ds,
        epochs=t.epochs,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=paths.log_dir, update_freq="epoch")],
        verbose=2,
    )
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
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}
