"""History inputs at serving time: filled from the version's exported histories when a request has none.

A model with a history feature ``NAME`` takes two more query inputs, ``NAME`` (item ids, most
recent first) and ``NAME_age_days`` (their ages in days). In a request to ``twotower serve`` both
are optional, per row: a row without ``NAME`` gets the user's history from the online history
store when the server has one (``serving.online``: the exported histories plus the events since),
else as of the end of the training data (``assets.extra/histories/``), looked up by the user id
input, or none for an unknown user; a row that sends ``NAME`` (an empty list: no history) is used as sent, and without
``NAME_age_days`` its ages are unknown (NaN: each item counts as its position in days). Lists may
differ in length between rows (TF Serving itself wants equal lengths): rows are padded with ""
and NaN. Ids past the feature's ``max_length`` are cut by the model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from twotower.export.assets import PROFILE_ASSET
from twotower.export.histories import UserHistories, load_histories

log = logging.getLogger(__name__)
AGE_SUFFIX = "_age_days"
Columns = Dict[str, list]
Lookup = Callable[[str, Sequence[bytes]], Tuple[List[List[bytes]], List[List[float]]]]


@dataclasses.dataclass(frozen=True)
class HistoryInputs:
    """The history inputs of a version's query signatures and where to fill them from."""

    user_input: str  # the query input holding the user id (the profile's data.user_id)
    features: Mapping[str, str]  # history ids input -> its ages input
    stores: Mapping[str, UserHistories]  # history ids input -> exported histories ({} when the version has none)
    online: Optional[Lookup] = None  # (history ids input, user ids) -> (item ids, ages): the online store's

    @property
    def optional(self) -> FrozenSet[str]:
        """The inputs a request may leave out."""
        return frozenset(self.features) | frozenset(self.features.values())

    def fill(self, columns: Columns) -> Columns:
        """Returns ``columns`` (input -> one value per row, None where a row left it out) with every history
        input filled (module docstring) and padded to one width per batch."""
        out = dict(columns)
        rows = len(next(iter(columns.values())))
        for ids_input, ages_input in self.features.items():
            ids = list(columns.get(ids_input) or [None] * rows)
            ages = list(columns.get(ages_input) or [None] * rows)
            missing = [r for r in range(rows) if ids[r] is None]
            store = self.stores.get(ids_input)
            if missing and (store is not None or self.online is not None):
                users = [_bytes(columns[self.user_input][r]) for r in missing]
                if self.online is not None:
                    found_ids, found_ages = self.online(ids_input, users)
                else:
                    found_ids, found_ages = store.lookup(users)
                for r, item_ids, item_ages in zip(missing, found_ids, found_ages, strict=True):
                    ids[r], ages[r] = item_ids, item_ages
            ids = [[] if v is None else list(v) for v in ids]
            ages = [[float("nan")] * len(i) if a is None else list(a) for i, a in zip(ids, ages, strict=True)]
            width = max([len(v) for v in ids] + [1])
            out[ids_input] = [v + [b""] * (width - len(v)) for v in ids]
            out[ages_input] = [(a + [float("nan")] * width)[:width] for a in ages]
        return out


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def history_inputs(version_dir: str, query_inputs: Sequence[str]) -> Optional[HistoryInputs]:
    """Returns the version's history inputs (None without a history feature among ``query_inputs``)."""
    path = os.path.join(version_dir, PROFILE_ASSET)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        profile = json.load(f)
    names = [f["name"] for f in profile["features"] if f["kind"] == "history" and f.get("model", True)]
    features = {n: n + AGE_SUFFIX for n in names if n in query_inputs and n + AGE_SUFFIX in query_inputs}
    if not features:
        return None
    stores: Dict[str, UserHistories] = {}
    try:
        stores = {n: s for n, s in load_histories(version_dir).items() if n in features}
    except (OSError, ValueError) as e:  # a version still serves; requests without a history get none
        log.warning("%s: exported histories not loaded (%s); rows without a history get none", version_dir, e)
    return HistoryInputs(profile["data"]["user_id"], features, stores)


def merge_history(
    ids: np.ndarray, names: np.ndarray, scores: np.ndarray, out: Mapping[str, Any], index: Any, k: int
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns the top ``k`` of an index search merged with the history items' served scores, per row.

    ``ids``/``names``/``scores``: ``[rows, k]`` from the index; ``out``: ``query_embedding``'s outputs, whose
    ``history_item_ids``/``history_scores`` ``[rows, H]`` replace an item's score (or add the item).
    """
    name_of = getattr(index, "name_of", None) or dict(zip(index.ids, index.names, strict=True))
    history_ids, history_scores = np.asarray(out["history_item_ids"]), np.asarray(out["history_scores"])
    rows = []
    for r in range(len(ids)):
        best = {bytes(i): (float(s), n) for i, n, s in zip(ids[r], names[r], scores[r], strict=True)}
        for item, score in zip(history_ids[r], history_scores[r], strict=True):
            if item:
                best[bytes(item)] = (float(score), best.get(bytes(item), (0.0, name_of.get(bytes(item), b"")))[1])
        rows.append(sorted(best.items(), key=lambda kv: -kv[1][0])[:k])
    return (
        np.array([[i for i, _ in row] for row in rows], dtype=object),
        np.array([[v[1] for _, v in row] for row in rows], dtype=object),
        np.array([[v[0] for _, v in row] for row in rows], dtype=np.float32),
    )
