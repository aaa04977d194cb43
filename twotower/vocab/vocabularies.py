"""The vocabularies exported with a model (``export.vocabularies``) and lookups over them.

``load_vocabularies(model_dir)`` reads ``MODEL_DIR/assets.extra/vocabularies.json``
and the vocabulary files under ``assets.extra/vocab/``; ``Vocabularies.index``
gives the index Transform gives a value (the OOV bucket for unseen values), as a
client computing transformed inputs for an ONNX tower needs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List

import tensorflow as tf

EXTRA_DIR = "assets.extra"
VOCABULARIES_JSON = "vocabularies.json"
VOCAB_DIR = "vocab"


@dataclasses.dataclass
class Vocabularies:
    """The exported vocabularies of one model directory: metadata, values and value -> index lookups."""

    model_dir: str
    features: Dict[str, Dict[str, Any]]
    _values: Dict[str, List[str]] = dataclasses.field(default_factory=dict, repr=False)
    _indices: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict, repr=False)

    def values(self, name: str) -> List[str]:
        """Returns the vocabulary of feature ``name``, by index (read once)."""
        entry = self.features.get(name)
        if entry is None or "vocabulary" not in entry:
            have = sorted(n for n, e in self.features.items() if "vocabulary" in e)
            raise KeyError(f"{self.model_dir}: feature '{name}' has no vocabulary; these do: {have}")
        if name not in self._values:
            with tf.io.gfile.GFile(os.path.join(self.model_dir, EXTRA_DIR, entry["vocabulary"]), "rb") as f:
                self._values[name] = [line.rstrip(b"\n").decode("utf-8") for line in f]
        return self._values[name]

    def index(self, name: str, value: str) -> int:
        """Returns the index Transform gives ``value`` of feature ``name``; unseen values get the OOV bucket (size)."""
        if name not in self._indices:
            self._indices[name] = {v: i for i, v in enumerate(self.values(name))}
        lookup = self._indices[name]
        return lookup.get(value, len(lookup))


def load_vocabularies(model_dir: str) -> Vocabularies:
    """Returns the vocabularies exported with the model in ``model_dir``; raises FileNotFoundError naming the file."""
    path = os.path.join(model_dir, EXTRA_DIR, VOCABULARIES_JSON)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: not found (the model was exported without export_vocabularies)")
    with tf.io.gfile.GFile(path) as f:
        return Vocabularies(model_dir, json.load(f)["features"])
