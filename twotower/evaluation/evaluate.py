"""Evaluation of an exported retrieval SavedModel on the held-out split.

Queries are built from each held-out user's raw features exactly as a serving
client would send them and embedded by the model's ``query_embedding``
signature; they are ranked against the model's own catalogue (what
``serving_default`` ranks), deep enough that excluding a user's seen items
never leaves a list short, since ``serving_default`` stops at
``serving.top_k``. The first batch is checked against ``serving_default``'s
scores, so the served path is covered. The same data,
read once, also scores the popularity and EASE baselines and, when there is
one, the last blessed model (any earlier export: its signature takes raw
features too).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import tensorflow as tf

from twotower.config import Profile
from twotower.evaluation import baselines, metrics
from twotower.trainer import data
from twotower.transform.features import to_dense

QUERY_BATCH = 1024
LAST_BLESSED = "last_blessed"  # the last blessed model's name in recall curves and plots
# What loading or querying an earlier export may raise when it cannot be compared; anything else propagates.
BASELINE_ERRORS = (OSError, ValueError, KeyError, TypeError, tf.errors.OpError)


def input_dtypes(signature: Any) -> Dict[str, tf.DType]:
    """Returns {input name: dtype} of a serving signature (raw query features, each ``[batch]``)."""
    return {name: spec.dtype for name, spec in signature.structured_input_signature[1].items()}


def check_comparable(baseline_inputs: Mapping[str, tf.DType], current_inputs: Mapping[str, tf.DType]) -> None:
    """Raises ValueError unless every input of the last blessed model is an input of the current one, same dtype.

    The held-out data is read once, with the current model's inputs; an earlier model that needs another
    feature (or the same feature with another type) cannot be scored on it.
    """
    for name, dtype in sorted(baseline_inputs.items()):
        if name not in current_inputs:
            raise ValueError(
                f"the last blessed model takes input '{name}', which the current model does not "
                f"(the profile's features changed since): inputs {sorted(baseline_inputs)} vs {sorted(current_inputs)}"
            )
        if current_inputs[name] != dtype:
            current = current_inputs[name].name
            raise ValueError(f"the last blessed model takes '{name}' as {dtype.name}, the current model as {current}")


def list_inputs(signature: Any) -> List[str]:
    """Returns the inputs of a serving signature that take a list per example (``[batch, None]``: histories)."""
    return [name for name, spec in signature.structured_input_signature[1].items() if spec.shape.rank == 2]


def read_columns(
    patterns: Sequence[str], spec: Dict[str, tf.io.VarLenFeature], lists: Sequence[str] = ()
) -> Dict[str, np.ndarray]:
    """Returns every feature of ``spec`` as a ``[n]`` numpy array ('' / NaN where missing).

    A feature of ``lists`` is an object array of ``[n]`` numpy arrays, each example's values.
    """
    chunks: Dict[str, List[np.ndarray]] = {name: [] for name in spec}
    for batch in data.raw_dataset(patterns, spec):
        for name in spec:
            if name in lists:
                rows = tf.RaggedTensor.from_sparse(batch[name])
                values = np.empty(rows.shape[0], dtype=object)
                values[:] = [np.asarray(r) for r in rows.to_list()]
                chunks[name].append(values)
            else:
                chunks[name].append(to_dense(batch[name]).numpy())
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def padded(rows: np.ndarray) -> np.ndarray:
    """Returns an object array of per-example arrays as one ``[n, width]`` array, padded with b'' or NaN."""
    width = max([len(r) for r in rows] + [1])
    strings = any(len(r) and isinstance(r[0], bytes) for r in rows)
    out = np.full((len(rows), width), b"" if strings else np.nan, dtype=object if strings else np.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """The held-out users, what they interacted with, and their training history."""

    users: List[bytes]  # sorted
    truth: List[Set[bytes]]  # per user: held-out items
    queries: Dict[str, np.ndarray]  # per input: [users] values from each user's first held-out row
    seen: Dict[bytes, Set[bytes]]  # training items per user; empty unless evaluator.exclude_seen
    train_users: np.ndarray  # [train interactions] user ids
    train_items: np.ndarray  # [train interactions] item ids
    catalogue: List[bytes]  # sorted item ids of the catalog split
    interactions: int  # held-out interactions


def read_held_out(
    profile: Profile,
    inputs: Mapping[str, tf.DType],
    train_patterns: Sequence[str],
    eval_patterns: Sequence[str],
    catalog_patterns: Sequence[str],
    lists: Sequence[str] = (),
) -> HeldOut:
    """Reads the held-out, training and catalog examples once; ``inputs`` are the query columns to keep.

    ``lists``: the inputs that take a list per example (histories), kept as per-example arrays.
    """
    d = profile.data
    spec = {name: tf.io.VarLenFeature(dtype) for name, dtype in inputs.items()}
    spec.update({name: tf.io.VarLenFeature(tf.string) for name in (d.user_id, d.item_id)})
    eval_cols = read_columns(eval_patterns, spec, lists)
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
    if profile.evaluator.exclude_seen:
        for user, item in zip(train_cols[d.user_id], train_cols[d.item_id], strict=True):
            seen.setdefault(user, set()).add(item)
    return HeldOut(
        users=users,
        truth=[truth[u] for u in users],
        queries={name: eval_cols[name][rows] for name in inputs},
        seen=seen,
        train_users=train_cols[d.user_id],
        train_items=train_cols[d.item_id],
        catalogue=catalogue,
        interactions=int(len(eval_cols[d.item_id])),
    )


def model_lists(loaded: Any, held_out: HeldOut, k: int, check_served: bool = False) -> List[List[bytes]]:
    """Returns each user's top-``k`` item ids over the whole catalogue of the ``loaded`` SavedModel, seen excluded.

    Ranks ``k`` + (most seen items in the batch) deep, ``QUERY_BATCH`` users at a time. ``check_served``
    compares the first batch's top scores with ``serving_default``'s and raises RuntimeError if they differ.
    """
    query = loaded.signatures.get("query_with_history") or loaded.signatures["query_embedding"]
    names, lists = list(input_dtypes(query)), list_inputs(query)
    item_ids, embeddings = loaded.item_ids.numpy(), loaded.item_embeddings
    row_of = {item: row for row, item in enumerate(item_ids)}
    recs: List[List[bytes]] = []
    for start in range(0, len(held_out.users), QUERY_BATCH):
        users = held_out.users[start : start + QUERY_BATCH]
        inputs = {name: held_out.queries[name][start : start + QUERY_BATCH] for name in names}
        inputs = {name: tf.constant(padded(v) if name in lists else v) for name, v in inputs.items()}
        depth = min(len(item_ids), k + max(len(held_out.seen.get(u, ())) for u in users))
        out = query(**inputs)
        scores = tf.matmul(out["embedding"], embeddings, transpose_b=True).numpy()
        if "history_scores" in out:  # the user's own earlier items, scored as served (export.repeats)
            with_history_scores(scores, out["history_item_ids"].numpy(), out["history_scores"].numpy(), row_of)
        top = tf.math.top_k(tf.constant(scores), depth)
        if check_served and start == 0:
            served = loaded.signatures["serving_default"](**inputs)["scores"].numpy()
            width = min(served.shape[1], depth)
            if not np.allclose(served[:, :width], top.values.numpy()[:, :width], atol=1e-4):
                raise RuntimeError("serving_default ranks the catalogue differently from its query_embedding")
        for user, row in zip(users, top.indices.numpy(), strict=True):
            recs.append(metrics.exclude(list(item_ids[row]), held_out.seen.get(user, set()), k))
    return recs


def with_history_scores(
    scores: np.ndarray, history_ids: np.ndarray, history_scores: np.ndarray, row_of: Mapping[bytes, int]
) -> None:
    """Sets, in place, each history item's column of ``scores`` ``[users, n]`` to its served history score."""
    for user, (ids, values) in enumerate(zip(history_ids, history_scores, strict=True)):
        for item, value in zip(ids, values, strict=True):
            if item:
                scores[user, row_of[item]] = value


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


def _last_blessed_lists(
    baseline_dir: str, current_inputs: Mapping[str, tf.DType], held_out: HeldOut, k: int, report: Dict[str, Any]
) -> Optional[List[List[bytes]]]:
    """Returns the last blessed model's lists on ``held_out``, or None with ``report['error']`` set.

    Items no longer in the catalogue are dropped from its lists (they could not be served) and counted in
    ``report['items_not_in_catalogue']``.
    """
    try:
        loaded = tf.saved_model.load(baseline_dir)
        check_comparable(input_dtypes(loaded.signatures["serving_default"]), current_inputs)
        served = model_lists(loaded, held_out, len(held_out.catalogue))
    except BASELINE_ERRORS as e:
        report["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
        logging.warning("RetrievalEvaluator: last blessed model %s not compared: %s", baseline_dir, report["error"])
        return None
    live = set(held_out.catalogue)
    report["items_not_in_catalogue"] = sum(item not in live for recs in served for item in recs[:k])
    return [[item for item in recs if item in live][:k] for recs in served]


def baseline_lists(profile: Profile, held_out: HeldOut, k: int) -> Dict[str, List[List[bytes]]]:
    """Returns {baseline name: each held-out user's top-``k`` item ids}: popularity and, when feasible, EASE."""
    ev = profile.evaluator
    ranking = metrics.popularity_ranking(held_out.train_items)
    seen, users = held_out.seen, held_out.users
    lists = {"popularity": [metrics.exclude(ranking[: k + len(seen.get(u, ()))], seen.get(u, set()), k) for u in users]}
    if ev.ease_l2 > 0 and baselines.ease_feasible(len(held_out.catalogue)):
        lists["ease"] = ease_lists(
            held_out.train_users,
            held_out.train_items,
            users,
            held_out.catalogue,
            ev.ease_l2,
            k,
            ev.exclude_seen,
            fallback=ranking[:k],  # a user without history has nothing to exclude
        )
    return lists


def cold_start_tables(
    lists: Mapping[str, List[List[bytes]]], held_out: HeldOut, ks: Sequence[int]
) -> Tuple[int, Dict[str, Dict[str, float]]]:
    """Returns (users without training interactions, {model: metric table on those users}; {} when none)."""
    trained = set(held_out.train_users)
    cold = [i for i, u in enumerate(held_out.users) if u not in trained]
    if not cold:
        return 0, {}
    truth = [held_out.truth[i] for i in cold]
    n = len(held_out.catalogue)
    return len(cold), {
        name: metrics.metric_table([recs[i] for i in cold], truth, ks, n) for name, recs in lists.items()
    }


def evaluate(
    profile: Profile,
    model_dir: str,
    train_patterns: Sequence[str],
    eval_patterns: Sequence[str],
    catalog_patterns: Sequence[str],
    baseline_dir: Optional[str] = None,
) -> Dict[str, Any]:
    """Returns metrics.json content: model and baseline metrics (all users and cold-start), recall curves,
    counts, the last blessed model's comparison and the blessing.

    Baselines on the same users and split: popularity (training counts) and EASE (closed form,
    ``evaluator.ease_l2``; skipped above ``baselines.MAX_EASE_ITEMS``). ``baseline_dir``: the last blessed
    model's SavedModel, scored on the same users; None (first run) blesses on the thresholds alone, and so
    does a last blessed model that cannot be scored (its ``error`` is reported, with a warning).
    """
    ev = profile.evaluator
    loaded = tf.saved_model.load(model_dir)
    inputs = input_dtypes(loaded.signatures["serving_default"])
    lists = list_inputs(loaded.signatures["serving_default"])
    held_out = read_held_out(profile, inputs, train_patterns, eval_patterns, catalog_patterns, lists)
    k_max = max(ev.ks)
    lists = {"twotower": model_lists(loaded, held_out, k_max, check_served=True)}
    lists.update(baseline_lists(profile, held_out, k_max))
    baseline: Optional[Dict[str, Any]] = None
    if baseline_dir:
        baseline = {"uri": baseline_dir}
        recs = _last_blessed_lists(baseline_dir, inputs, held_out, k_max, baseline)
        if recs is not None:
            lists[LAST_BLESSED] = recs

    n_items = len(held_out.catalogue)
    tables = {name: metrics.metric_table(recs, held_out.truth, ev.ks, n_items) for name, recs in lists.items()}
    curves = {name: metrics.recall_curve(recs, held_out.truth, k_max) for name, recs in lists.items()}
    n_cold, cold_tables = cold_start_tables(lists, held_out, ev.ks)
    if baseline is not None and LAST_BLESSED in tables:
        baseline["metrics"] = tables.pop(LAST_BLESSED)
        baseline["cold_start"] = cold_tables.pop(LAST_BLESSED, {})
    return {
        "models": tables,
        "cold_start": {"users": n_cold, "models": cold_tables},
        "recall_curve": curves,
        "catalogue_size": n_items,
        "eval_users": len(held_out.users),
        "eval_interactions": held_out.interactions,
        "train_interactions": int(len(held_out.train_items)),
        "catalogue_exclude_seen": ev.exclude_seen,
        "baseline": baseline,
        "blessing": blessing(profile, tables, baseline),
    }


def blessing(profile: Profile, tables: Mapping[str, Dict[str, float]], baseline: Optional[Dict[str, Any]]) -> Dict:
    """Returns metrics.json's ``blessing``: {metric, blessed, reason, last_blessed_recall, max_regression}.

    ``baseline``: the last blessed model's section (None on a first run; without ``metrics`` when it could
    not be scored, in which case only the thresholds count).
    """
    ev = profile.evaluator
    key = f"recall@{ev.blessing_k}"
    blessed_recall = baseline["metrics"][key] if baseline is not None and "metrics" in baseline else None
    blessed, reason = metrics.bless(
        tables["twotower"][key],
        tables["popularity"][key],
        ev.min_recall,
        ev.min_lift_over_popularity,
        blessed_recall,
        ev.max_regression,
    )
    if baseline is None:
        reason += "; no blessed model yet: thresholds only"
    elif blessed_recall is None:
        reason += f"; last blessed model not compared ({baseline['error']})"
    return {
        "metric": key,
        "blessed": blessed,
        "reason": reason,
        "last_blessed_recall": blessed_recall,
        "max_regression": ev.max_regression,
    }
