"""Retrieval metrics on plain numpy/Python data, hand-checkable in tests.

Recall, NDCG and MAP are means over users; ``*_per_user`` return the per-user values behind each mean (what
``bootstrap`` resamples), and the means are computed from the same values, so both always agree.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

NDCG_K = 10
MAP_K = 12


def _mean(scores: Sequence[float], name: str) -> float:
    """Returns the mean of per-user ``scores``; raises ValueError naming the metric when there are none."""
    if not len(scores):
        raise ValueError(f"{name}: no user has any relevant item")
    return sum(scores) / len(scores)


def _recall_scores(recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], k: int) -> List[float]:
    """Returns |top-k ∩ truth| / |truth| per user with a non-empty truth, in user order."""
    return [len(set(recs[:k]) & items) / len(items) for recs, items in zip(recommended, truth, strict=True) if items]


def recall_at_k(recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], k: int) -> float:
    """Returns mean over users of |top-k ∩ truth| / |truth|; users with empty truth are skipped."""
    return _mean(_recall_scores(recommended, truth, k), "recall_at_k")


def recall_per_user(recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], k: int) -> np.ndarray:
    """Returns [users with a non-empty truth] float64: each user's Recall@k; its mean is ``recall_at_k``."""
    return np.asarray(_recall_scores(recommended, truth, k), dtype=np.float64)


def _check_k(k: int, name: str) -> None:
    """Raises ValueError naming the metric when ``k`` is not a positive integer."""
    if k < 1:
        raise ValueError(f"{name}: k must be >= 1, got {k}")


def _first_hits(recs: Sequence[bytes], items: Set[bytes], k: int) -> List[bool]:
    """Returns rel_i for i < k: True where recs[i] is relevant and not already listed higher up.

    A repeated item counts only at its first rank, so a list cannot score above the ideal ranking.
    """
    listed: Set[bytes] = set()
    hits = []
    for item in recs[:k]:
        hits.append(item in items and item not in listed)
        listed.add(item)
    return hits


def _ndcg_scores(recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], k: int) -> List[float]:
    """Returns DCG@k / IDCG@k per user with a non-empty truth, in user order (see ``ndcg_at_k``)."""
    _check_k(k, "ndcg_at_k")
    scores = []
    for recs, items in zip(recommended, truth, strict=True):
        if not items:
            continue
        dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(_first_hits(recs, items, k)) if hit)
        idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(items), k)))
        scores.append(dcg / idcg)
    return scores


def ndcg_at_k(recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], k: int) -> float:
    """Returns mean over users of DCG@k / IDCG@k with binary relevance; users with empty truth are skipped.

    DCG = sum_{i<k} rel_i / log2(i + 2) (rank 1 weighs 1, rank 2 weighs 1/log2(3), ...); IDCG is the DCG of
    min(|truth|, k) hits at the top ranks, so each user's value lies in [0, 1].
    """
    return _mean(_ndcg_scores(recommended, truth, k), "ndcg_at_k")


def ndcg_per_user(recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], k: int) -> np.ndarray:
    """Returns [users with a non-empty truth] float64: each user's NDCG@k; its mean is ``ndcg_at_k``."""
    return np.asarray(_ndcg_scores(recommended, truth, k), dtype=np.float64)


def _map_scores(recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], k: int) -> List[float]:
    """Returns AP@k per user with a non-empty truth, in user order (see ``map_at_k``)."""
    _check_k(k, "map_at_k")
    scores = []
    for recs, items in zip(recommended, truth, strict=True):
        if not items:
            continue
        n_hits = 0
        total = 0.0
        for i, hit in enumerate(_first_hits(recs, items, k)):
            if hit:
                n_hits += 1
                total += n_hits / (i + 1)
        scores.append(total / min(len(items), k))
    return scores


def map_at_k(recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], k: int) -> float:
    """Returns mean over users of AP@k (H&M Kaggle MAP@12 definition); users with empty truth are skipped.

    AP@k = sum_{i<k} P(i) * rel_i / min(|truth|, k), where P(i) is the precision of the top i + 1 items.
    """
    return _mean(_map_scores(recommended, truth, k), "map_at_k")


def map_per_user(recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], k: int) -> np.ndarray:
    """Returns [users with a non-empty truth] float64: each user's AP@k; its mean is ``map_at_k``."""
    return np.asarray(_map_scores(recommended, truth, k), dtype=np.float64)


def coverage_at_k(recommended: Sequence[Sequence[bytes]], k: int, catalogue_size: int) -> float:
    """Returns |union of every user's top-k| / ``catalogue_size``: the share of the catalogue ever recommended."""
    _check_k(k, "coverage_at_k")
    if catalogue_size < 1:
        raise ValueError(f"coverage_at_k: catalogue_size must be >= 1, got {catalogue_size}")
    distinct = {item for recs in recommended for item in recs[:k]}
    if len(distinct) > catalogue_size:
        raise ValueError(
            f"coverage_at_k: {len(distinct)} distinct items recommended but catalogue_size is {catalogue_size}"
        )
    return len(distinct) / catalogue_size


def popularity_ranking(train_items: Iterable[bytes]) -> List[bytes]:
    """Returns item ids by descending training count (ties by id, so the order is deterministic)."""
    counts = Counter(train_items)
    return [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def exclude(recommended: Sequence[bytes], seen: Set[bytes], k: int) -> List[bytes]:
    """Returns the first ``k`` of ``recommended`` that are not in ``seen``."""
    return [item for item in recommended if item not in seen][:k]


def per_user_table(
    recommended: Sequence[Sequence[bytes]],
    truth: Sequence[Set[bytes]],
    ks: Iterable[int],
    ndcg_k: int = NDCG_K,
    map_k: int = MAP_K,
) -> Dict[str, np.ndarray]:
    """Returns {'recall@K': .., 'ndcg@10': .., 'map@12': ..}, each [users with a non-empty truth] float64.

    The metrics that are means over users, in ``metric_table``'s order; entry j of every array is the same
    user, so arrays of two models on the same ``truth`` pair up user by user (``bootstrap``).
    """
    table = {f"recall@{k}": recall_per_user(recommended, truth, k) for k in ks}
    table[f"ndcg@{ndcg_k}"] = ndcg_per_user(recommended, truth, ndcg_k)
    table[f"map@{map_k}"] = map_per_user(recommended, truth, map_k)
    return table


def metric_table(
    recommended: Sequence[Sequence[bytes]],
    truth: Sequence[Set[bytes]],
    ks: Iterable[int],
    catalogue_size: int,
    ndcg_k: int = NDCG_K,
    map_k: int = MAP_K,
) -> Dict[str, float]:
    """Returns {'recall@K': .., 'ndcg@10': .., 'map@12': .., 'coverage@K': ..} with recall and coverage per K in ``ks``.

    Keys come in that order: every recall@K, then ndcg@``ndcg_k`` and map@``map_k``, then every coverage@K.
    """
    ks = list(ks)
    table = {f"recall@{k}": recall_at_k(recommended, truth, k) for k in ks}
    table[f"ndcg@{ndcg_k}"] = ndcg_at_k(recommended, truth, ndcg_k)
    table[f"map@{map_k}"] = map_at_k(recommended, truth, map_k)
    table.update({f"coverage@{k}": coverage_at_k(recommended, k, catalogue_size) for k in ks})
    return table


def recall_curve(recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], k_max: int) -> List[float]:
    """Returns [recall@1, recall@2, ..., recall@k_max] in one pass; entry K-1 equals ``recall_at_k(.., K)``.

    Users with empty truth are skipped; a list shorter than K counts the hits it has.
    """
    _check_k(k_max, "recall_curve")
    sums = [0.0] * k_max  # sums[i]: sum over users of hits within the top i + 1, over |truth|
    n_users = 0
    for recs, items in zip(recommended, truth, strict=True):
        if not items:
            continue
        n_users += 1
        hits = 0
        for i, hit in enumerate(_first_hits(recs, items, k_max)):
            hits += hit
            sums[i] += hits / len(items)
        for i in range(len(recs[:k_max]), k_max):
            sums[i] += hits / len(items)
    if not n_users:
        raise ValueError("recall_curve: no user has any relevant item")
    return [s / n_users for s in sums]


def bless(
    model_recall: float,
    popularity_recall: float,
    min_recall: float,
    min_lift: float,
    blessed_recall: Optional[float] = None,
    max_regression: float = 0.0,
) -> Tuple[bool, str]:
    """Returns (blessed, reason): recall must reach ``min_recall``, ``min_lift`` x popularity and, when
    ``blessed_recall`` (the last blessed model's recall on the same users) is given, (1 - ``max_regression``) x it.

    ``blessed_recall`` None: no regression check (no model was blessed before, or it could not be scored).
    """
    if model_recall < min_recall:
        return False, f"recall {model_recall:.4f} < threshold {min_recall:.4f}"
    if model_recall < min_lift * popularity_recall:
        return False, f"recall {model_recall:.4f} < {min_lift:g} x popularity {popularity_recall:.4f}"
    reason = f"recall {model_recall:.4f} >= {min_recall:.4f} and >= {min_lift:g} x popularity {popularity_recall:.4f}"
    if blessed_recall is None:
        return True, reason
    factor = 1 - max_regression
    if model_recall < factor * blessed_recall:
        return False, (
            f"recall {model_recall:.4f} < {factor:g} x last blessed model {blessed_recall:.4f}"
            f" (max_regression {max_regression:g})"
        )
    return True, f"{reason} and >= {factor:g} x last blessed model {blessed_recall:.4f}"
