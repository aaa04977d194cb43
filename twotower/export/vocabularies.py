"""``vocabularies.json`` and the vocabulary files, written next to a trained model.

``export_vocabularies`` writes, under ``MODEL_DIR/assets.extra/`` (TF Serving
ignores that folder):

- ``vocabularies.json``: ``{"features": {NAME: entry}}`` for the ids and every
  model feature, where an entry has ``kind``, ``source``, ``tower`` (query or
  candidate), ``columns`` (the raw columns it reads), ``output`` (``dtype`` and
  per-example ``shape`` of the transformed feature), the options of its kind,
  and for features the tower embeds: ``table_size`` and ``embedding_dim``.
  Vocabulary features (ids, categorical, text) add ``vocabulary`` (the file,
  relative to ``assets.extra``), ``size`` (entries, OOV excluded) and
  ``oov_buckets``; index ``size`` is the OOV bucket.
- ``vocab/NAME``: Transform's vocabulary file of NAME, one value per line, by index.

``twotower.vocab.load_vocabularies`` reads them back.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft

from twotower.config import Feature, Profile
from twotower.trainer import towers
from twotower.transform.features import ITEM_ID, NUM_OOV_BUCKETS, TEXT_PADDING, USER_ID, feature_columns
from twotower.vocab.vocabularies import EXTRA_DIR, VOCAB_DIR, VOCABULARIES_JSON

# Options of each kind written into its entry.
_KIND_FIELDS = {
    "categorical": ("min_frequency", "max_vocab"),
    "numeric": ("transform", "buckets"),
    "text": ("separator", "max_tokens", "min_frequency", "max_vocab"),
    "dense": ("dim",),
    "time": ("parts", "recency"),
    "cross": ("cross", "hash_buckets"),
    "history": ("max_length", "half_life_days", "item_features", "pooling", "share_embeddings"),
}


def _output(spec: Any) -> Dict[str, Any]:
    return {"dtype": spec.dtype.name, "shape": [int(d) for d in spec.shape]}


def _entry(feature: Feature, profile: Profile, sizes: Dict[str, int], out_spec: Dict[str, Any]) -> Dict[str, Any]:
    """Returns the vocabularies.json entry of one model feature."""
    entry: Dict[str, Any] = {
        "kind": feature.kind,
        "source": feature.source,
        "tower": "candidate" if feature.source in towers.CANDIDATE_SOURCES else "query",
        "columns": feature_columns(feature, profile.data),
        "output": _output(out_spec[feature.name]),
    }
    for field in _KIND_FIELDS[feature.kind]:
        value = getattr(feature, field)
        entry[field] = list(value) if isinstance(value, tuple) else value
    if feature.kind == "numeric" and feature.transform == "zscore":
        del entry["buckets"]
    if feature.kind == "text":
        entry["padding"] = TEXT_PADDING
    spec = towers.tower_input(feature, sizes)
    if spec.size:
        entry["table_size"] = spec.size
    if spec.width:
        entry["embedding_dim"] = spec.width
    return entry


def vocabulary_entries(profile: Profile, tft_output: tft.TFTransformOutput) -> Dict[str, Dict[str, Any]]:
    """Returns the ``features`` mapping of vocabularies.json (module docstring), ids first."""
    sizes = towers.vocab_sizes(profile, tft_output)
    out_spec = tft_output.transformed_feature_spec()
    d = profile.data
    entries = {}
    ids = ((USER_ID, d.user_id, "user", "query"), (ITEM_ID, d.item_id, "item", "candidate"))
    for name, column, source, tower in ids:
        entries[name] = {
            "kind": "id",
            "source": source,
            "tower": tower,
            "columns": [column],
            "output": _output(out_spec[name]),
            "min_frequency": getattr(d, f"{source}_min_frequency"),
            "table_size": sizes[name],
            "embedding_dim": profile.trainer.embedding_dim,
        }
    for feature in profile.model_features:
        entries[feature.name] = _entry(feature, profile, sizes, out_spec)
    for name, entry in entries.items():
        if name in sizes:
            entry.update(vocabulary=f"{VOCAB_DIR}/{name}", size=sizes[name] - NUM_OOV_BUCKETS)
            entry["oov_buckets"] = NUM_OOV_BUCKETS
    return entries


def export_vocabularies(profile: Profile, tft_output: tft.TFTransformOutput, model_dir: str) -> str:
    """Writes vocabularies.json and the vocabulary files under ``model_dir/assets.extra``; returns the json's path."""
    entries = vocabulary_entries(profile, tft_output)
    extra = os.path.join(model_dir, EXTRA_DIR)
    tf.io.gfile.makedirs(os.path.join(extra, VOCAB_DIR))
    for name, entry in entries.items():
        if "vocabulary" in entry:
            source = tft_output.vocabulary_file_by_name(name)
            tf.io.gfile.copy(source, os.path.join(extra, entry["vocabulary"]), overwrite=True)
    path = os.path.join(extra, VOCABULARIES_JSON)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps({"features": entries}, indent=2, sort_keys=True))
    return path
