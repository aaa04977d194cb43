"""Bootstrap intervals over users: seeded, vectorised, paired."""

import numpy as np
import pytest

from twotower.evaluation import bootstrap as bs


def test_resample_means_equal_the_explicit_draws():
    # The reference: the same generator's [samples, users] draws of user indices, averaged row by row.
    values = np.random.default_rng(1).random((50, 3))
    means = bs.resample_means(values, samples=200, seed=5)
    draws = np.random.default_rng(5).integers(0, 50, size=(200, 50))  # one chunk: 200 x 50 < CHUNK_ENTRIES
    np.testing.assert_allclose(means, values[draws].mean(axis=1), rtol=1e-12)


def test_intervals_are_reproducible_with_a_seed_and_contain_the_point_estimate():
    rng = np.random.default_rng(0)
    per_user = {"model": {"recall@10": rng.random(300)}, "popularity": {"recall@10": rng.random(300) / 2}}
    first = bs.bootstrap(per_user, samples=1000, seed=3)
    assert first.intervals() == bs.bootstrap(per_user, samples=1000, seed=3).intervals()
    assert first.intervals() != bs.bootstrap(per_user, samples=1000, seed=4).intervals()
    for name, table in per_user.items():
        lo, hi = first.interval(name, "recall@10")
        assert lo < table["recall@10"].mean() < hi
        # the mean of 300 uniform values has a standard error of about sqrt(1/12 / 300) = 0.0167 (half for
        # popularity): a 95% interval spans about 4 of them
        assert 0.04 < (hi - lo) * (2 if name == "popularity" else 1) < 0.09
    assert first.describe() == {"samples": 1000, "seed": 3, "users": 300, "confidence": 0.95}


def test_one_user_or_equal_values_give_a_point_interval():
    assert bs.bootstrap({"m": {"r": np.array([0.25])}}, 100, 0).interval("m", "r") == (0.25, 0.25)
    # 7 users with the same value: every resample's mean is that value
    lo, hi = bs.bootstrap({"m": {"r": np.full(7, 0.5)}}, 100, 0).interval("m", "r")
    assert lo == pytest.approx(0.5) and hi == pytest.approx(0.5)


def test_paired_difference_uses_the_same_users_for_both_models():
    # The model beats the baseline by exactly 0.05 on every user, while users differ widely from each other.
    baseline = np.random.default_rng(2).random(200)
    boot = bs.bootstrap({"model": {"r": baseline + 0.05}, "base": {"r": baseline}}, samples=500, seed=0)
    lo, hi = boot.difference("model", "base", "r")
    assert lo == pytest.approx(0.05) and hi == pytest.approx(0.05)  # paired: the user-to-user spread cancels
    # each model's own interval is about 0.08 wide, so unpaired intervals would overlap and prove nothing
    (m_lo, m_hi), (b_lo, b_hi) = boot.interval("model", "r"), boot.interval("base", "r")
    assert m_lo < b_hi and b_lo < m_hi and m_hi - m_lo > 0.05
    # the other way round: minus the same
    assert boot.difference("base", "model", "r") == pytest.approx((-0.05, -0.05))


def test_percentile_interval_by_hand():
    # 101 draws 0, 1, ..., 100: the 2.5th and 97.5th percentiles (linear interpolation) are 2.5 and 97.5
    assert bs.percentile_interval(np.arange(101)) == pytest.approx((2.5, 97.5))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same users"):
        bs.bootstrap({"a": {"r": np.zeros(3)}, "b": {"r": np.zeros(4)}}, 100, 0)
    with pytest.raises(ValueError, match="no per-user metrics"):
        bs.bootstrap({}, 100, 0)
    with pytest.raises(ValueError, match="users >= 1"):
        bs.resample_means(np.zeros((0, 2)), 100, 0)
    with pytest.raises(ValueError, match="samples must be >= 1"):
        bs.resample_means(np.zeros((3, 2)), 0, 0)


def test_chunks_of_samples_draw_the_generator_in_order(monkeypatch):
    # 50 users and chunks of 2,000 / 50 = 40 samples: 100 samples are drawn as 40 + 40 + 20
    monkeypatch.setattr(bs, "CHUNK_ENTRIES", 2_000)
    values = np.random.default_rng(1).random((50, 2))
    rng = np.random.default_rng(5)
    draws = np.concatenate([rng.integers(0, 50, size=(m, 50)) for m in (40, 40, 20)])
    np.testing.assert_allclose(bs.resample_means(values, 100, seed=5), values[draws].mean(axis=1), rtol=1e-12)


def test_ten_thousand_users_have_the_textbook_width():
    # the mean of 10,000 uniforms: standard error sqrt(1/12 / 10,000) = 0.00289, a 95% interval about
    # 2 x 1.96 x 0.00289 = 0.0113 wide around the sample mean
    values = np.random.default_rng(9).random((10_000, 2))
    boot = bs.bootstrap({"m": {"a": values[:, 0], "b": values[:, 1]}}, samples=1000, seed=0)
    assert boot.draws.shape == (1000, 2)
    for column, metric in enumerate("ab"):
        lo, hi = boot.interval("m", metric)
        assert lo < values[:, column].mean() < hi and 0.0095 < hi - lo < 0.013
