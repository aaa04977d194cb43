"""Every known user's history as of the end of the data, packed for serving (``assets.extra/histories/``).

A request that carries no history (``{"customer_id": ...}``) still gets personal results: the server
(and ``twotower recommend``) looks the user up here. One folder per history feature ``NAME``:

- ``users.npy``: ``[n_users]`` fixed-width bytes, sorted (a binary search finds a user);
- ``offsets.npy``: ``[n_users + 1]`` int64, user ``u``'s items are rows ``offsets[u]:offsets[u + 1]``;
- ``items.npy``: int32 indices into ``item_ids.npy`` (``[n]`` fixed-width bytes), most recent first;
- ``ages.npy``: float32 days before ``as_of``, aligned with ``items.npy``;
- ``history.json``: ``{"feature", "ages", "max_length", "as_of" (seconds), "as_of_date", "users", "format"}``.

Arrays load memory-mapped, so 1.4M users of 50 items (~0.7 GB) cost what the lookups touch. The ages
are as of the end of the data (``as_of``), not of the request.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import tempfile
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from twotower.export.assets import HISTORIES_DIR

FORMAT = 1


@dataclasses.dataclass(frozen=True)
class UserHistories:
    """One history feature's packed histories (module docstring); ``lookup`` fills request inputs."""

    feature: str
    ages_feature: str
    max_length: int
    as_of: int
    users: np.ndarray
    offsets: np.ndarray
    items: np.ndarray
    item_ids: np.ndarray
    ages: np.ndarray

    def lookup(self, user_ids: Sequence[bytes]) -> Tuple[List[List[bytes]], List[List[float]]]:
        """Returns (item ids, ages) per user, most recent first; empty lists for users it does not know."""
        keys = np.asarray(user_ids, dtype=self.users.dtype) if len(user_ids) else np.zeros(0, self.users.dtype)
        rows = np.searchsorted(self.users, keys)
        ids, ages = [], []
        for key, row in zip(keys, rows, strict=True):
            if row < len(self.users) and self.users[row] == key:
                lo, hi = int(self.offsets[row]), int(self.offsets[row + 1])
                ids.append([bytes(x) for x in self.item_ids[self.items[lo:hi]]])
                ages.append([float(a) for a in self.ages[lo:hi]])
            else:
                ids.append([])
                ages.append([])
        return ids, ages


def pack_histories(
    users: Sequence[bytes], items: Sequence[Sequence[bytes]], ages: Sequence[Sequence[float]]
) -> Dict[str, np.ndarray]:
    """Returns the arrays of the module docstring for per-user item lists and ages (any order of users)."""
    order = np.argsort(np.asarray(users, dtype=object).astype(bytes), kind="stable") if len(users) else []
    sorted_users = np.asarray([users[i] for i in order], dtype=bytes) if len(users) else np.zeros(0, "S1")
    lengths = np.array([len(items[i]) for i in order], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = [x for i in order for x in items[i]]
    item_ids, index = np.unique(np.asarray(flat, dtype=bytes), return_inverse=True) if flat else (np.zeros(0, "S1"), [])
    return {
        "users": sorted_users,
        "offsets": offsets,
        "items": np.asarray(index, dtype=np.int32),
        "item_ids": item_ids,
        "ages": np.asarray([a for i in order for a in ages[i]], dtype=np.float32),
    }


def write_histories(
    model_dir: str,
    feature: str,
    ages_feature: str,
    max_length: int,
    as_of: int,
    arrays: Mapping[str, np.ndarray],
) -> str:
    """Writes one feature's packed histories under ``model_dir/assets.extra/histories/<feature>``; returns it."""
    import tensorflow as tf  # writes through tf.io.gfile (gs:// on Vertex AI); readers need numpy only

    directory = os.path.join(model_dir, HISTORIES_DIR, feature)
    tf.io.gfile.makedirs(directory)
    for name, array in arrays.items():
        with tempfile.TemporaryFile() as local:
            np.save(local, array, allow_pickle=False)
            local.seek(0)
            with tf.io.gfile.GFile(os.path.join(directory, f"{name}.npy"), "wb") as f:
                f.write(local.read())
    info = {
        "feature": feature,
        "ages": ages_feature,
        "max_length": max_length,
        "as_of": int(as_of),
        "as_of_date": datetime.datetime.fromtimestamp(as_of, datetime.timezone.utc).strftime("%Y-%m-%d"),
        "users": int(len(arrays["users"])),
        "format": FORMAT,
    }
    with tf.io.gfile.GFile(os.path.join(directory, "history.json"), "w") as f:
        json.dump(info, f, indent=2)
    return directory


def load_histories(version_dir: str) -> Dict[str, UserHistories]:
    """Returns {history feature: its packed histories} of a model version ({} when it has none); local files.

    Raises ValueError naming the file when its format is not this code's.
    """
    root = os.path.join(version_dir, HISTORIES_DIR)
    out: Dict[str, UserHistories] = {}
    if not os.path.isdir(root):
        return out
    for feature in sorted(os.listdir(root)):
        directory = os.path.join(root, feature)
        with open(os.path.join(directory, "history.json"), encoding="utf-8") as f:
            info = json.load(f)
        if info.get("format") != FORMAT:
            raise ValueError(f"{directory}/history.json: format {info.get('format')}, this code reads {FORMAT}")

        arrays = [
            np.load(os.path.join(directory, f"{name}.npy"), mmap_mode="r", allow_pickle=False)
            for name in ("users", "offsets", "items", "item_ids", "ages")
        ]
        out[info["feature"]] = UserHistories(info["feature"], info["ages"], info["max_length"], info["as_of"], *arrays)
    return out
