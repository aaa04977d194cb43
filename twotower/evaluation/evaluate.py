"""Evaluation of an exported retrieval SavedModel on the held-out split, next to its baselines.

Queries are built from each held-out user's raw features exactly as a serving
client would send them (``held_out``) and embedded by the model's
``query_embedding`` signature; they are ranked against the model's own
catalogue (what ``serving_default`` ranks), deep enough that excluding a user's
seen items never leaves a list short, since ``serving_default`` stops at
``serving.top_k``. The first batch is checked against ``serving_default``'s
scores, so the served path is covered. The same data, read once, also scores
the baselines (``baseline_lists``) and, when there is one, the last blessed
model (any earlier export: its signature takes raw features too). Every
per-user metric gets a bootstrap interval over users (``bootstrap``), and the
blessing (``blessing``) compares the model with the best baseline, paired.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set

import numpy as np
import tensorflow as tf

from twotower.config import EvaluatorConfig, Profile
from twotower.evaluation import metrics
from twotower.evaluation.baseline_lists import baseline_lists
from twotower.evaluation.blessing import blessing
from twotower.evaluation.bootstrap import Bootstrap, bootstrap
from twotower.evaluation.held_out import HeldOut, check_comparable, input_specs, read_held_out
from twotower.export import repeats

QUERY_BATCH = 1024
LAST_BLESSED = "last_blessed"  # the last blessed model's name in recall curves and plots
# What loading or querying an earlier export may raise when it cannot be compared; anything else propagates.
BASELINE_ERRORS = (OSError, ValueError, KeyError, TypeError, tf.errors.OpError)


def model_lists(loaded: Any, held_out: HeldOut, k: int, check_served: bool = False) -> List[List[bytes]]:
    """Returns each user's top-``k`` item ids over the whole catalogue of the ``loaded`` SavedModel, seen excluded.

    Ranks ``k`` + (most seen items in the batch) deep, ``QUERY_BATCH`` users at a time. ``check_served``
    compares the first batch's top scores with ``serving_default``'s and raises RuntimeError if they differ.
    """
    query = loaded.signatures.get("query_with_history") or loaded.signatures["query_embedding"]
    names = list(input_specs(query))
    item_ids, embeddings = loaded.item_ids.numpy(), loaded.item_embeddings
    row_of = {item: row for row, item in enumerate(item_ids)}
    recs: List[List[bytes]] = []
    for start in range(0, len(held_out.users), QUERY_BATCH):
        users = held_out.users[start : start + QUERY_BATCH]
        inputs = {name: tf.constant(held_out.queries[name][start : start + QUERY_BATCH]) for name in names}
        depth = min(len(item_ids), k + max(len(held_out.seen.get(u, ())) for u in users))
        out = query(**inputs)
        scores = tf.matmul(out["embedding"], embeddings, transpose_b=True)  # stays a tensor: top_k reads it as is
        if "history_scores" in out:  # the user's own earlier items, scored as served (export.repeats)
            rows = history_rows(out["history_item_ids"].numpy(), row_of)
            scores = repeats.with_history_scores(scores, tf.constant(rows), out["history_scores"])
        top = tf.math.top_k(scores, depth)
        if check_served and start == 0:
            served = loaded.signatures["serving_default"](**inputs)["scores"].numpy()
            width = min(served.shape[1], depth)
            if not np.allclose(served[:, :width], top.values.numpy()[:, :width], atol=1e-4):
                raise RuntimeError("serving_default ranks the catalogue differently from its query_embedding")
        for user, row in zip(users, top.indices.numpy(), strict=True):
            recs.append(metrics.exclude(list(item_ids[row]), held_out.seen.get(user, set()), k))
    return recs


def history_rows(history_ids: np.ndarray, row_of: Mapping[bytes, int]) -> np.ndarray:
    """Returns ``[users, width]`` catalogue rows of the history item ids, -1 for padding (b"")."""
    return np.array([[row_of[i] if i else -1 for i in ids] for ids in history_ids], dtype=np.int64).reshape(
        history_ids.shape
    )


def _last_blessed_lists(
    baseline_dir: str, current_inputs: Mapping[str, tf.TensorSpec], held_out: HeldOut, k: int, report: Dict[str, Any]
) -> Optional[List[List[bytes]]]:
    """Returns the last blessed model's lists on ``held_out``, or None with ``report['error']`` set.

    Items no longer in the catalogue are dropped from its lists (they could not be served) and counted in
    ``report['items_not_in_catalogue']``.
    """
    try:
        loaded = tf.saved_model.load(baseline_dir)
        check_comparable(input_specs(loaded.signatures["serving_default"]), current_inputs)
        served = model_lists(loaded, held_out, len(held_out.catalogue))
    except BASELINE_ERRORS as e:
        report["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
        logging.warning("RetrievalEvaluator: last blessed model %s not compared: %s", baseline_dir, report["error"])
        return None
    live = set(held_out.catalogue)
    report["items_not_in_catalogue"] = sum(item not in live for recs in served for item in recs[:k])
    return [[item for item in recs if item in live][:k] for recs in served]


def _bootstrap(
    lists: Mapping[str, List[List[bytes]]], truth: Sequence[Set[bytes]], ev: EvaluatorConfig
) -> Optional[Bootstrap]:
    """Returns the bootstrap of every model's per-user Recall@K, NDCG and MAP on these users (None when
    ``evaluator.bootstrap_samples`` is 0 or there are no users).
    """
    if not ev.bootstrap_samples or not truth:
        return None
    per_user = {name: metrics.per_user_table(recs, truth, ev.ks) for name, recs in lists.items()}
    return bootstrap(per_user, ev.bootstrap_samples, ev.bootstrap_seed)


def cold_start(lists: Mapping[str, List[List[bytes]]], held_out: HeldOut, ev: EvaluatorConfig) -> Dict[str, Any]:
    """Returns metrics.json's ``cold_start``: {users, models, intervals} on the held-out users without any
    known interaction ({} tables when there are none).
    """
    known = set(held_out.known_users)
    cold = [i for i, u in enumerate(held_out.users) if u not in known]
    if not cold:
        return {"users": 0, "models": {}, "intervals": {}}
    truth = [held_out.truth[i] for i in cold]
    subset = {name: [recs[i] for i in cold] for name, recs in lists.items()}
    n = len(held_out.catalogue)
    boot = _bootstrap(subset, truth, ev)
    return {
        "users": len(cold),
        "models": {name: metrics.metric_table(recs, truth, ev.ks, n) for name, recs in subset.items()},
        "intervals": boot.intervals() if boot is not None else {},
    }


def evaluate(
    profile: Profile,
    model_dir: str,
    train_patterns: Sequence[str],
    eval_patterns: Sequence[str],
    catalog_patterns: Sequence[str],
    baseline_dir: Optional[str] = None,
) -> Dict[str, Any]:
    """Returns metrics.json content: model and baseline metrics (all users and cold-start) with bootstrap
    intervals, recall curves, counts, the last blessed model's comparison and the blessing.

    ``train_patterns``: every split before the held-out one (the known interactions); ``eval_patterns``: the
    held-out split. Baselines on the same users and exclusions: ``evaluator.baselines`` (see
    ``baseline_lists``). ``baseline_dir``: the last blessed model's SavedModel, scored on the same users; None
    (first run) skips the regression check, and so does a last blessed model that cannot be scored (its
    ``error`` is reported, with a warning).
    """
    ev = profile.evaluator
    loaded = tf.saved_model.load(model_dir)
    inputs = input_specs(loaded.signatures["serving_default"])
    held_out = read_held_out(profile, inputs, train_patterns, eval_patterns, catalog_patterns)
    k_max = max(ev.ks)
    lists = {"twotower": model_lists(loaded, held_out, k_max, check_served=True)}
    computed, skipped = baseline_lists(profile, held_out, k_max)
    lists.update(computed)
    baseline: Optional[Dict[str, Any]] = None
    if baseline_dir:
        baseline = {"uri": baseline_dir}
        recs = _last_blessed_lists(baseline_dir, inputs, held_out, k_max, baseline)
        if recs is not None:
            lists[LAST_BLESSED] = recs

    n_items = len(held_out.catalogue)
    tables = {name: metrics.metric_table(recs, held_out.truth, ev.ks, n_items) for name, recs in lists.items()}
    curves = {name: metrics.recall_curve(recs, held_out.truth, k_max) for name, recs in lists.items()}
    boot = _bootstrap(lists, held_out.truth, ev)
    intervals = boot.intervals() if boot is not None else {}
    cold = cold_start(lists, held_out, ev)
    if baseline is not None and LAST_BLESSED in tables:
        baseline["metrics"] = tables.pop(LAST_BLESSED)
        baseline["intervals"] = intervals.pop(LAST_BLESSED, {})
        baseline["cold_start"] = cold["models"].pop(LAST_BLESSED, {})
        baseline["cold_start_intervals"] = cold["intervals"].pop(LAST_BLESSED, {})
    return {
        "models": tables,
        "intervals": intervals,
        "bootstrap": boot.describe() if boot is not None else None,
        "baselines": {
            "computed": list(computed),
            "skipped": skipped,
            "window_days": ev.window_days,
            "knn_neighbours": ev.knn_neighbours,
        },
        "cold_start": cold,
        "recall_curve": curves,
        "catalogue_size": n_items,
        "eval_users": len(held_out.users),
        "eval_interactions": held_out.interactions,
        "train_interactions": int(len(held_out.known_items)),
        "catalogue_exclude_seen": ev.exclude_seen,
        "baseline": baseline,
        "blessing": blessing(profile, tables, baseline, boot, skipped),
    }
