"""Packaging a fitted model: everything built once after training, under the model directory.

``package`` writes, after ``trainer.train.fit``:

- the SavedModel with its signatures (``export.signatures``) and ``assets.extra/profile.json``;
- ``assets.extra/vocabularies.json`` and ``vocab/`` (``export.vocabularies``);
- ``assets.extra/histories/``: every user's history at the end of the data (``export_histories``, stored by
  ``export.histories``);
- the catalogue's retrieval index, tuned on eval queries, and the ScaNN SavedModel (``export.index``);
- the ONNX towers, checked against TensorFlow on real examples (``export.onnx_export``);
- ``assets.extra/history.json``, the training history.

``train_and_export`` is fit, then package: what the TFX run_fn calls, and tests and notebooks too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from typing import Any, Dict, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from twotower.config import Profile
from twotower.export import signatures
from twotower.export.assets import HISTORY_ASSET
from twotower.export.histories import pack_histories, write_histories
from twotower.export.index import build_and_save
from twotower.export.onnx_export import export_onnx, raw_examples
from twotower.export.scann_index import VALIDATION_QUERIES
from twotower.export.vocabularies import export_vocabularies
from twotower.trainer import data
from twotower.trainer.strategy import choose_strategy, current_task
from twotower.trainer.train import Fitted, Paths, fit
from twotower.transform.features import ITEM_ID, NUM_OOV_BUCKETS, history_ages, raw_inputs, to_dense


def embed_catalog(
    patterns: Sequence[str],
    tft_output: tft.TFTransformOutput,
    candidate_tower: tf.keras.Model,
    profile: Profile,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Returns (ids ``[n]`` bytes, names ``[n]`` bytes, embeddings ``[n, dim]`` float32, rows ``[n_vocab + 1]``)
    of the catalogue; ``rows[i]`` is the catalogue row of item index ``i`` (-1: the OOV bucket, or not listed)."""
    d = profile.data
    _, item_raw = raw_inputs(profile)
    spec = {n: tft_output.raw_feature_spec()[n] for n in item_raw + [d.item_name]}
    spec = data.optional_spec(spec, required=[d.item_id])  # an empty name or feature is missing, not an error
    layer = tft_output.transform_features_layer()
    ids, names, embeddings, indices = [], [], [], []
    for raw in data.raw_dataset(patterns, spec):
        ids.append(to_dense(raw[d.item_id]).numpy())
        names.append(to_dense(raw[d.item_name]).numpy())
        transformed = layer({n: raw[n] for n in item_raw})
        indices.append(transformed[ITEM_ID].numpy())
        embeddings.append(candidate_tower(transformed).numpy())
    n_vocab = tft_output.vocabulary_size_by_name(ITEM_ID)
    index = np.concatenate(indices)
    rows = np.full(n_vocab + NUM_OOV_BUCKETS, -1, dtype=np.int64)
    known = index < n_vocab
    rows[index[known]] = np.flatnonzero(known)
    return np.concatenate(ids), np.concatenate(names), np.concatenate(embeddings), rows


def package(profile: Profile, paths: Paths, fitted: Fitted, with_index: bool = True, with_onnx: bool = True) -> None:
    """Writes the SavedModel and every build-time asset (module docstring) to ``paths.serving_model_dir``.

    ``with_index`` / ``with_onnx`` False skip the retrieval index and the ONNX towers (benchmark sweeps,
    which only evaluate the SavedModel).
    """
    model_dir, tft_output = paths.serving_model_dir, fitted.tft_output
    if profile.trainer.mixed_precision:  # trained in mixed precision; served, and converted to ONNX, in float32
        fitted.query_tower.compute_in_float32()
        fitted.candidate_tower.compute_in_float32()
    query_raw, item_raw = raw_inputs(profile)
    ids, names, embeddings, rows = embed_catalog(paths.catalog, tft_output, fitted.candidate_tower, profile)
    logging.info("Embedded %d catalogue items; exporting to %s", len(ids), model_dir)
    module = signatures.RetrievalModule(
        tft_output,
        fitted.query_tower,
        fitted.candidate_tower,
        query_raw,
        item_raw,
        item_ids=tf.constant(ids),
        item_names=tf.constant(names),
        item_embeddings=tf.constant(embeddings),
        top_k=profile.serving.top_k,
        histories={f.name: history_ages(f) for f in profile.model_features if f.kind == "history"},
        item_rows=tf.constant(rows),
        repeat_scale=float(fitted.model.temperature),
    )
    signatures.export(module, model_dir, profile.to_json())
    export_vocabularies(profile, tft_output, model_dir)
    export_histories(profile, paths.histories, model_dir)
    if with_index:
        tuning = [fitted.query_tower(b).numpy() for b in fitted.eval_examples.batch(VALIDATION_QUERIES).take(1)]
        build_and_save(ids, names, embeddings, model_dir, profile.serving.top_k, tuning[0] if tuning else None)
    if with_onnx:
        lists = [n for ids, ages in module.histories.items() for n in (ids, ages)]
        query_examples = raw_examples(paths.eval, tft_output, query_raw, lists=lists)
        export_onnx(module, model_dir, query_examples, raw_examples(paths.catalog, tft_output, item_raw))
    with tf.io.gfile.GFile(os.path.join(model_dir, HISTORY_ASSET), "w") as f:
        json.dump(fitted.history, f, indent=2)


def train_and_export(profile: Profile, paths: Paths) -> Dict[str, Any]:
    """Fits (``trainer.train.fit``), packages to ``paths.serving_model_dir``, returns the training history.

    The checkpoints are removed only once the export is complete, so a crash while packaging resumes
    from the end of training.

    With several workers (``TF_CONFIG``) every worker calls this: the strategy is made first, before
    any TensorFlow op; the chief writes as above; the others restore from the chief's checkpoints,
    train in step with it, write checkpoints, logs and the SavedModel (no index or ONNX) to a
    temporary directory, and delete it.
    """
    choose_strategy(profile.trainer.worker_start_timeout_s)
    if current_task().is_chief:
        fitted = fit(profile, paths)
        package(profile, paths, fitted)
        fitted.checkpoints.remove()
        return fitted.history
    with tempfile.TemporaryDirectory(prefix="twotower-worker-") as temp:
        worker_paths = dataclasses.replace(
            paths,
            serving_model_dir=os.path.join(temp, "model"),
            log_dir=os.path.join(temp, "logs"),
            checkpoint_dir=paths.checkpoint_dir or os.path.join(paths.log_dir, "checkpoints"),
            checkpoint_write_dir=os.path.join(temp, "checkpoints"),
        )
        fitted = fit(profile, worker_paths)
        package(profile, worker_paths, fitted, with_index=False, with_onnx=False)
        return fitted.history


def export_histories(profile: Profile, patterns: Sequence[str], model_dir: str) -> Dict[str, str]:
    """Packs the ``histories`` split (``patterns``) of every history model feature under ``model_dir``.

    Returns {feature: directory written}; {} when the profile has no history feature or no files match.
    """
    features = [f for f in profile.model_features if f.kind == "history"]
    if not features or not patterns or not [p for p in patterns if tf.io.gfile.glob(p)]:
        return {}
    d = profile.data
    spec = {d.user_id: tf.io.VarLenFeature(tf.string), d.timestamp: tf.io.VarLenFeature(tf.int64)}
    for f in features:
        spec.update({f.name: tf.io.VarLenFeature(tf.string), history_ages(f): tf.io.VarLenFeature(tf.float32)})
    columns: Dict[str, list] = {name: [] for name in spec}
    for batch in data.raw_dataset(patterns, spec):
        for name in spec:
            columns[name] += tf.RaggedTensor.from_sparse(batch[name]).to_list()
    users = [row[0] for row in columns[d.user_id]]
    as_of = max((row[0] for row in columns[d.timestamp] if row), default=0)
    written = {}
    for f in features:
        arrays = pack_histories(users, columns[f.name], columns[history_ages(f)])
        written[f.name] = write_histories(model_dir, f.name, history_ages(f), f.max_length, as_of, arrays)
    return written
