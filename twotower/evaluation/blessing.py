"""The blessing: thresholds, the lift over popularity and over the best baseline, and no regression.

At Recall@``evaluator.blessing_k``, the model is blessed when it reaches ``min_recall``,
``min_lift_over_popularity`` x popularity, ``min_lift_over_best_baseline`` x the best of ``bless_against``
(every computed baseline when empty) and (1 - ``max_regression``) x the last blessed model; with
``require_significance`` the 95% interval of the paired difference model - best baseline must also lie
above 0. The reason always states that paired difference and its interval.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from twotower.config import Profile
from twotower.evaluation import metrics
from twotower.evaluation.bootstrap import Bootstrap

MODEL = "twotower"


def best_baseline(tables: Mapping[str, Mapping[str, float]], against: List[str], key: str) -> str:
    """Returns the baseline of ``against`` with the highest ``key``; on a tie the one listed first."""
    return max(against, key=lambda name: tables[name][key])  # max keeps the first of equal maxima


def _signed(x: float) -> str:
    return f"{x:+.4f}"


def compare_best(
    tables: Mapping[str, Mapping[str, float]],
    against: List[str],
    key: str,
    min_lift: float,
    require_significance: bool,
    boot: Optional[Bootstrap],
) -> Tuple[bool, str, Dict[str, Any]]:
    """Returns (passes, reason clause, metrics.json fields) of the model against the best of ``against``.

    Passes when model >= ``min_lift`` x best and, with ``require_significance``, the paired difference's
    interval (``boot``) lies above 0.
    """
    model = tables[MODEL][key]
    best = best_baseline(tables, against, key)
    value = tables[best][key]
    interval = list(boot.difference(MODEL, best, key)) if boot is not None else None
    difference = f"paired difference {_signed(model - value)}"
    if interval is None:
        difference += ", no interval (evaluator.bootstrap_samples is 0)"
    else:
        difference += f", 95% CI [{_signed(interval[0])}, {_signed(interval[1])}]"
    ok = model >= min_lift * value
    clause = f"recall {model:.4f} {'>=' if ok else '<'} {min_lift:g} x best baseline {best} {value:.4f} ({difference})"
    if require_significance:
        significant = interval is not None and interval[0] > 0
        clause += " whose interval is " + ("above 0" if significant else "not above 0") + " (require_significance)"
        ok = ok and significant
    fields = {
        "best_baseline": best,
        "best_baseline_recall": value,
        "difference": {"value": model - value, "interval": interval},
    }
    return ok, clause, fields


def blessing(
    profile: Profile,
    tables: Mapping[str, Dict[str, float]],
    baseline: Optional[Dict[str, Any]],
    boot: Optional[Bootstrap],
    skipped: Mapping[str, str],
) -> Dict[str, Any]:
    """Returns metrics.json's ``blessing``: {metric, blessed, reason, last_blessed_recall, max_regression, against,
    not_computed, best_baseline, best_baseline_recall, difference, min_lift_over_best_baseline, require_significance}.

    ``tables``: {model: metric table} with this run's model and baselines; ``baseline``: the last blessed model's
    section (None on a first run; without ``metrics`` when it could not be scored: no regression check);
    ``boot``: the bootstrap over the same users (None when ``evaluator.bootstrap_samples`` is 0); ``skipped``:
    {baseline: why it was not computed}.
    """
    ev = profile.evaluator
    key = f"recall@{ev.blessing_k}"
    blessed_recall = baseline["metrics"][key] if baseline is not None and "metrics" in baseline else None
    blessed, reason = metrics.bless(
        tables[MODEL][key],
        tables["popularity"][key],
        ev.min_recall,
        ev.min_lift_over_popularity,
        blessed_recall,
        ev.max_regression,
    )
    wanted = list(ev.bless_against or ev.baselines)
    against = [name for name in wanted if name in tables]
    not_computed = {name: skipped.get(name, "not computed") for name in wanted if name not in tables}
    fields: Dict[str, Any] = {"best_baseline": None, "best_baseline_recall": None, "difference": None}
    if against:
        ok, clause, fields = compare_best(
            tables, against, key, ev.min_lift_over_best_baseline, ev.require_significance, boot
        )
        blessed = blessed and ok
        reason += f"; {clause}"
    if not_computed:
        reason += "; not compared: " + ", ".join(f"{name} ({why})" for name, why in not_computed.items())
    if baseline is None:
        reason += "; no blessed model yet: no regression check"
    elif blessed_recall is None:
        reason += f"; last blessed model not compared ({baseline['error']})"
    return {
        "metric": key,
        "blessed": blessed,
        "reason": reason,
        "last_blessed_recall": blessed_recall,
        "max_regression": ev.max_regression,
        "against": against,
        "not_computed": not_computed,
        **fields,
        "min_lift_over_best_baseline": ev.min_lift_over_best_baseline,
        "require_significance": ev.require_significance,
    }
