"""Evaluation of an exported retrieval SavedModel on the eval split.

Queries are built from each eval user's raw features exactly as a serving
client would send them, and answered by the model's ``serving_default``
signature, so the evaluation covers the whole served path.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from typing import Any, Dict, List, Sequence, Set  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from twotower.components.evaluator import baselines, metrics  # noqa: E402
from twotower.config import Profile  # noqa: E402
from twotower.trainer import data  # noqa: E402
from twotower.transform.features import raw_inputs, to_dense  # noqa: E402

QUERY_BATCH = 1024


def _column_spec(signature: Any, extra: Sequence[str]) -> Dict[str, tf.io.VarLenFeature]:
    """Parses every signature input plus ``extra`` as optional (VarLen) features."""
    specs = {name: spec.dtype for name, spec in signature.structured_input_signature[1].items()}
    specs.update({name: tf.string for name in extra})
    return {name: tf.io.VarLenFeature(dtype) for name, dtype in specs.items()}


def read_columns(patterns: Sequence[str], spec: Dict[str, tf.io.VarLenFeature]) -> Dict[str, np.ndarray]:
    """Returns every feature of ``spec`` as a ``[n]`` numpy array ('' / NaN where missing)."""
    chunks: Dict[str, List[np.ndarray]] = {name: [] for name in spec}
    for batch in data.raw_dataset(patterns, spec):
        for name in spec:
            chunks[name].append(to_dense(batch[name]).numpy())
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def ease_lists(
    train_users: np.ndarray,
    train_items: np.ndarray,
    users: Sequence[bytes],
    catalogue: Sequence[bytes],
    l2: float,
    k: int,
    exclude_seen: bool,
    fallback: Sequence[bytes],
) -> List[List[bytes]]:
    """Returns EASE's top-``k`` item ids per user; users without history get ``fallback`` (popularity)."""
    index = {item: i for i, item in enumerate(catalogue)}
    known = np.array([item in index for item in train_items], dtype=bool)
    user_ids = {u: i for i, u in enumerate(sorted(set(train_users[known])))}
    pairs_u = np.array([user_ids[u] for u in train_users[known]], dtype=np.int64)
    pairs_i = np.array([index[i] for i in train_items[known]], dtype=np.int64)
    weights = baselines.ease_weights(pairs_u, pairs_i, len(catalogue), l2)
    history: Dict[bytes, List[int]] = {}
    for u, i in zip(pairs_u, pairs_i, strict=True):
        history.setdefault(u, []).append(i)
    by_user = {u: np.unique(history.get(j, [])) for u, j in user_ids.items()}
    warm = [u for u in users if len(by_user.get(u, ())) > 0]
    top = baselines.ease_recommend([by_user[u] for u in warm], weights, min(k, len(catalogue)), exclude_seen)
    lists = {u: [catalogue[i] for i in row] for u, row in zip(warm, top, strict=True)}
    return [lists.get(u, list(fallback)) for u in users]


def evaluate(
    profile: Profile,
    model_dir: str,
    train_patterns: Sequence[str],
    eval_patterns: Sequence[str],
    catalog_patterns: Sequence[str],
) -> Dict[str, Any]:
    """Returns metrics.json content: model and baseline metrics (all users and cold-start), counts, blessing.

    Baselines on the same users and split: popularity (training counts) and EASE
    (closed form, ``evaluator.ease_l2``; skipped above ``baselines.MAX_EASE_ITEMS``).
    """
    d, ev = profile.data, profile.evaluator
    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    query_names, _ = raw_inputs(profile)
    eval_cols = read_columns(eval_patterns, _column_spec(signature, [d.item_id]))
    train_cols = read_columns(train_patterns, {n: tf.io.VarLenFeature(tf.string) for n in (d.user_id, d.item_id)})
    catalogue = sorted(set(read_columns(catalog_patterns, {d.item_id: tf.io.VarLenFeature(tf.string)})[d.item_id]))

    truth: Dict[bytes, Set[bytes]] = {}
    first_row: Dict[bytes, int] = {}
    for row, (user, item) in enumerate(zip(eval_cols[d.user_id], eval_cols[d.item_id], strict=True)):
        truth.setdefault(user, set()).add(item)
        first_row.setdefault(user, row)
    users = sorted(truth)
    rows = np.array([first_row[u] for u in users], dtype=np.int64)
    seen: Dict[bytes, Set[bytes]] = {}
    if ev.exclude_seen:
        for user, item in zip(train_cols[d.user_id], train_cols[d.item_id], strict=True):
            seen.setdefault(user, set()).add(item)

    k_max = max(ev.ks)
    model_recs: List[List[bytes]] = []
    for start in range(0, len(users), QUERY_BATCH):
        batch = rows[start : start + QUERY_BATCH]
        inputs = {name: tf.constant(eval_cols[name][batch]) for name in query_names}
        model_recs.extend([list(r) for r in signature(**inputs)["item_ids"].numpy()])
    ranking = metrics.popularity_ranking(train_cols[d.item_id])
    pop_recs = [ranking[: k_max + len(seen.get(u, ()))] for u in users]
    model_recs = [metrics.exclude(r, seen.get(u, set()), k_max) for r, u in zip(model_recs, users, strict=True)]
    pop_recs = [metrics.exclude(r, seen.get(u, set()), k_max) for r, u in zip(pop_recs, users, strict=True)]

    lists = {"twotower": model_recs, "popularity": pop_recs}
    if ev.ease_l2 > 0 and baselines.ease_feasible(len(catalogue)):
        lists["ease"] = ease_lists(
            train_cols[d.user_id],
            train_cols[d.item_id],
            users,
            catalogue,
            ev.ease_l2,
            k_max,
            ev.exclude_seen,
            fallback=ranking[:k_max],  # a user without history has nothing to exclude
        )
    truth_list = [truth[u] for u in users]
    tables = {name: metrics.metric_table(recs, truth_list, ev.ks, len(catalogue)) for name, recs in lists.items()}
    trained = set(train_cols[d.user_id])
    cold = [i for i, u in enumerate(users) if u not in trained]
    cold_tables = {}
    if cold:
        cold_truth = [truth_list[i] for i in cold]
        for name, recs in lists.items():
            cold_tables[name] = metrics.metric_table([recs[i] for i in cold], cold_truth, ev.ks, len(catalogue))
    key = f"recall@{ev.blessing_k}"
    model_table, pop_table = tables["twotower"], tables["popularity"]
    blessed, reason = metrics.bless(model_table[key], pop_table[key], ev.min_recall, ev.min_lift_over_popularity)
    return {
        "models": tables,
        "cold_start": {"users": len(cold), "models": cold_tables},
        "catalogue_size": len(catalogue),
        "eval_users": len(users),
        "eval_interactions": int(len(eval_cols[d.item_id])),
        "train_interactions": int(len(train_cols[d.item_id])),
        "catalogue_exclude_seen": ev.exclude_seen,
        "blessing": {"metric": key, "blessed": blessed, "reason": reason},
    }
