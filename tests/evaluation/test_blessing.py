"""The blessing against the best baseline, with the paired difference and its interval, worked out by hand.

Four users' Recall@50 (each table value is the mean of its row):

  twotower    1    .5   .5   0     -> 0.5
  popularity  0    .5   0    0     -> 0.125
  recent_pop  0    0    .5   0     -> 0.125
  repurchase  1    0    .5   0     -> 0.375   the best baseline unless ease counts
  item_knn    0    .5   .5   0     -> 0.25
  ease        1    1    1    1     -> 1.0

twotower - repurchase per user is [0, .5, 0, 0]: a resample's difference is .5 x (draws of user 2) / 4 with
draws ~ Binomial(4, 1/4). P(0 draws) = (3/4)^4 = 0.32 > 2.5%, so the interval starts at 0; P(>= 3 draws) =
0.051 > 2.5% but P(4) = 0.004 < 2.5%, so it ends at 3 x .5 / 4 = 0.375.
"""

import dataclasses

import numpy as np

from twotower.config import load_profile
from twotower.evaluation import blessing as bl
from twotower.evaluation.bootstrap import bootstrap

KEY = "recall@50"
PER_USER = {
    "twotower": [1, 0.5, 0.5, 0],
    "popularity": [0, 0.5, 0, 0],
    "recent_popularity": [0, 0, 0.5, 0],
    "repurchase": [1, 0, 0.5, 0],
    "item_knn": [0, 0.5, 0.5, 0],
    "ease": [1, 1, 1, 1],
}
BASE = "recall 0.5000 >= 0.1000 and >= 1 x popularity 0.1250"


def _profile(**evaluator):
    profile = load_profile("hm")
    settings = {"ks": (50,), "blessing_k": 50, "min_recall": 0.1, "min_lift_over_popularity": 1.0, **evaluator}
    return dataclasses.replace(profile, evaluator=dataclasses.replace(profile.evaluator, **settings))


def _bless(models=tuple(PER_USER)[:-1], skipped=None, samples=1000, **evaluator):
    """Returns the blessing of ``models`` (twotower and the baselines it is computed with: all but ease)."""
    evaluator.setdefault("baselines", tuple(m for m in models if m != "twotower") + tuple(skipped or ()))
    per_user = {m: {KEY: np.array(PER_USER[m], dtype=float)} for m in models}
    tables = {m: {KEY: float(np.mean(PER_USER[m]))} for m in models}
    boot = bootstrap(per_user, samples, seed=0) if samples else None
    return bl.blessing(_profile(**evaluator), tables, None, boot, skipped or {})


def test_blessed_above_the_best_baseline_with_the_paired_difference_in_the_reason():
    result = _bless()
    assert result["blessed"] is True and result["against"] == [
        "popularity",
        "recent_popularity",
        "repurchase",
        "item_knn",
    ]
    assert result["best_baseline"] == "repurchase" and result["best_baseline_recall"] == 0.375
    assert result["difference"] == {"value": 0.125, "interval": [0.0, 0.375]}
    assert result["reason"] == (
        f"{BASE}; recall 0.5000 >= 1 x best baseline repurchase 0.3750 (paired difference +0.1250, "
        "95% CI [+0.0000, +0.3750]); no blessed model yet: no regression check"
    )


def test_require_significance_needs_the_interval_above_zero():
    # the interval [0, 0.375] touches 0: not significant, not blessed
    result = _bless(require_significance=True)
    assert result["blessed"] is False and result["require_significance"] is True
    assert "(paired difference +0.1250, 95% CI [+0.0000, +0.3750]) whose interval is not above 0" in result["reason"]
    # 100 users each 0.05 above the baseline: the paired interval is [0.05, 0.05], above 0
    per_user = {"twotower": {KEY: np.full(100, 0.3)}, "popularity": {KEY: np.full(100, 0.25)}}
    tables = {m: {KEY: float(v[KEY].mean())} for m, v in per_user.items()}
    ok = bl.blessing(_profile(require_significance=True), tables, None, bootstrap(per_user, 200, 0), {})
    assert ok["blessed"] is True and "whose interval is above 0 (require_significance)" in ok["reason"]


def test_the_best_baseline_is_the_best_of_bless_against():
    # ease (1.0) beats the model; by default every computed baseline counts
    result = _bless(models=tuple(PER_USER))
    assert result["blessed"] is False and result["best_baseline"] == "ease"
    assert "; recall 0.5000 < 1 x best baseline ease 1.0000 (paired difference -0.5000" in result["reason"]
    # listed without ease, the best is repurchase again
    result = _bless(models=tuple(PER_USER), bless_against=("popularity", "repurchase"))
    assert result["blessed"] is True and result["against"] == ["popularity", "repurchase"]
    assert result["best_baseline"] == "repurchase"


def test_min_lift_over_best_baseline():
    # 0.5 < 1.5 x 0.375 = 0.5625: not blessed; 0 turns the check off (the difference is still reported)
    result = _bless(min_lift_over_best_baseline=1.5)
    assert result["blessed"] is False and "recall 0.5000 < 1.5 x best baseline repurchase 0.3750" in result["reason"]
    result = _bless(models=tuple(PER_USER), min_lift_over_best_baseline=0.0)
    assert result["blessed"] is True and "recall 0.5000 >= 0 x best baseline ease 1.0000" in result["reason"]


def test_a_baseline_that_was_not_computed_is_named():
    result = _bless(skipped={"ease": "105,542 items > 30,000 (its dense inverse would not fit)"})
    assert result["blessed"] is True and result["not_computed"] == {
        "ease": "105,542 items > 30,000 (its dense inverse would not fit)"
    }
    assert "; not compared: ease (105,542 items > 30,000 (its dense inverse would not fit))" in result["reason"]


def test_ties_go_to_the_baseline_listed_first_and_thresholds_still_come_first():
    tables = {"a": {KEY: 0.3}, "b": {KEY: 0.3}}
    assert bl.best_baseline(tables, ["b", "a"], KEY) == "b" and bl.best_baseline(tables, ["a", "b"], KEY) == "a"
    # below min_recall: not blessed for that reason, and the comparison is reported all the same
    result = _bless(min_recall=0.6)
    assert result["blessed"] is False
    assert result["reason"].startswith("recall 0.5000 < threshold 0.6000; recall 0.5000 >= 1 x best baseline")


def test_without_bootstrap_samples_there_is_no_interval():
    result = _bless(samples=0, bootstrap_samples=0)
    assert result["blessed"] is True and result["difference"] == {"value": 0.125, "interval": None}
    assert "(paired difference +0.1250, no interval (evaluator.bootstrap_samples is 0))" in result["reason"]


def test_last_blessed_suffixes():
    error = "OSError: SavedModel file does not exist"
    models = ("twotower", "popularity")
    tables = {m: {KEY: float(np.mean(PER_USER[m]))} for m in models}
    result = bl.blessing(_profile(), tables, {"uri": "/x", "error": error}, None, {})
    assert result["reason"].endswith(f"; last blessed model not compared ({error})")
    result = bl.blessing(_profile(), tables, {"uri": "/x", "metrics": {KEY: 0.6}}, None, {})
    assert result["blessed"] is False and result["last_blessed_recall"] == 0.6
