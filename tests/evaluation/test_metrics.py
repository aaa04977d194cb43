"""Retrieval metrics, with expectations worked out by hand next to each assertion."""

import math

import numpy as np
import pytest

from twotower.evaluation import metrics


def test_recall_at_k_hand_computed():
    recs = [[b"a", b"b", b"c"], [b"x", b"y", b"z"]]
    truth = [{b"a", b"c"}, {b"q"}]
    # user 1: top-1 {a} hits 1 of 2 -> 0.5; user 2: 0 -> mean 0.25
    assert metrics.recall_at_k(recs, truth, 1) == pytest.approx(0.25)
    # user 1: top-3 {a,b,c} hits 2 of 2 -> 1.0; user 2: 0 -> mean 0.5
    assert metrics.recall_at_k(recs, truth, 3) == pytest.approx(0.5)


def test_recall_skips_users_without_truth_and_rejects_empty():
    assert metrics.recall_at_k([[b"a"], [b"b"]], [{b"a"}, set()], 1) == 1.0
    with pytest.raises(ValueError, match="no user"):
        metrics.recall_at_k([[b"a"]], [set()], 1)


def test_popularity_ranking_counts_then_id():
    # b x3, a x2, c x2 -> b first; a and c tie, broken by id
    assert metrics.popularity_ranking([b"c", b"b", b"a", b"b", b"c", b"a", b"b"]) == [b"b", b"a", b"c"]


def test_exclude_seen_keeps_order():
    assert metrics.exclude([b"a", b"b", b"c", b"d"], {b"b"}, 2) == [b"a", b"c"]


def test_bless_thresholds():
    assert metrics.bless(0.30, 0.20, 0.1, 1.05)[0]  # 0.30 >= 0.1 and >= 0.21
    ok, reason = metrics.bless(0.20, 0.20, 0.1, 1.05)  # 0.20 < 1.05 * 0.20 = 0.21
    assert not ok and "popularity" in reason
    ok, reason = metrics.bless(0.05, 0.01, 0.1, 1.05)
    assert not ok and "threshold" in reason


def test_bless_no_regression_vs_last_blessed():
    # thresholds pass (0.30 >= 0.1, >= 1.05 x 0.20 = 0.21); last blessed 0.32, max_regression 0 -> floor 0.32
    ok, reason = metrics.bless(0.30, 0.20, 0.1, 1.05, blessed_recall=0.32)
    assert not ok and reason == "recall 0.3000 < 1 x last blessed model 0.3200 (max_regression 0)"
    # max_regression 0.1 -> floor 0.9 x 0.32 = 0.288 <= 0.30: blessed, and the reason names the comparison
    ok, reason = metrics.bless(0.30, 0.20, 0.1, 1.05, blessed_recall=0.32, max_regression=0.1)
    assert ok and reason.endswith("and >= 0.9 x last blessed model 0.3200")
    # a tie is not a regression: 0.30 >= (1 - 0) x 0.30
    assert metrics.bless(0.30, 0.20, 0.1, 1.05, blessed_recall=0.30)[0]
    # negative max_regression demands an improvement: floor (1 + 0.5) x 0.30 = 0.45 > 0.40
    ok, reason = metrics.bless(0.40, 0.20, 0.1, 1.05, blessed_recall=0.30, max_regression=-0.5)
    assert not ok and reason == "recall 0.4000 < 1.5 x last blessed model 0.3000 (max_regression -0.5)"
    # no last blessed model (None): thresholds alone, the reason as before
    assert metrics.bless(0.30, 0.20, 0.1, 1.05) == metrics.bless(0.30, 0.20, 0.1, 1.05, blessed_recall=None)
    # the thresholds are checked first: failing them is reported as such even with a baseline
    ok, reason = metrics.bless(0.05, 0.01, 0.1, 1.05, blessed_recall=0.01)
    assert not ok and "threshold" in reason


def test_recall_curve_hand_computed():
    recs = [[b"a", b"b", b"c"], [b"x", b"q"], [b"a"]]
    truth = [{b"a", b"c"}, {b"q"}, set()]
    # user 1 (2 relevant): hits at ranks 1 and 3 -> 1/2, 1/2, 2/2, 2/2
    # user 2 (1 relevant, list of 2): hit at rank 2 -> 0, 1, 1, 1 (a short list keeps its hits)
    # user 3: empty truth, skipped. Mean over 2 users: 0.25, 0.75, 1.0, 1.0
    assert metrics.recall_curve(recs, truth, 4) == pytest.approx([0.25, 0.75, 1.0, 1.0])
    # entry K-1 is recall@K
    for k in range(1, 5):
        assert metrics.recall_curve(recs, truth, 4)[k - 1] == pytest.approx(metrics.recall_at_k(recs, truth, k))


def test_recall_curve_counts_a_repeated_item_once_and_rejects_bad_input():
    # truth {a}, ranked [a, a]: 1.0 at K = 1 and stays 1.0 (not 2.0) at K = 2
    assert metrics.recall_curve([[b"a", b"a"]], [{b"a"}], 2) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="no user"):
        metrics.recall_curve([[b"a"]], [set()], 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        metrics.recall_curve([[b"a"]], [{b"a"}], 0)


# Shared by the ranking-metric tests, k = 3:
#   user A: truth {a, c} (2 items), hits at ranks 1 and 3
#   user B: truth {w, x, y, z} (4 items, more than k), hits at ranks 2 and 3
#   user C: empty truth, skipped
RANKED_RECS = [[b"a", b"b", b"c", b"d"], [b"q", b"x", b"y", b"z"], [b"a", b"b", b"c"]]
RANKED_TRUTH = [{b"a", b"c"}, {b"w", b"x", b"y", b"z"}, set()]


def test_ndcg_at_k_hand_computed():
    # A: DCG = 1/log2(2) + 1/log2(4) = 1 + 0.5 = 1.5; IDCG over min(2, 3) = 2 hits = 1 + 1/log2(3) = 1.6309
    #    -> 0.91972
    ndcg_a = 1.5 / (1 + 1 / math.log2(3))
    # B: DCG = 1/log2(3) + 1/log2(4) = 0.6309 + 0.5 = 1.1309; IDCG over min(4, 3) = 3 hits = 1 + 0.6309 + 0.5
    #    = 2.1309 -> 0.53072
    ndcg_b = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3) + 0.5)
    # C skipped -> mean (0.91972 + 0.53072) / 2 = 0.72522
    assert metrics.ndcg_at_k(RANKED_RECS, RANKED_TRUTH, 3) == pytest.approx((ndcg_a + ndcg_b) / 2)
    assert metrics.ndcg_at_k(RANKED_RECS, RANKED_TRUTH, 3) == pytest.approx(0.72522, abs=1e-5)


def test_map_at_k_hand_computed():
    # A: P(1) = 1/1 at rank 1, P(3) = 2/3 at rank 3; AP = (1 + 2/3) / min(2, 3) = 5/6
    # B: P(2) = 1/2 at rank 2, P(3) = 2/3 at rank 3; AP = (1/2 + 2/3) / min(4, 3) = (7/6) / 3 = 7/18
    # C skipped -> mean (15/18 + 7/18) / 2 = 11/18 = 0.6111
    assert metrics.map_at_k(RANKED_RECS, RANKED_TRUTH, 3) == pytest.approx(11 / 18)


def test_ndcg_and_map_perfect_and_single_hit():
    # truth {a, b}, ranked [a, b]: DCG = IDCG, AP = (1/1 + 2/2) / 2 = 1
    assert metrics.ndcg_at_k([[b"a", b"b"]], [{b"a", b"b"}], 2) == pytest.approx(1.0)
    assert metrics.map_at_k([[b"a", b"b"]], [{b"a", b"b"}], 2) == pytest.approx(1.0)
    # truth {b}, ranked [a, b], k = 12: DCG = 1/log2(3), IDCG = 1 -> 0.6309; AP = (1/2) / min(1, 12) = 0.5
    assert metrics.ndcg_at_k([[b"a", b"b"]], [{b"b"}], 12) == pytest.approx(1 / math.log2(3))
    assert metrics.map_at_k([[b"a", b"b"]], [{b"b"}], 12) == pytest.approx(0.5)
    # k = 1 cuts the hit at rank 2 off: both 0
    assert metrics.ndcg_at_k([[b"a", b"b"]], [{b"b"}], 1) == 0.0
    assert metrics.map_at_k([[b"a", b"b"]], [{b"b"}], 1) == 0.0


def test_repeated_recommendation_counts_once():
    # truth {a, b}, ranked [a, a, b]: the second a is not a hit.
    # NDCG: DCG = 1 + 0 + 1/log2(4) = 1.5, IDCG = 1 + 1/log2(3) -> 0.91972 (not above 1)
    assert metrics.ndcg_at_k([[b"a", b"a", b"b"]], [{b"a", b"b"}], 3) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    # AP: (1/1 + 2/3) / 2 = 5/6 (Kaggle apk skips p already in predicted[:i])
    assert metrics.map_at_k([[b"a", b"a", b"b"]], [{b"a", b"b"}], 3) == pytest.approx(5 / 6)


def test_ndcg_and_map_reject_no_truth_and_bad_k():
    for fn in (metrics.ndcg_at_k, metrics.map_at_k):
        with pytest.raises(ValueError, match="no user"):
            fn([[b"a"], [b"b"]], [set(), set()], 1)
        with pytest.raises(ValueError, match="k must be >= 1"):
            fn([[b"a"]], [{b"a"}], 0)


def test_coverage_at_k_hand_computed():
    recs = [[b"a", b"b", b"c"], [b"a", b"d", b"e"], []]
    # top-2: {a, b} | {a, d} = {a, b, d} -> 3 / 10
    assert metrics.coverage_at_k(recs, 2, 10) == pytest.approx(0.3)
    # top-3: {a, b, c, d, e} -> 5 / 10
    assert metrics.coverage_at_k(recs, 3, 10) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="catalogue_size"):
        metrics.coverage_at_k(recs, 3, 0)
    with pytest.raises(ValueError, match="5 distinct items"):
        metrics.coverage_at_k(recs, 3, 4)


def test_metric_table_keys_and_values():
    table = metrics.metric_table(RANKED_RECS, RANKED_TRUTH, [1, 3], catalogue_size=20)
    assert list(table) == ["recall@1", "recall@3", "ndcg@10", "map@12", "coverage@1", "coverage@3"]
    # recall@1: A 1/2, B 0/4 -> 0.25; recall@3: A 2/2, B 2/4 -> 0.75
    assert table["recall@1"] == pytest.approx(0.25)
    assert table["recall@3"] == pytest.approx(0.75)
    # k = 10 and 12 see every list whole (4 items), so A and B are as at k = 3 except B's IDCG / AP denominators,
    # now over min(4, k) = 4 hits. ndcg B: DCG = 1/log2(3) + 1/log2(4) + 1/log2(5) = 0.6309 + 0.5 + 0.4307
    # = 1.5616, IDCG = 1 + 0.6309 + 0.5 + 0.4307 = 2.5616 -> 0.60962; A 0.91972 -> mean 0.76467
    ndcg_b = (1 / math.log2(3) + 0.5 + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 0.5 + 1 / math.log2(5))
    assert table["ndcg@10"] == pytest.approx((1.5 / (1 + 1 / math.log2(3)) + ndcg_b) / 2)
    # map B: (1/2 + 2/3 + 3/4) / min(4, 12) = (23/12) / 4 = 23/48; A 5/6 = 40/48 -> mean 63/96 = 0.65625
    assert table["map@12"] == pytest.approx(63 / 96)
    # coverage@1: {a, q} (C's top-1 is a too) -> 2/20; coverage@3: {a, b, c, q, x, y} -> 6/20
    assert table["coverage@1"] == pytest.approx(0.1)
    assert table["coverage@3"] == pytest.approx(0.3)


def test_per_user_values_behind_each_mean():
    recs = [[b"a", b"b", b"c"], [b"x", b"y", b"z"], [b"q"]]
    truth = [{b"a", b"c"}, {b"q"}, set()]  # the third user has no truth: skipped, as by the means
    # recall@1: user 1 hits a of {a, c} -> 1/2; user 2 -> 0
    np.testing.assert_array_equal(metrics.recall_per_user(recs, truth, 1), [0.5, 0.0])
    # ndcg@3, user 1: hits at ranks 1 and 3 -> DCG 1 + 1/log2(4) = 1.5; IDCG 1 + 1/log2(3) = 1.6309 -> 0.9197
    np.testing.assert_allclose(metrics.ndcg_per_user(recs, truth, 3), [1.5 / (1 + 1 / math.log2(3)), 0.0])
    # map@3, user 1: P@1 = 1 and P@3 = 2/3 over min(2, 3) -> (1 + 2/3) / 2 = 5/6
    np.testing.assert_allclose(metrics.map_per_user(recs, truth, 3), [5 / 6, 0.0])
    table = metrics.per_user_table(recs, truth, ks=[1, 3])
    assert list(table) == ["recall@1", "recall@3", "ndcg@10", "map@12"]
    # each mean is computed from the very same per-user values: equal to the last bit
    for k in (1, 3):
        values = metrics.recall_per_user(recs, truth, k).tolist()
        assert metrics.recall_at_k(recs, truth, k) == sum(values) / len(values)
    values = metrics.ndcg_per_user(recs, truth, 10).tolist()
    assert metrics.metric_table(recs, truth, [1], 10)["ndcg@10"] == sum(values) / len(values)
    assert metrics.recall_per_user([[b"a"]], [set()], 1).shape == (0,)  # no user with truth: empty, no error
