"""Recall against exact search, and the tuner of an index's search-time knobs.

``tune`` picks the cheapest (leaves searched, candidates re-scored exactly) whose
Recall@K on validation queries is reliably above the target: the mean
per-query recall minus ``CONFIDENCE_Z`` standard errors of that mean must reach
it. The margin so follows the measured spread (at 1M items, 1,000 queries,
per-query recall std 0.054: a margin of 0.005) instead of a fixed guess, and
unseen queries from the same distribution reach the target with it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

# Standard errors of the mean per-query recall kept between the validated recall and the target.
CONFIDENCE_Z = 3.0
# Cost of exactly re-scoring one candidate, per dimension, in units of one
# asymmetric-hashing lookup (one block of one point): 0.6 to 0.9 ns vs 0.022 ns measured at 1M x 64.
REORDER_COST_PER_DIM = 32
# Fractions of the leaves the tuner tries first (about 1.25x apart), before it bisects leaf by leaf.
LEAF_FRACTIONS = (0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.125, 0.16, 0.2)
LEAF_FRACTIONS += (0.25, 0.35, 0.5, 0.7, 1.0)
REORDER_MULTIPLES = (1, 2, 4, 8)  # candidates re-scored exactly, as multiples of K


def exact_top_k(
    queries: np.ndarray, embeddings: np.ndarray, k: int, batch_size: int = 256
) -> Tuple[np.ndarray, np.ndarray]:
    """Returns exact (indices ``[m, k]`` int64, scores ``[m, k]`` float32) by dot product, best first.

    ``tf.math.top_k`` over the ``[batch_size, n]`` score matrix, batch by batch.
    """
    table = tf.constant(embeddings)
    indices, scores = [], []
    for start in range(0, len(queries), batch_size):
        top = tf.math.top_k(tf.matmul(queries[start : start + batch_size], table, transpose_b=True), k=k)
        indices.append(top.indices.numpy().astype(np.int64))
        scores.append(top.values.numpy())
    if not indices:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(indices), np.concatenate(scores)


def per_query_recall(approximate: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Returns ``[m]`` float64: |approximate ∩ exact| / K of each row (both ``[m, K]`` indices)."""
    hits = [len(np.intersect1d(a, e)) for a, e in zip(approximate, exact, strict=True)]
    return np.asarray(hits, np.float64) / exact.shape[1]


def recall(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Returns the mean over rows of |approximate ∩ exact| / K (both ``[m, K]`` indices)."""
    return float(per_query_recall(approximate, exact).mean()) if len(exact) else 1.0


def standard_error(per_query: np.ndarray) -> float:
    """Returns the standard error of the mean of ``per_query`` ``[m]`` (0 for fewer than 2 rows)."""
    return float(per_query.std(ddof=1) / math.sqrt(len(per_query))) if len(per_query) > 1 else 0.0


def cost(config: Any, n: int, dim: int, leaves: int, reorder: int) -> float:
    """Returns the modelled work of one query, in asymmetric-hashing lookups (see REORDER_COST_PER_DIM).

    ``config``: the index's ``IndexConfig`` (``num_leaves``, ``dims_per_block``).
    """
    scanned = n * leaves / config.num_leaves * (dim / config.dims_per_block)
    return scanned + REORDER_COST_PER_DIM * reorder * dim


def fewest_leaves(passes: Callable[[int], bool], failing: int, passing: int) -> int:
    """Returns the fewest leaves in (``failing``, ``passing``] that ``passes``, by bisection (``passing`` passes)."""
    while passing - failing > 1:
        mid = (failing + passing) // 2
        if passes(mid):
            passing = mid
        else:
            failing = mid
    return passing


def tune(index: Any, queries: np.ndarray, exact: np.ndarray, target: float) -> Tuple[Any, List[Dict]]:
    """Returns (the cheapest config reliably reaching ``target`` Recall@K on ``queries``, every probe made).

    ``index``: a ScaNN ``scann_index.Index``; ``queries``: ``[m, dim]`` float32;
    ``exact``: ``[m, K]`` exact top-K indices of ``queries``. A config passes when
    its mean recall minus ``CONFIDENCE_Z`` standard errors is >= ``target``. For
    each re-scoring depth the fewest leaves passing are found by bisection (recall
    grows with leaves), on a grid and then leaf by leaf; when nothing passes,
    the config with the best recall is returned (the caller decides). Each probe records recall, its standard error
    and ``lower_bound``.
    """
    c, n, k = index.config, index.size, exact.shape[1]
    leaf_grid = sorted({max(1, min(c.num_leaves, round(f * c.num_leaves))) for f in LEAF_FRACTIONS})
    probes: List[Dict] = []

    def passes(leaves: int, reorder: int) -> bool:
        found, _ = index.search_indices(queries, k, leaves_to_search=leaves, reorder=reorder)
        hits = per_query_recall(found, exact)
        mean, sem = float(hits.mean()), standard_error(hits)
        lower = mean - CONFIDENCE_Z * sem
        probes.append(
            {
                "leaves_to_search": leaves,
                "reorder": reorder,
                "recall": round(mean, 4),
                "standard_error": round(sem, 5),
                "lower_bound": round(lower, 4),
            }
        )
        return lower >= target

    best: Optional[Tuple[float, int, int]] = None
    high, known = len(leaf_grid) - 1, False  # a deeper re-scoring never needs more leaves than a shallower one
    for reorder in sorted({min(n, m * k) for m in REORDER_MULTIPLES}):
        if best is not None and cost(c, n, index.dim, leaf_grid[0], reorder) >= best[0]:
            break
        if not known and not passes(leaf_grid[high], reorder):
            continue
        low = 0
        while low < high:
            mid = (low + high) // 2
            if passes(leaf_grid[mid], reorder):
                high = mid
            else:
                low = mid + 1
        known = True
        below = leaf_grid[high - 1] if high else 0  # failed at this depth (or no leaves at all)
        fewest = fewest_leaves(functools.partial(passes, reorder=reorder), below, leaf_grid[high])
        price = cost(c, n, index.dim, fewest, reorder)
        if best is None or price < best[0]:
            best = (price, fewest, reorder)
    if best is None:
        top = max(probes, key=lambda p: p["recall"])
        return dataclasses.replace(c, leaves_to_search=top["leaves_to_search"], reorder=top["reorder"]), probes
    return dataclasses.replace(c, leaves_to_search=best[1], reorder=best[2]), probes
