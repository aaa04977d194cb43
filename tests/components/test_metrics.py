"""Retrieval metrics, with expectations worked out by hand next to each assertion."""

import pytest

from twotower.components.evaluator import metrics


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
