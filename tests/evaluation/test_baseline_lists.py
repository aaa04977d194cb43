"""Every baseline's lists on a tiny hand-made HeldOut: fit on the known interactions, same exclusions, fills.

Known interactions (item, day):                  catalogue a, b, c, d, e
  u1: a@1, b@8, a@9      u2: c@10, b@5      u3: b@2, c@2, d@2, d@1
Held-out users: u1, u2 and u4 (no known interaction).

  all-time counts a 2, b 3, c 2, d 2, e 0   -> popularity [b, a, c, d] (ties by id)
  window_days 2: t > day 10 - 2 = day 8     -> a@9, c@10: a 1, c 1 (tie: all-time 2 = 2, then id)
                                            -> recent_popularity [a, c, b, d, e]
"""

import dataclasses

import numpy as np
import pytest

from twotower.config import load_profile
from twotower.evaluation import baseline_lists as bl
from twotower.evaluation import baselines
from twotower.evaluation.held_out import HeldOut

DAY = 86_400
KNOWN = [
    (b"u1", b"a", 1),
    (b"u1", b"b", 8),
    (b"u1", b"a", 9),
    (b"u2", b"c", 10),
    (b"u2", b"b", 5),
    (b"u3", b"b", 2),
    (b"u3", b"c", 2),
    (b"u3", b"d", 2),
    (b"u3", b"d", 1),
]
USERS = [b"u1", b"u2", b"u4"]


def _held_out(exclude_seen: bool) -> HeldOut:
    users, items, days = zip(*KNOWN, strict=True)
    seen = {}
    if exclude_seen:
        for user, item, _ in KNOWN:
            seen.setdefault(user, set()).add(item)
    return HeldOut(
        users=USERS,
        truth=[{b"e"}] * 3,
        queries={},
        seen=seen,
        known_users=np.array(users, dtype=object),
        known_items=np.array(items, dtype=object),
        known_times=np.array(days, dtype=np.int64) * DAY,
        catalogue=[b"a", b"b", b"c", b"d", b"e"],
        interactions=3,
    )


def _profile(exclude_seen: bool, **evaluator):
    profile = load_profile("hm")
    ev = dataclasses.replace(profile.evaluator, exclude_seen=exclude_seen, window_days=2, **evaluator)
    return dataclasses.replace(profile, evaluator=ev)


def test_fill_keeps_head_order_then_ranking_without_excluded_or_repeated_items():
    assert bl.fill([b"c", b"a"], [b"a", b"b", b"d", b"e"], {b"b"}, 3) == [b"c", b"a", b"d"]
    assert bl.fill([], [b"a", b"b"], set(), 5) == [b"a", b"b"]  # a short ranking gives a short list


def test_every_baseline_by_hand_without_exclusions():
    lists, skipped = bl.baseline_lists(_profile(False), _held_out(False), k=3)
    assert list(lists) == ["popularity", "recent_popularity", "repurchase", "item_knn", "ease"] and skipped == {}
    assert lists["popularity"] == [[b"b", b"a", b"c"]] * 3
    assert lists["recent_popularity"] == [[b"a", b"c", b"b"]] * 3
    # repurchase: own items most recent first (a bought again on day 9 counts at day 9), then recent popularity
    #   u1: a@9, b@8 -> [a, b] + c     u2: c@10, b@5 -> [c, b] + a     u4: nothing of its own -> [a, c, b]
    assert lists["repurchase"] == [[b"a", b"b", b"c"], [b"c", b"b", b"a"], [b"a", b"c", b"b"]]
    # item_knn: users u1 {a,b}, u2 {b,c}, u3 {b,c,d}; users per item a 1, b 3, c 2, d 1; cosine
    #   (a,b) 1/sqrt(3) = .5774, (b,c) 2/sqrt(6) = .8165, (b,d) 1/sqrt(3) = .5774, (c,d) 1/sqrt(2) = .7071
    #   u1 {a,b}: c .8165; a, b, d .5774 (ties by id)          -> [c, a, b]
    #   u2 {b,c}: d .5774 + .7071 = 1.2845; b, c .8165; a .5774  -> [d, b, c]
    #   u4: no history -> popularity                            -> [b, a, c]
    assert lists["item_knn"] == [[b"c", b"a", b"b"], [b"d", b"b", b"c"], [b"b", b"a", b"c"]]
    # one neighbour per item: a -> b, b -> c, c -> b, d -> c; u1 {a,b}: c .8165, b .5774, then popularity's a
    one = bl.baseline_lists(_profile(False, knn_neighbours=1), _held_out(False), k=3)[0]
    assert one["item_knn"][0] == [b"c", b"b", b"a"]


def test_every_baseline_leaves_out_the_same_seen_items():
    lists, _ = bl.baseline_lists(_profile(True), _held_out(True), k=3)
    # seen: u1 {a, b}, u2 {b, c}, u4 nothing
    assert lists["popularity"] == [[b"c", b"d"], [b"a", b"d"], [b"b", b"a", b"c"]]  # popularity knows a-d only
    assert lists["recent_popularity"] == [[b"c", b"d", b"e"], [b"a", b"d", b"e"], [b"a", b"c", b"b"]]
    assert lists["repurchase"] == lists["recent_popularity"]  # every own item is seen
    # item_knn without the history: u1 c .8165, d .5774 (popularity adds nothing unseen); u2 d 1.2845, a .5774
    assert lists["item_knn"] == [[b"c", b"d"], [b"d", b"a"], [b"b", b"a", b"c"]]
    for name, recs in lists.items():
        for user, row in zip(USERS, recs, strict=True):
            assert not set(row) & _held_out(True).seen.get(user, set()), name


def test_baselines_are_computed_as_configured_and_ease_skips_are_explained(monkeypatch):
    lists, skipped = bl.baseline_lists(_profile(False, baselines=("popularity", "repurchase")), _held_out(False), 3)
    assert list(lists) == ["popularity", "repurchase"] and skipped == {}
    lists, skipped = bl.baseline_lists(_profile(False, ease_l2=0.0), _held_out(False), 3)
    assert "ease" not in lists and skipped == {"ease": "evaluator.ease_l2 is 0"}
    monkeypatch.setattr(baselines, "MAX_EASE_ITEMS", 4)
    lists, skipped = bl.baseline_lists(_profile(False), _held_out(False), 3)
    assert "ease" not in lists and skipped == {"ease": "5 items > 4 (its dense inverse would not fit)"}
    assert "item_knn" in lists  # item_knn runs where EASE cannot


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_lists_are_deterministic(exclude_seen):
    first = bl.baseline_lists(_profile(exclude_seen), _held_out(exclude_seen), k=4)
    assert bl.baseline_lists(_profile(exclude_seen), _held_out(exclude_seen), k=4) == first
