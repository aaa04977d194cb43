"""Retrieval metrics on plain numpy/Python data, hand-checkable in tests."""

from __future__ import annotations

from collections import Counter
from typing import Dict, Iterable, List, Sequence, Set


def recall_at_k(recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], k: int) -> float:
    """Returns mean over users of |top-k ∩ truth| / |truth|; users with empty truth are skipped."""
    scores = [len(set(recs[:k]) & items) / len(items) for recs, items in zip(recommended, truth, strict=True) if items]
    if not scores:
        raise ValueError("recall_at_k: no user has any relevant item")
    return sum(scores) / len(scores)


def popularity_ranking(train_items: Iterable[bytes]) -> List[bytes]:
    """Returns item ids by descending training count (ties by id, so the order is deterministic)."""
    counts = Counter(train_items)
    return [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def exclude(recommended: Sequence[bytes], seen: Set[bytes], k: int) -> List[bytes]:
    """Returns the first ``k`` of ``recommended`` that are not in ``seen``."""
    return [item for item in recommended if item not in seen][:k]


def recall_table(
    recommended: Sequence[Sequence[bytes]], truth: Sequence[Set[bytes]], ks: Iterable[int]
) -> Dict[str, float]:
    """Returns {'recall@K': value} for every K in ``ks``."""
    return {f"recall@{k}": recall_at_k(recommended, truth, k) for k in ks}


def bless(model_recall: float, popularity_recall: float, min_recall: float, min_lift: float) -> tuple[bool, str]:
    """Returns (blessed, reason): recall must reach ``min_recall`` and ``min_lift`` x popularity."""
    if model_recall < min_recall:
        return False, f"recall {model_recall:.4f} < threshold {min_recall:.4f}"
    if model_recall < min_lift * popularity_recall:
        return False, f"recall {model_recall:.4f} < {min_lift:g} x popularity {popularity_recall:.4f}"
    return (
        True,
        f"recall {model_recall:.4f} >= {min_recall:.4f} and >= {min_lift:g} x popularity {popularity_recall:.4f}",
    )
