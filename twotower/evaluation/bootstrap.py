"""Bootstrap intervals over users: how much a metric could move with another draw of held-out users.

Each sample draws the held-out users with replacement (seeded) and takes every (model, metric) column's mean
over the draw; the 95% interval is the 2.5th to 97.5th percentile of the sample means. All columns share the
same draws, so the difference of two models on one sample is a *paired* difference: same users for both.
Vectorised: a [samples, users] matrix of draw counts times the [users, columns] per-user values.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Tuple

import numpy as np

CONFIDENCE = 0.95
# Entries of the [samples, users] count matrix built at a time (2^22 float64 = 32 MB). It depends on the number of
# users only, so a seed gives the same draws whatever the columns.
CHUNK_ENTRIES = 2**22


def resample_means(values: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Returns [samples, columns] float64: each column's mean over users drawn with replacement.

    ``values``: [users, columns] per-user metric values. Sample s draws ``users`` users uniformly with
    replacement from ``np.random.default_rng(seed)``; the same seed, users and samples give the same draws.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 1:
        raise ValueError(f"resample_means: values must be [users >= 1, columns], got shape {values.shape}")
    if samples < 1:
        raise ValueError(f"resample_means: samples must be >= 1, got {samples}")
    n = values.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty((samples, values.shape[1]))
    chunk = max(1, CHUNK_ENTRIES // n)
    for start in range(0, samples, chunk):
        m = min(chunk, samples - start)
        drawn = rng.integers(0, n, size=(m, n)) + n * np.arange(m)[:, np.newaxis]
        counts = np.bincount(drawn.ravel(), minlength=m * n).reshape(m, n).astype(np.float64)
        out[start : start + m] = counts @ values / n
    return out


def percentile_interval(draws: np.ndarray, confidence: float = CONFIDENCE) -> Tuple[float, float]:
    """Returns (lo, hi): the (1 - confidence) / 2 and (1 + confidence) / 2 percentiles of 1-D ``draws``."""
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(np.asarray(draws, dtype=np.float64), [tail, 100 - tail])
    return float(lo), float(hi)


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """Sample means of every (model, metric) column on the same resampled users."""

    columns: List[Tuple[str, str]]  # (model, metric) of each column of ``draws``
    draws: np.ndarray  # [samples, columns]
    users: int
    seed: int

    def _column(self, model: str, metric: str) -> np.ndarray:
        return self.draws[:, self.columns.index((model, metric))]

    def interval(self, model: str, metric: str) -> Tuple[float, float]:
        """Returns the 95% percentile interval of ``model``'s ``metric``."""
        return percentile_interval(self._column(model, metric))

    def difference(self, model: str, other: str, metric: str) -> Tuple[float, float]:
        """Returns the 95% interval of ``model`` minus ``other`` at ``metric``, paired: same users in each sample."""
        return percentile_interval(self._column(model, metric) - self._column(other, metric))

    def intervals(self) -> Dict[str, Dict[str, List[float]]]:
        """Returns {model: {metric: [lo, hi]}} for every column (metrics.json's ``intervals``)."""
        out: Dict[str, Dict[str, List[float]]] = {}
        for model, metric in self.columns:
            out.setdefault(model, {})[metric] = list(self.interval(model, metric))
        return out

    def describe(self) -> Dict[str, object]:
        """Returns metrics.json's ``bootstrap`` section: how the intervals were drawn."""
        return {"samples": int(self.draws.shape[0]), "seed": self.seed, "users": self.users, "confidence": CONFIDENCE}


def bootstrap(per_user: Mapping[str, Mapping[str, np.ndarray]], samples: int, seed: int) -> Bootstrap:
    """Returns the bootstrap of every model's per-user metrics, all columns on the same draws of users.

    ``per_user``: {model: {metric: [users] values}} (``metrics.per_user_table``); every array must cover the same
    users in the same order, which makes the differences between models paired.
    """
    columns = [(model, metric) for model, table in per_user.items() for metric in table]
    if not columns:
        raise ValueError("bootstrap: no per-user metrics given")
    sizes = {len(per_user[m][k]) for m, k in columns}
    if len(sizes) != 1:
        raise ValueError(f"bootstrap: per-user arrays must cover the same users, got lengths {sorted(sizes)}")
    values = np.stack([per_user[m][k] for m, k in columns], axis=1)
    return Bootstrap(columns, resample_means(values, samples, seed), users=values.shape[0], seed=seed)
