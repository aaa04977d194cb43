"""Recent popularity, most-recent-first histories and item-kNN on indices, worked out by hand next to the asserts."""

import tracemalloc

import numpy as np
import pytest

from twotower.evaluation import history_baselines as hb

DAY = hb.SECONDS_PER_DAY


def test_recent_popularity_window_boundaries_and_ties():
    # item: interaction days            all-time  in (day 3, day 10] (7 days up to the newest, day 10)
    # 0:    1, 2, 3 (day 3 exactly)     3         0   (day 3 is outside: t > t_max - 7 days)
    # 1:    3 + 1 second                1         1   (just inside)
    # 2:    10, 9                       2         2
    # 3:    4, 1                        2         1
    # 4:    never                       0         0
    items = np.array([0, 0, 0, 1, 2, 2, 3, 3])
    times = np.array([1, 2, 3, 3, 10, 9, 4, 1]) * DAY + np.array([0, 0, 0, 1, 0, 0, 0, 0])
    # recent 2 (item 2), then items 3 and 1 tie at 1: all-time 2 > 1; then 0 (all-time 3) and 4
    np.testing.assert_array_equal(hb.recent_popularity_ranking(items, times, 5, window_days=7), [2, 3, 1, 0, 4])
    # 8 days: (day 2, day 10] takes day 3 in: recent [1, 1, 2, 1, 0]; the 1s by all-time 3, 2, 1 -> 0, 3, 1
    np.testing.assert_array_equal(hb.recent_popularity_ranking(items, times, 5, window_days=8), [2, 0, 3, 1, 4])
    # full tie (same day, once each): lower index first; item 2 never bought comes last
    np.testing.assert_array_equal(
        hb.recent_popularity_ranking(np.array([1, 0]), np.array([5, 5]) * DAY, 3, 7), [0, 1, 2]
    )
    # no interactions at all: index order
    np.testing.assert_array_equal(hb.recent_popularity_ranking(np.zeros(0), np.zeros(0), 3, 7), [0, 1, 2])
    with pytest.raises(ValueError, match="window_days must be >= 1"):
        hb.recent_popularity_ranking(items, times, 5, window_days=0)
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        hb.recent_popularity_ranking(items, times, 3, window_days=7)


def test_most_recent_first_counts_a_rebought_item_at_its_latest_time():
    # user 0: item 2 on day 1, item 1 on day 5, item 2 again on day 7, item 0 on day 5 (same basket as item 1)
    #   -> 2 (day 7), then 0 and 1 (day 5, by index)                    = [2, 0, 1]
    # user 1: nothing -> []; user 2: item 3 on day 2 -> [3]
    indptr, items = hb.most_recent_first(
        np.array([0, 0, 0, 0, 2]), np.array([2, 1, 2, 0, 3]), np.array([1, 5, 7, 5, 2]) * DAY, n_users=3
    )
    np.testing.assert_array_equal(indptr, [0, 3, 3, 4])
    np.testing.assert_array_equal(items, [2, 0, 1, 3])
    with pytest.raises(ValueError, match=r"user indices span \[3, 3\], outside \[0, 3\)"):
        hb.most_recent_first(np.array([3]), np.array([0]), np.array([0]), n_users=3)


# 3 users: u0 {0, 1}, u1 {0, 1, 2}, u2 {2, 3}; users per item n = [2, 2, 2, 1]
HAND_USERS = np.array([0, 0, 1, 1, 1, 2, 2])
HAND_ITEMS = np.array([0, 1, 0, 1, 2, 2, 3])


def test_item_knn_weights_by_hand():
    # co-occurrence / sqrt(n_i n_j): (0,1) 2/sqrt(4) = 1; (0,2) and (1,2) 1/sqrt(4) = 0.5; (2,3) 1/sqrt(2) = 0.7071
    # 2 neighbours: row 2 has 3 (0.7071), then 0 and 1 tie at 0.5 -> the lower index 0 stays, 1 is pruned
    weights = hb.item_knn_weights(HAND_USERS, HAND_ITEMS, n_items=4, neighbours=2)
    r = 1 / np.sqrt(2)
    expected = [[0, 1, 0.5, 0], [1, 0, 0.5, 0], [0.5, 0, 0, r], [0, 0, r, 0]]
    np.testing.assert_allclose(weights.toarray(), expected, rtol=1e-12)
    # a repeated (user, item) pair counts once
    again = hb.item_knn_weights(np.append(HAND_USERS, 0), np.append(HAND_ITEMS, 1), 4, 2)
    np.testing.assert_array_equal(again.toarray(), weights.toarray())


def test_item_knn_recommend_by_hand():
    weights = hb.item_knn_weights(HAND_USERS, HAND_ITEMS, n_items=4, neighbours=2)
    histories = [np.array([2]), np.array([0]), np.array([0, 3]), np.array([1, 2]), np.array([], dtype=np.int64)]
    recs = hb.item_knn_recommend(histories, weights, k=5, exclude_seen=False)
    # {2}: row 2 -> 3 (0.7071), 0 (0.5); item 1 was pruned from row 2, so it scores 0 and is left for the fill
    # {0}: 1 (1.0), 2 (0.5)
    # {0, 3}: 1 = 1.0, 2 = 0.5 + 0.7071 = 1.2071 -> [2, 1]
    # {1, 2}: 0 = 1.0 + 0.5, 3 = 0.7071, 2 = 0.5 (from 1; kept: nothing is excluded) -> [0, 3, 2]
    # {}: nothing scores above 0 -> []
    expected = [[3, 0], [1, 2], [2, 1], [0, 3, 2], []]
    assert [r.tolist() for r in recs] == expected
    # excluding the history drops item 2 from {1, 2}'s list; k cuts the lists
    assert hb.item_knn_recommend(histories[3:4], weights, 5, exclude_seen=True)[0].tolist() == [0, 3]
    assert [r.tolist() for r in hb.item_knn_recommend(histories, weights, 1, False)] == [[3], [1], [2], [0], []]


def _brute_force(x: np.ndarray, neighbours: int, k: int, exclude_seen: bool) -> tuple:
    """Returns (pruned [n, n], lists): dense cosine, row-wise top-``neighbours`` (ties: lower index), dense
    scores ranked by a stable sort. The reference the sparse code must equal.
    """
    n = x.sum(axis=0)
    with np.errstate(invalid="ignore"):  # 0 / 0 for the item nobody has
        sims = (x.T @ x) / np.sqrt(np.outer(n, n))
    sims[~np.isfinite(sims)] = 0.0
    np.fill_diagonal(sims, 0.0)
    pruned = np.zeros_like(sims)
    for i, row in enumerate(sims):
        top = [j for j in np.argsort(-row, kind="stable")[:neighbours] if row[j] > 0]
        pruned[i, top] = row[top]
    scores = np.round(x @ pruned, hb.SCORE_DECIMALS)
    if exclude_seen:
        scores[x > 0] = 0.0
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")[:k]
        out.append([j for j in order if row[j] > 0])
    return pruned, out


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_item_knn_equals_brute_force_dense_cosine(monkeypatch, exclude_seen):
    rng = np.random.default_rng(7)
    x = (rng.random((40, 15)) < 0.25).astype(np.float64)  # small counts: many exactly tied cosines
    x[:, 14] = 0.0  # an item nobody has
    users, items = np.nonzero(x)
    pruned, expected = _brute_force(x, neighbours=4, k=6, exclude_seen=exclude_seen)
    weights = hb.item_knn_weights(users, items, 15, neighbours=4)
    np.testing.assert_array_equal(weights.toarray(), pruned)
    histories = [np.nonzero(row)[0] for row in x]
    recs = hb.item_knn_recommend(histories, weights, 6, exclude_seen)
    assert [r.tolist() for r in recs] == expected
    # tiny working-memory blocks (2 rows / users at a time) change nothing
    monkeypatch.setattr(hb, "KNN_BLOCK_ENTRIES", 30)
    np.testing.assert_array_equal(hb.item_knn_weights(users, items, 15, neighbours=4).toarray(), pruned)
    assert [r.tolist() for r in hb.item_knn_recommend(histories, weights, 6, exclude_seen)] == expected


def test_item_knn_at_a_real_catalogue_size_stays_sparse():
    # The real H&M catalogue: 105,542 articles, where EASE is skipped. A dense n x n float64 would be 89 GB;
    # pruned to 100 neighbours it holds at most n x 100 entries, and scoring goes a bounded batch at a time.
    n_items, rng = 105_542, np.random.default_rng(0)
    users = np.repeat(np.arange(500), 20)
    items = rng.integers(0, n_items, size=users.size)
    items[::2] = rng.integers(0, 300, size=items[::2].size)  # a popular head, so neighbours exist
    tracemalloc.start()
    weights = hb.item_knn_weights(users, items, n_items, neighbours=100)
    recs = hb.item_knn_recommend([items[users == u] for u in range(50)], weights, 100, exclude_seen=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert weights.shape == (n_items, n_items) and weights.nnz <= n_items * 100
    assert np.diff(weights.indptr).max() <= 100
    assert all(0 < len(r) <= 100 for r in recs)
    assert peak < 500e6, f"peak {peak / 1e6:.0f} MB"
