"""Baselines read from the known interactions' order and co-occurrence: recent popularity, repurchase, item-kNN.

Everything here works on integer indices: items in [0, n_items) (the catalogue's sorted order, so index order is
item-id order), users in [0, n_users). Timestamps are int64 seconds. Every ranking is deterministic: ties go to
the lower item index. ``baseline_lists`` maps ids to indices and the results back.
"""

from __future__ import annotations

from typing import Iterator, List, Sequence, Tuple

import numpy as np
import scipy.sparse

SECONDS_PER_DAY = 86_400
# Working-memory bound of the item-kNN steps, in matrix entries: a block of co-occurrence rows while pruning, a
# batch of users' sparse scores while scoring (2^22 entries = 32 MB of values, a few times that with indices and
# sort temporaries).
KNN_BLOCK_ENTRIES = 2**22
# Scores are rounded to this many decimals before ranking, so that equal sums added in another order tie exactly
# and the tie goes to the lower index.
SCORE_DECIMALS = 9


def _check_items(items: np.ndarray, n_items: int, where: str) -> None:
    """Raises ValueError naming ``where`` when an item index is outside [0, n_items)."""
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"{where}: item indices span [{items.min()}, {items.max()}], outside [0, {n_items})")


def recent_popularity_ranking(items: np.ndarray, times: np.ndarray, n_items: int, window_days: int) -> np.ndarray:
    """Returns [n_items] int64: every item index ranked by its count in the last ``window_days`` days.

    ``items``, ``times``: [interactions]. The window is the ``window_days`` x 86,400 seconds up to and including
    the newest interaction: t > t_max - window_days x 86,400 (with daily timestamps, the last ``window_days``
    calendar days). Items tied on the recent count (those never bought in the window included) rank by
    all-time count, then by index.
    """
    items, times = np.asarray(items, dtype=np.int64), np.asarray(times, dtype=np.int64)
    if items.shape != times.shape or items.ndim != 1:
        raise ValueError(f"recent_popularity_ranking: items {items.shape} and times {times.shape} must be equal 1-D")
    if window_days < 1:
        raise ValueError(f"recent_popularity_ranking: window_days must be >= 1, got {window_days}")
    _check_items(items, n_items, "recent_popularity_ranking")
    total = np.bincount(items, minlength=n_items)
    recent = np.zeros(n_items, dtype=np.int64)
    if items.size:
        start = times.max() - window_days * SECONDS_PER_DAY
        recent = np.bincount(items[times > start], minlength=n_items)
    # lexsort: the last key is the primary one
    return np.lexsort((np.arange(n_items), -total, -recent)).astype(np.int64)


def most_recent_first(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, n_users: int
) -> Tuple[np.ndarray, np.ndarray]:
    """Returns each user's distinct items, most recently interacted first, as (indptr [n_users + 1], items).

    User u's items are ``items[indptr[u]:indptr[u + 1]]``; an item bought several times counts once, at its most
    recent time; items of the same time (one basket) go by index. ``users``, ``items``, ``times``:
    [interactions].
    """
    users, items, times = (np.asarray(a, dtype=np.int64) for a in (users, items, times))
    if not users.shape == items.shape == times.shape or users.ndim != 1:
        raise ValueError(f"most_recent_first: users {users.shape}, items {items.shape}, times {times.shape} differ")
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"most_recent_first: user indices span [{users.min()}, {users.max()}], outside [0, {n_users})")
    order = np.lexsort((items, -times, users))  # user, then newest first, then item index
    users, items = users[order], items[order]
    pair = users * (int(items.max()) + 1 if items.size else 1) + items
    _, first = np.unique(pair, return_index=True)  # first position of each (user, item) in that order
    keep = np.sort(first)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(users[keep], minlength=n_users))]).astype(np.int64)
    return indptr, items[keep]


def _binary_matrix(users: np.ndarray, items: np.ndarray, n_items: int) -> scipy.sparse.csr_matrix:
    """Returns X: [distinct users, n_items] float64 CSR with 1 where the user interacted with the item."""
    _, rows = np.unique(np.asarray(users), return_inverse=True)
    x = scipy.sparse.csr_matrix(
        (np.ones(rows.size, dtype=np.float64), (rows, np.asarray(items, dtype=np.int64))),
        shape=(int(rows.max()) + 1 if rows.size else 0, n_items),
    )
    x.sum_duplicates()
    x.data[:] = 1.0  # a repeated (user, item) pair counts once
    return x


def _top_in_row(values: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """Returns the positions of ``values``' ``n`` largest; ties at the cut go to the lower ``cols``. Linear time
    (a partition, then a sort of the tied values only), so a row's columns need not be sorted."""
    if values.size <= n:
        return np.arange(values.size)
    kth = np.partition(values, values.size - n)[values.size - n]  # the n-th largest
    above = np.flatnonzero(values > kth)
    ties = np.flatnonzero(values == kth)
    ties = ties[np.argsort(cols[ties], kind="stable")[: n - above.size]]
    return np.concatenate([above, ties])


def item_knn_weights(users: np.ndarray, items: np.ndarray, n_items: int, neighbours: int) -> scipy.sparse.csr_matrix:
    """Returns W: [n_items, n_items] float64 CSR, row i holding item i's ``neighbours`` most cosine-similar items.

    ``users``, ``items``: [interactions] (any user numbering; a repeated pair counts once). With X the binary
    [users, n_items] matrix, cos(i, j) = (XᵀX)_ij / sqrt(n_i n_j), n_i the users of item i; the diagonal is left
    out and so are pairs that never co-occur. Rows of XᵀX are built a block at a time and pruned to the top
    ``neighbours`` (ties: lower index) before the next block, so memory is O(n_items x neighbours + one block);
    no n_items x n_items matrix is ever dense.
    """
    items = np.asarray(items, dtype=np.int64)
    if neighbours < 1:
        raise ValueError(f"item_knn_weights: neighbours must be >= 1, got {neighbours}")
    _check_items(items, n_items, "item_knn_weights")
    x = _binary_matrix(users, items, n_items)
    per_item = np.asarray(x.sum(axis=0)).ravel()  # n_i, exact in float64
    xt = x.T.tocsr()  # [n_items, users]
    block = max(1, KNN_BLOCK_ENTRIES // max(1, n_items))
    parts: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, n_items, block):
        co = (xt[start : start + block] @ x).tocsr()  # [block, n_items] co-occurrence counts, columns unsorted
        for r in range(co.shape[0]):
            item, span = start + r, slice(co.indptr[r], co.indptr[r + 1])
            cols, counts = co.indices[span].astype(np.int64), co.data[span]
            off = cols != item
            cols, counts = cols[off], counts[off]
            # n_i n_j is an exact integer, so equal cosines are equal floats and tie exactly
            sims = counts / np.sqrt(per_item[item] * per_item[cols])
            keep = _top_in_row(sims, cols, neighbours)
            parts.append((np.full(keep.size, item, dtype=np.int64), cols[keep], sims[keep]))
    rows, cols, sims = (np.concatenate([p[i] for p in parts]) if parts else np.zeros(0) for i in range(3))
    return scipy.sparse.csr_matrix((sims, (rows.astype(np.int64), cols.astype(np.int64))), shape=(n_items, n_items))


def _batches(histories: Sequence[np.ndarray], row_width: int, n_items: int) -> Iterator[slice]:
    """Yields slices of users whose sparse scores stay under ``KNN_BLOCK_ENTRIES`` entries: a user's scores
    are at most min(n_items, history length x ``row_width``), W's widest row."""
    start, entries = 0, 0
    for end, h in enumerate(histories):
        width = min(n_items, len(h) * row_width)
        if end > start and entries + width > KNN_BLOCK_ENTRIES:
            yield slice(start, end)
            start, entries = end, 0
        entries += width
    if start < len(histories):
        yield slice(start, len(histories))


def item_knn_recommend(
    histories: Sequence[np.ndarray], weights: scipy.sparse.csr_matrix, k: int, exclude_seen: bool
) -> List[np.ndarray]:
    """Returns per user up to ``k`` item indices, best first: the items with a positive score x_u · W.

    ``histories``: one 1-D array of item indices per user (repeats count once); ``weights``: W from
    ``item_knn_weights``. A user's score for item j is the sum of cos(h, j) over history items h that keep j
    among their neighbours. Ties go to the lower index (scores rounded to ``SCORE_DECIMALS`` decimals first).
    With ``exclude_seen`` the user's history items are left out. A list is shorter than ``k`` when fewer items
    score above 0 (no history: empty); the caller fills it. Only the scores above 0 are ever stored (x_u · W
    stays sparse: a user's history times W's ``neighbours``-wide rows), ranked a batch of at most
    ``KNN_BLOCK_ENTRIES`` of them at a time; no [users, n_items] matrix is dense.
    """
    n_items = weights.shape[0]
    if k < 1:
        raise ValueError(f"item_knn_recommend: k must be >= 1, got {k}")
    row_width = int(np.diff(weights.indptr).max()) if weights.nnz else 0
    out: List[np.ndarray] = []
    for part in _batches(histories, row_width, n_items):
        batch = [np.unique(np.asarray(h, dtype=np.int64)) for h in histories[part]]
        flat = np.concatenate(batch) if batch else np.zeros(0, dtype=np.int64)
        _check_items(flat, n_items, "item_knn_recommend")
        history_rows = np.repeat(np.arange(len(batch)), [h.size for h in batch])
        x = scipy.sparse.csr_matrix((np.ones(flat.size), (history_rows, flat)), shape=(len(batch), n_items))
        scores = (x @ weights).tocoo()
        rows, cols = scores.row.astype(np.int64), scores.col.astype(np.int64)
        values = np.round(scores.data, SCORE_DECIMALS)
        keep = values > 0
        if exclude_seen:
            keep &= ~np.isin(rows * n_items + cols, history_rows * n_items + flat)
        rows, cols, values = rows[keep], cols[keep], values[keep]
        order = np.lexsort((cols, -values, rows))  # by user, then score descending, then index ascending
        rows, cols = rows[order], cols[order]
        starts = np.searchsorted(rows, np.arange(len(batch)), side="left")
        ends = np.searchsorted(rows, np.arange(len(batch)), side="right")
        out.extend(cols[s : min(e, s + k)] for s, e in zip(starts, ends, strict=True))
    return out
