"""What more than one command prints: metric tables and ranked recommendations. No TensorFlow here."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

LAST_BLESSED = "last_blessed"  # the evaluator's name for the last blessed model (evaluation.evaluate.LAST_BLESSED)


def _cell(value: float, interval: Optional[Sequence[float]]) -> str:
    """Returns ``value`` with 4 decimals, followed by ``[lo, hi]`` with 3 when there is an interval."""
    if interval is None:
        return f"{value:.4f}"
    return f"{value:.4f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def print_models(
    models: Mapping[str, Dict[str, float]], intervals: Optional[Mapping[str, Mapping[str, Sequence[float]]]] = None
) -> None:
    """Prints one row per model and one column per metric; a metric with an interval shows it as ``[lo, hi]``."""
    intervals = intervals or {}
    keys = list(next(iter(models.values())))
    cells = {name: [_cell(table[k], intervals.get(name, {}).get(k)) for k in keys] for name, table in models.items()}
    widths = [max(13, len(k) + 2, *(len(row[j]) + 2 for row in cells.values())) for j, k in enumerate(keys)]
    print(f"{'model':<18}" + "".join(f"{k:>{w}}" for k, w in zip(keys, widths, strict=True)))
    for name, row in cells.items():
        print(f"{name:<18}" + "".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True)))


def print_evaluation(metrics: Dict[str, Any]) -> None:
    """Prints the evaluator's table (model, every baseline, last blessed model) with the 95% intervals, then the
    blessing reason (which holds the paired difference to the best baseline and its interval).

    ``metrics``: metrics.json content (``evaluation.evaluate``).
    """
    models = metrics.get("models", {})
    if not models:
        return
    intervals = dict(metrics.get("intervals") or {})
    last_blessed = metrics.get("baseline") or {}
    if "metrics" in last_blessed:  # the last blessed model, scored on the same users
        models = {**models, LAST_BLESSED: last_blessed["metrics"]}
        intervals[LAST_BLESSED] = last_blessed.get("intervals") or {}
    print_models(models, intervals)
    boot = metrics.get("bootstrap")
    if boot:
        print(
            f"[lo, hi]: {boot['confidence']:.0%} bootstrap interval over the {boot['users']:,} users "
            f"({boot['samples']:,} resamples, seed {boot['seed']})"
        )
    for name, why in (metrics.get("baselines") or {}).get("skipped", {}).items():
        print(f"{name}: not computed, {why}")
    held_out = metrics.get("held_out_split", "eval")
    blessing = metrics["blessing"]
    print(
        f"{held_out} users: {metrics['eval_users']:,}; {'BLESSED' if blessing['blessed'] else 'NOT blessed'}: "
        f"{blessing['reason']}"
    )
    if "metrics" in last_blessed:
        print(f"{LAST_BLESSED}: the model blessed before, {last_blessed['uri']}")
    elif last_blessed:
        print(f"last blessed model {last_blessed['uri']} not compared: {last_blessed['error']}")


def print_recommendations(title: str, recs: Sequence[Any]) -> None:
    """Prints ``title`` and one ranked line per recommendation (``item_id``, ``name``, ``score``)."""
    print(title)
    for rank, rec in enumerate(recs, 1):
        print(f"  {rank:>2}. {rec.item_id}  {rec.name:<40.40}  {rec.score:.3f}")
