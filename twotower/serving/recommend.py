"""Recommendations from a pushed model, the way a TF Serving client would ask.

The pushed SavedModel carries the profile it was trained with in
``assets.extra/profile.json``; user features come from the profile's users CSV
when a data directory is given, otherwise they are sent as missing; a history
feature gets the user's history at the end of the training data (``serving.histories``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from typing import Dict, List, Mapping, Optional, Sequence

import tensorflow as tf

from twotower.config import Profile, from_dict
from twotower.export.assets import PROFILE_ASSET
from twotower.serving.histories import history_inputs


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """One recommended item."""

    item_id: str
    name: str
    score: float


def latest_version(serving_dir: str, model_name: Optional[str] = None) -> str:
    """Returns ``serving_dir/<model>/<highest numeric version>``; one model unless named."""
    if not os.path.isdir(serving_dir):
        raise FileNotFoundError(f"{serving_dir}: serving directory not found (run `twotower run` first)")
    dirs = sorted(m for m in os.listdir(serving_dir) if m[:1] != "." and os.path.isdir(os.path.join(serving_dir, m)))
    models = [model_name] if model_name else dirs  # not models.config (tf_serving_config), not .events (online)
    if len(models) != 1:
        raise ValueError(f"{serving_dir}: holds models {models}; pick one with --model-name")
    model_dir = os.path.join(serving_dir, models[0])
    versions = [int(v) for v in os.listdir(model_dir) if v.isdigit()] if os.path.isdir(model_dir) else []
    if not versions:
        raise FileNotFoundError(f"{model_dir}: no numeric version directories (nothing pushed?)")
    return os.path.join(model_dir, str(max(versions)))


def load_profile_of(version_dir: str) -> Profile:
    """Returns the profile stored with a pushed model version."""
    with open(os.path.join(version_dir, PROFILE_ASSET), encoding="utf-8") as f:
        return from_dict(json.load(f), where=os.path.join(version_dir, PROFILE_ASSET))


def user_row(data_dir: str, profile: Profile, user_id: str) -> Dict[str, str]:
    """Returns the users-CSV row of ``user_id`` as {column: cell}; empty when not found."""
    path = os.path.join(data_dir, profile.data.users)
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get(profile.data.user_id) == user_id:
                return row
    return {}


def query_inputs(
    signature: tf.types.experimental.ConcreteFunction, values: Sequence[Mapping[str, str]]
) -> Dict[str, tf.Tensor]:
    """Returns ``[batch]`` input tensors for ``signature`` from string cells; '' means missing (0 for integers)."""
    inputs = {}
    for name, spec in signature.structured_input_signature[1].items():
        if spec.shape.rank == 2:  # a history list: filled by the caller (serving.histories)
            continue
        cells = [row.get(name, "") for row in values]
        if spec.dtype == tf.string:
            inputs[name] = tf.constant(cells, tf.string)
        elif spec.dtype.is_integer:
            inputs[name] = tf.constant([int(float(c)) if c != "" else 0 for c in cells], spec.dtype)
        else:
            inputs[name] = tf.constant([float(c) if c != "" else float("nan") for c in cells], spec.dtype)
    return inputs


def recommend(
    serving_dir: str,
    user_id: str,
    k: int = 10,
    data_dir: Optional[str] = None,
    model_name: Optional[str] = None,
) -> List[Recommendation]:
    """Returns the top ``k`` items the latest pushed version recommends for ``user_id``."""
    version_dir = latest_version(serving_dir, model_name)
    profile = load_profile_of(version_dir)
    row = user_row(data_dir, profile, user_id) if data_dir else {}
    row = {**row, profile.data.user_id: user_id}
    row.setdefault(profile.data.timestamp, str(int(time.time())))  # time features read the request's time
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    inputs = query_inputs(signature, [row])
    histories = history_inputs(version_dir, list(signature.structured_input_signature[1]))
    if histories is not None:  # the user's history at the end of the training data
        columns = histories.fill({profile.data.user_id: [user_id.encode()]})
        inputs.update({name: tf.constant(columns[name]) for name in histories.optional})
    out = signature(**inputs)
    ids, names, scores = (out[key].numpy()[0][:k] for key in ("item_ids", "item_names", "scores"))
    return [Recommendation(i.decode(), n.decode(), float(s)) for i, n, s in zip(ids, names, scores, strict=True)]


def sample_users(data_dir: str, profile: Profile, n: int) -> List[str]:
    """Returns the ``n`` users with the most interactions in the data (ties by id), for demos."""
    counts: Dict[str, int] = {}
    with open(os.path.join(data_dir, profile.data.interactions), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            user = row[profile.data.user_id]
            counts[user] = counts.get(user, 0) + 1
    return [user for user, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
