"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a closed-form item-item baseline.

``top_k_indices`` (top-k per row, ties to the lower index) serves the other score-based baselines too.

Items are integer indices in [0, n_items); callers map ids to indices and back.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse
from threadpoolctl import threadpool_limits

# Above this many items the dense float64 n x n Gram matrix and its inverse do not fit in memory: each takes
# n^2 x 8 bytes (30,000 items -> 7.2 GB, 100,000 items -> 80 GB), and the inverse holds both at once.
MAX_EASE_ITEMS = 30_000
BLOCK_ITEMS = 2048  # columns of XᵀX built, and rows of the inverse mirrored, at a time


def ease_feasible(n_items: int, max_items: int = MAX_EASE_ITEMS) -> bool:
    """Returns True when EASE can run on ``n_items`` items.

    ``ease_weights`` inverts a dense float64 [n_items, n_items] matrix in place (7.2 GB at ``MAX_EASE_ITEMS`` =
    30,000 items), then returns it as float32 (3.6 GB more): about 11 GB at the limit. Before the in-place
    inverse, three such matrices were alive at once (bench/ease_memory.py: 4.6 GB against 1.9 GB at 12k items).
    """
    return 0 < n_items <= max_items


def ease_weights(user_index: np.ndarray, item_index: np.ndarray, n_items: int, l2: float) -> np.ndarray:
    """Returns the EASE item-item weights B: [n_items, n_items] float32 with a zero diagonal.

    ``user_index`` and ``item_index``: [interactions] integers, one (user, item) pair per interaction; a pair
    seen twice counts once (X is binary). With X the [users, n_items] matrix, G = XᵀX + l2·I, P = G⁻¹ and
    B_ij = -P_ij / P_jj for i != j. XᵀX is built from a sparse X, a block of columns at a time; the one dense
    n_items x n_items float64 matrix is inverted in place (Cholesky), then returned as float32.
    """
    user_index = np.asarray(user_index)
    item_index = np.asarray(item_index)
    if user_index.ndim != 1 or user_index.shape != item_index.shape:
        raise ValueError(
            f"ease_weights: user_index {user_index.shape} and item_index {item_index.shape} must be equal-length 1-D"
        )
    if not ease_feasible(n_items):
        raise ValueError(
            f"ease_weights: n_items={n_items} is outside [1, {MAX_EASE_ITEMS}]; the dense inverse would need "
            f"{n_items**2 * (8 + 4) / 1e9:.1f} GB"
        )
    if l2 <= 0:
        raise ValueError(f"ease_weights: l2 must be > 0 so that XᵀX + l2·I is invertible, got {l2}")
    if item_index.size and (item_index.min() < 0 or item_index.max() >= n_items):
        raise ValueError(
            f"ease_weights: item_index spans [{item_index.min()}, {item_index.max()}], outside [0, {n_items})"
        )
    # Users only group items, so renumber them 0..n_users-1 whatever ids the caller uses.
    users, rows = np.unique(user_index, return_inverse=True)
    x = scipy.sparse.csr_matrix((np.ones(rows.size, dtype=np.float64), (rows, item_index)), shape=(users.size, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0  # a repeated (user, item) pair counts once
    p = _gram(x, l2)
    _invert_in_place(p)
    p /= -np.diag(p)[np.newaxis, :]  # column j divided by -P_jj
    p[np.diag_indices(n_items)] = 0.0
    return p.astype(np.float32)


def _gram(x: scipy.sparse.csr_matrix, l2: float) -> np.ndarray:
    """Returns XᵀX + l2·I: [n, n] float64, filled ``BLOCK_ITEMS`` columns at a time.

    XᵀX in one sparse product is nearly dense for a busy catalogue, and held beside its dense copy.
    """
    n = x.shape[1]
    gram = np.empty((n, n))
    xt, columns = x.T.tocsr(), x.tocsc()
    for start in range(0, n, BLOCK_ITEMS):
        stop = min(n, start + BLOCK_ITEMS)
        gram[:, start:stop] = (xt @ columns[:, start:stop]).toarray()
    gram[np.diag_indices(n)] += l2
    return gram


def _invert_in_place(g: np.ndarray) -> None:
    """Replaces symmetric positive definite ``g`` ([n, n] float64, C order) by its inverse, in its own memory.

    Cholesky (LAPACK potrf, potri) on the same buffer: no second or third n x n matrix, as a general
    inverse needs (at 21k items each is 3.6 GB), and a third of its arithmetic. LAPACK works in column
    order; ``g.T`` is that view of the same buffer, and ``g`` is symmetric, so it is the same matrix.
    One BLAS thread: SciPy's bundled OpenBLAS (0.3.21) crashed (SIGSEGV) in its threaded potrf on 21,108
    items, not on 12,000; on one thread 21,108 items take 161 CPU-s, about a third of the general inverse's.
    """
    n = g.shape[0]
    with threadpool_limits(limits=1, user_api="blas"):  # see the docstring
        factor, info = scipy.linalg.lapack.dpotrf(g.T, lower=False, clean=False, overwrite_a=True)
        if info == 0:
            _, info = scipy.linalg.lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"ease_weights: XᵀX + l2·I is not positive definite (LAPACK info {info})")
    # potri filled the upper triangle of g.T, that is g's lower one: mirror it, a block of rows at a time
    for start in range(0, n, BLOCK_ITEMS):
        stop = min(n, start + BLOCK_ITEMS)
        g[:start, start:stop] = g[start:stop, :start].T
        block = g[start:stop, start:stop]
        block[:] = np.tril(block) + np.tril(block, -1).T


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Returns [batch, k] column indices of ``scores`` [batch, n] by score descending, lower index first on ties.

    argpartition finds each row's top k; a full stable sort is needed only for rows whose k-th score is shared with
    an item outside the cut (argpartition may have picked the higher index there).
    """
    if k >= scores.shape[1]:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=-1)  # primary key: score descending; then index ascending
    top = np.take_along_axis(part, order, axis=1)
    kth = np.take_along_axis(part_scores, order[:, -1:], axis=1)
    ambiguous = (scores >= kth).sum(axis=1) > k
    if ambiguous.any():
        top[ambiguous] = np.argsort(-scores[ambiguous], axis=1, kind="stable")[:, :k]
    return top


def ease_recommend(
    histories: Sequence[np.ndarray],
    weights: np.ndarray,
    k: int,
    exclude_seen: bool,
    batch_size: int = 1024,
) -> np.ndarray:
    """Returns [users, k] int64 item indices, best first: top-k of scores x_u · B per user.

    ``histories``: one 1-D integer array of item indices per user (repeats count once); ``weights``: B,
    [n_items, n_items]. With ``exclude_seen`` history items score -inf, so they come last; a user who has seen
    more than n_items - k items still gets k entries, the tail being seen items in index order. Ties go to the
    lower index. Users are scored ``batch_size`` at a time, so the working memory is [batch_size, n_items].
    """
    if weights.ndim != 2 or weights.shape[0] != weights.shape[1]:
        raise ValueError(f"ease_recommend: weights must be square [n_items, n_items], got {weights.shape}")
    n_items = weights.shape[0]
    if not 1 <= k <= n_items:
        raise ValueError(f"ease_recommend: k must be in [1, {n_items}] (n_items), got {k}")
    if batch_size < 1:
        raise ValueError(f"ease_recommend: batch_size must be >= 1, got {batch_size}")
    out = np.empty((len(histories), k), dtype=np.int64)
    for start in range(0, len(histories), batch_size):
        batch = [np.asarray(h, dtype=np.int64).reshape(-1) for h in histories[start : start + batch_size]]
        items = np.concatenate(batch)
        if items.size and (items.min() < 0 or items.max() >= n_items):
            bad = next(i for i, h in enumerate(batch) if h.size and (h.min() < 0 or h.max() >= n_items))
            raise ValueError(f"ease_recommend: history of user {start + bad} has an item index outside [0, {n_items})")
        rows = np.repeat(np.arange(len(batch)), [h.size for h in batch])
        # Sparse x_u: the product costs (history items x n_items), not (batch x n_items x n_items).
        x = scipy.sparse.csr_matrix((np.ones(items.size, dtype=np.float32), (rows, items)), shape=(len(batch), n_items))
        x.sum_duplicates()
        x.data[:] = 1.0  # a repeated history item counts once
        scores = np.asarray(x @ weights)  # [batch, n_items]
        if exclude_seen:
            scores[rows, items] = -np.inf
        out[start : start + len(batch)] = top_k_indices(scores, k)
    return out
