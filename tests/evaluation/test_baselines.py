"""EASE baseline, with the 3-item weights worked out by hand next to the assertions."""

import numpy as np
import pytest

from twotower.evaluation import baselines

# 4 users x 3 items; (user 0, item 1) appears twice and must count once.
#   user 0: {0, 1}   user 1: {0, 1, 2}   user 2: {1, 2}   user 3: {2}
TOY_USERS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3])
TOY_ITEMS = np.array([0, 1, 1, 0, 1, 2, 1, 2, 2])


def _dense_ease(users, items, n_users, n_items, l2):
    """The independent path: dense binary X, numpy's general inverse, B = -P / diag(P) with a zero diagonal."""
    x = np.zeros((n_users, n_items))
    x[users, items] = 1.0
    p = np.linalg.inv(x.T @ x + l2 * np.eye(n_items))
    expected = -p / np.diag(p)[np.newaxis, :]
    np.fill_diagonal(expected, 0.0)
    return expected


def test_ease_weights_match_dense_inverse_and_hand_values():
    weights = baselines.ease_weights(TOY_USERS, TOY_ITEMS, n_items=3, l2=1.0)
    assert weights.shape == (3, 3) and weights.dtype == np.float32

    expected = _dense_ease(TOY_USERS, TOY_ITEMS, n_users=4, n_items=3, l2=1.0)
    np.testing.assert_allclose(weights, expected, rtol=1e-6, atol=1e-12)

    # By hand: XᵀX = [[2,2,1],[2,3,2],[1,2,3]], G = XᵀX + I = [[3,2,1],[2,4,2],[1,2,4]], det G = 24,
    # P = G⁻¹ = adj(G) / 24 = [[12,-6,0],[-6,11,-4],[0,-4,8]] / 24, so diag(P) = [12, 11, 8] / 24.
    # B_ij = -P_ij / P_jj: B_01 = 6/11, B_02 = 0, B_10 = 6/12, B_12 = 4/8, B_20 = 0, B_21 = 4/11.
    hand = np.array([[0.0, 6 / 11, 0.0], [1 / 2, 0.0, 1 / 2], [0.0, 4 / 11, 0.0]])
    np.testing.assert_allclose(weights, hand, rtol=1e-6, atol=1e-12)  # the zeros to float rounding
    np.testing.assert_array_equal(np.diag(weights), np.zeros(3))


def test_ease_weights_built_and_inverted_in_blocks_equal_the_dense_inverse(monkeypatch):
    # blocks of 7 columns over 50 items: uneven last block, every mirror path of the in-place inverse
    monkeypatch.setattr(baselines, "BLOCK_ITEMS", 7)
    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 300, 2400), rng.integers(0, 50, 2400)
    weights = baselines.ease_weights(users, items, n_items=50, l2=10.0)
    expected = _dense_ease(users, items, n_users=300, n_items=50, l2=10.0)
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-7)


def test_ease_weights_ignore_user_numbering():
    # Users 0..3 renamed to 7, 1000, 3, 42: same item sets, same B.
    renamed = np.array([7, 1000, 3, 42])[TOY_USERS]
    np.testing.assert_array_equal(
        baselines.ease_weights(renamed, TOY_ITEMS, 3, 1.0), baselines.ease_weights(TOY_USERS, TOY_ITEMS, 3, 1.0)
    )


def test_ease_ranks_the_co_occurring_item_first():
    # Everyone with item 0 also has item 1; items 2-4 never meet item 0.
    baskets = [[0, 1], [0, 1], [0, 1, 2], [2, 3], [3, 4], [2, 4], [1, 3]]
    users = np.repeat(np.arange(len(baskets)), [len(b) for b in baskets])
    items = np.concatenate(baskets)
    weights = baselines.ease_weights(users, items, n_items=5, l2=0.5)
    np.testing.assert_array_equal(np.diag(weights), np.zeros(5))
    recs = baselines.ease_recommend([np.array([0])], weights, k=2, exclude_seen=True)
    assert recs.shape == (1, 2)
    assert recs[0, 0] == 1


def test_ease_recommend_exclude_seen_and_ties():
    weights = np.array([[0.0, 6 / 11, 0.0], [1 / 2, 0.0, 1 / 2], [0.0, 4 / 11, 0.0]], dtype=np.float32)
    # History {0, 1}: scores = B row 0 + B row 1 = [1/2, 6/11, 1/2] = [0.5, 0.545, 0.5];
    # items 0 and 2 tie at 0.5 and the lower index goes first -> [1, 0, 2].
    history = [np.array([0, 1, 1])]
    np.testing.assert_array_equal(baselines.ease_recommend(history, weights, 3, exclude_seen=False), [[1, 0, 2]])
    # Seen items 0 and 1 score -inf: [-inf, -inf, 0.5] -> 2, then the seen items in index order.
    np.testing.assert_array_equal(baselines.ease_recommend(history, weights, 3, exclude_seen=True), [[2, 0, 1]])
    np.testing.assert_array_equal(baselines.ease_recommend(history, weights, 1, exclude_seen=True), [[2]])


def test_ease_recommend_tie_break_at_the_cut_is_lower_index():
    # History {0} scores [0, 1, 1, 1, 1, 0]: four items tie for the top 2 -> [1, 2]; all-zero rows -> [0, 1, 2].
    weights = np.zeros((6, 6), dtype=np.float32)
    weights[0, 1:5] = 1.0
    histories = [np.array([0]), np.array([], dtype=np.int64), np.array([5])]
    recs = baselines.ease_recommend(histories, weights, 2, exclude_seen=False)
    np.testing.assert_array_equal(recs, [[1, 2], [0, 1], [0, 1]])
    recs3 = baselines.ease_recommend(histories, weights, 3, exclude_seen=False)
    np.testing.assert_array_equal(recs3, [[1, 2, 3], [0, 1, 2], [0, 1, 2]])
    # History {5} excluded: [0, 0, 0, 0, 0, -inf] -> [0, 1, 2]
    np.testing.assert_array_equal(baselines.ease_recommend(histories[2:], weights, 3, exclude_seen=True), [[0, 1, 2]])


def test_ease_recommend_batches_agree_with_one_batch():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 60, size=400)
    items = rng.integers(0, 25, size=400)
    weights = baselines.ease_weights(users, items, n_items=25, l2=10.0)
    histories = [items[users == u] for u in range(60)]
    whole = baselines.ease_recommend(histories, weights, 5, exclude_seen=True, batch_size=1000)
    np.testing.assert_array_equal(baselines.ease_recommend(histories, weights, 5, True, batch_size=7), whole)
    # Each row equals a full stable sort of that user's scores (score descending, lower index first).
    for history, row in zip(histories, whole, strict=True):
        x = np.zeros(25, dtype=np.float32)
        x[history] = 1.0
        scores = x @ weights
        scores[x > 0] = -np.inf
        np.testing.assert_array_equal(row, np.argsort(-scores, kind="stable")[:5])
        assert not set(row) & set(history.tolist())


def test_ease_feasible_and_argument_errors():
    assert baselines.ease_feasible(baselines.MAX_EASE_ITEMS)
    assert not baselines.ease_feasible(baselines.MAX_EASE_ITEMS + 1)
    assert not baselines.ease_feasible(0)
    # 30,001 items would need 30,001² x (8 + 4) bytes = 10.8 GB (float64 inverse, float32 copy): refused before
    # allocating anything.
    with pytest.raises(ValueError, match="10.8 GB"):
        baselines.ease_weights(np.array([0]), np.array([0]), baselines.MAX_EASE_ITEMS + 1, 1.0)
    with pytest.raises(ValueError, match="l2 must be > 0"):
        baselines.ease_weights(TOY_USERS, TOY_ITEMS, 3, 0.0)
    with pytest.raises(ValueError, match="item_index spans"):
        baselines.ease_weights(TOY_USERS, TOY_ITEMS, 2, 1.0)
    with pytest.raises(ValueError, match="equal-length"):
        baselines.ease_weights(TOY_USERS[:-1], TOY_ITEMS, 3, 1.0)
    weights = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="k must be in"):
        baselines.ease_recommend([np.array([0])], weights, 4, exclude_seen=False)
    with pytest.raises(ValueError, match="user 1"):
        baselines.ease_recommend([np.array([0]), np.array([3])], weights, 1, exclude_seen=False)
