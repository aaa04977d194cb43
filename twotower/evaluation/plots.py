"""The evaluator's PNG plots: Recall@K curves per model and training loss per epoch by phase.

Each function returns the PNG as bytes, so the caller writes it wherever the
artifact lives (local disk or a bucket). matplotlib is imported on first use
with the Agg backend: no display is needed.
"""

from __future__ import annotations

import io
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

# Fixed colours per model so the same model looks the same in every run's plot.
MODEL_COLOURS = {
    "twotower": "tab:blue",
    "popularity": "tab:gray",
    "recent_popularity": "tab:brown",
    "repurchase": "tab:purple",
    "item_knn": "tab:cyan",
    "ease": "tab:orange",
    "last_blessed": "tab:green",
}
MODEL_LABELS = {"twotower": "twotower (this run)", "last_blessed": "last blessed model"}
PHASE_COLOURS = ("#e8eef7", "#f7efe3", "#e9f4e8", "#f4e8f1")
DPI = 100


def _pyplot() -> Any:
    """Returns matplotlib.pyplot on the Agg backend; a clear error when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("the evaluator plots need matplotlib: pip install matplotlib (-c constraints.txt)") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    """Returns ``fig`` rendered as PNG bytes and closes it."""
    plt = _pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def recall_at_k_png(
    curves: Mapping[str, Sequence[float]],
    title: str,
    blessing_k: Optional[int] = None,
    min_recall: Optional[float] = None,
    intervals: Optional[Mapping[str, Mapping[int, Sequence[float]]]] = None,
) -> bytes:
    """Returns a PNG of Recall@K against K = 1..len(curve), one line per model.

    ``curves``: {model name: [recall@1, recall@2, ...]} (``metrics.recall_curve``). ``blessing_k`` and
    ``min_recall``, when given, draw the K the blessing reads and its threshold. ``intervals``: {model: {K:
    [lo, hi]}}, drawn as error bars at those K, each model's nudged sideways so that they do not overlap.
    """
    if not curves:
        raise ValueError("recall_at_k_png: no curves to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    k_max = max(len(c) for c in curves.values())
    nudge = k_max / 150
    for i, (name, curve) in enumerate(curves.items()):
        ks = range(1, len(curve) + 1)
        width = 2 if name == "twotower" else 1.5
        colour = MODEL_COLOURS.get(name)
        line = ax.plot(ks, curve, label=MODEL_LABELS.get(name, name), color=colour, linewidth=width)[0]
        bars = [(k, lo, hi) for k, (lo, hi) in sorted((intervals or {}).get(name, {}).items()) if k <= len(curve)]
        if bars:
            xs = [k + (i - (len(curves) - 1) / 2) * nudge for k, _, _ in bars]
            ys = [curve[k - 1] for k, _, _ in bars]
            below = [max(0.0, y - lo) for y, (_, lo, _) in zip(ys, bars, strict=True)]
            above = [max(0.0, hi - y) for y, (_, _, hi) in zip(ys, bars, strict=True)]
            ax.errorbar(xs, ys, yerr=[below, above], fmt="none", ecolor=line.get_color(), elinewidth=1, capsize=2)
    if blessing_k is not None:
        ax.axvline(blessing_k, color="black", linestyle=":", linewidth=1, label=f"blessing K = {blessing_k}")
    if min_recall is not None and min_recall > 0:
        ax.axhline(min_recall, color="tab:red", linestyle="--", linewidth=1, label=f"min recall {min_recall:g}")
    ax.set_xlabel("K" + (" (bars: 95% bootstrap intervals over users)" if intervals else ""))
    ax.set_ylabel("Recall@K")
    ax.set_xlim(1, k_max + 2 * nudge * len(curves) if intervals else k_max)
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")  # beside the axes: never on a curve
    return _png(fig)


def _number(value: Any) -> Optional[float]:
    """Returns ``value`` as a float, or None for a missing, null or non-finite value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def check_history(history: Any, where: str) -> Dict[str, Any]:
    """Returns ``history`` (the Trainer's history.json) when it has the expected shape; else raises ValueError.

    Shape: {"phases": [{"name", "first_epoch", "last_epoch"}, ...], "epochs": [{"epoch", "phase", "loss",
    "val_loss"?, "learning_rate"?}, ...]}; ``where`` names the file in the message.
    """
    if not isinstance(history, Mapping):
        raise ValueError(f"{where}: expected a JSON object with 'phases' and 'epochs'")
    for key in ("phases", "epochs"):
        if not isinstance(history.get(key), list):
            raise ValueError(f"{where}: '{key}' must be a list")
    if not history["epochs"]:
        raise ValueError(f"{where}: 'epochs' is empty")
    for i, phase in enumerate(history["phases"]):
        if not isinstance(phase, Mapping) or "name" not in phase:
            raise ValueError(f"{where}: phases[{i}] needs 'name', 'first_epoch' and 'last_epoch'")
        if _number(phase.get("first_epoch")) is None or _number(phase.get("last_epoch")) is None:
            raise ValueError(f"{where}: phases[{i}] ({phase['name']}) needs numeric 'first_epoch' and 'last_epoch'")
    for i, epoch in enumerate(history["epochs"]):
        if not isinstance(epoch, Mapping) or _number(epoch.get("epoch")) is None:
            raise ValueError(f"{where}: epochs[{i}] needs a numeric 'epoch'")
    return dict(history)


def loss_by_phase_png(history: Mapping[str, Any], title: str) -> bytes:
    """Returns a PNG of training and validation loss per epoch, each training phase a shaded, labelled band.

    ``history``: the Trainer's history.json (see ``check_history``); missing or null ``val_loss`` and
    ``learning_rate`` values are left out, and the learning rate, when present, goes on a second (log) axis.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = sorted(history["epochs"], key=lambda e: e["epoch"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, phase in enumerate(history["phases"]):
        left, right = phase["first_epoch"] - 0.5, phase["last_epoch"] + 0.5
        ax.axvspan(left, right, color=PHASE_COLOURS[i % len(PHASE_COLOURS)], zorder=0)
        if i:
            ax.axvline(left, color="gray", linestyle="--", linewidth=1, zorder=1)
        ax.text((left + right) / 2, 0.98, str(phase["name"]), transform=ax.get_xaxis_transform(), ha="center", va="top")
    for key, label, style in (("loss", "training loss", "-o"), ("val_loss", "validation loss", "-s")):
        points = [(e["epoch"], _number(e.get(key))) for e in epochs]
        points = [(x, y) for x, y in points if y is not None]
        if points:
            ax.plot(*zip(*points, strict=True), style, label=label, markersize=4, zorder=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3, zorder=1)
    handles, labels = ax.get_legend_handles_labels()
    rates: List[tuple] = [(e["epoch"], _number(e.get("learning_rate"))) for e in epochs]
    rates = [(x, y) for x, y in rates if y is not None and y > 0]
    if rates:
        lr_ax = ax.twinx()
        lr_ax.plot(*zip(*rates, strict=True), ":", color="tab:purple", label="learning rate")
        lr_ax.set_yscale("log")
        lr_ax.set_ylabel("learning rate")
        more_handles, more_labels = lr_ax.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if handles:
        ax.legend(handles, labels, loc="upper right", bbox_to_anchor=(1, 0.9))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    xs = [e["epoch"] for e in epochs] + [p[k] for p in history["phases"] for k in ("first_epoch", "last_epoch")]
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    return _png(fig)
