"""The HTML page of a drift report (``drift.compare``'s result): one self-contained file.

Inline CSS, the distance/threshold bar chart as a base64 PNG (matplotlib's Agg
canvas, no pyplot state), no external links; every string from the data is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Dict, List, Tuple

METRIC_LABELS = {"l_infinity": "L∞", "jensen_shannon": "JS"}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:60em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}h3{font-size:1em;margin-bottom:.3em}
.headline{font-size:1.1em;padding:.6em .8em;border-radius:4px}.bad{background:#fdecea}.good{background:#eaf7ee}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}
.drift{color:#b03a2e;font-weight:bold}.ok{color:#1e8449}.none{color:#888}img{max-width:100%}
"""


def _plot_png(features: List[Dict[str, Any]]) -> bytes:
    """Returns a PNG bar chart of distance/threshold per measured feature, drifted bars red, a line at 1.0."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [f for f in features if f["distance"] is not None][::-1]  # highest ratio at the top
    ratios = [f["distance"] / f["threshold"] for f in shown]
    figure = Figure(figsize=(8, 1.2 + 0.35 * len(shown)), dpi=100)
    axes = figure.add_subplot()
    axes.barh(
        [f"{f['feature']} ({METRIC_LABELS.get(f['metric'], f['metric'])})" for f in shown],
        ratios,
        color=["#c0392b" if f["drifted"] else "#7f8c8d" for f in shown],
    )
    axes.axvline(1.0, color="#222", linestyle="--", linewidth=1)
    axes.set_xlim(0, max([1.2, *ratios]) * 1.05)
    axes.set_xlabel("distance / threshold (drift above 1.0)")
    figure.tight_layout()
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _table(header: List[str], rows: List[List[str]], numeric: Tuple[int, ...] = ()) -> str:
    """Returns an HTML table; cells are HTML already (escape before), columns in ``numeric`` right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td class='num'>{c}</td>" if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: Dict[str, Any], title: str) -> str:
    """Returns ``report`` (from ``compare``) as one self-contained HTML page: inline CSS, the plot as a data URI."""
    features, drifted = report["features"], report["drifted"]
    esc = html.escape
    headline = (
        f"{len(drifted)} of {len(features)} features drifted: baseline {report['baseline_examples']:,} examples, "
        f"current {report['current_examples']:,} examples"
    )
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>",
        f"<p class='headline {'bad' if drifted else 'good'}'>{esc(headline)}</p>",
    ]
    if any(f["distance"] is not None for f in features):
        png = base64.b64encode(_plot_png(features)).decode("ascii")
        parts.append(f"<img alt='distance / threshold per feature' src='data:image/png;base64,{png}'>")
    rows = []
    for f in features:
        if f["distance"] is None:
            status, distance = f"<span class='none'>not measured: {esc(f['note'])}</span>", "–"
        else:
            status = "<span class='drift'>DRIFT</span>" if f["drifted"] else "<span class='ok'>ok</span>"
            distance = f"{f['distance']:.4g}"
        rows.append([esc(f["feature"]), esc(f["kind"]), esc(f["metric"]), distance, f"{f['threshold']:.4g}", status])
    parts.append("<h2>Features</h2>")
    parts.append(_table(["feature", "kind", "metric", "distance", "threshold", "status"], rows, numeric=(3, 4)))
    for f in features:
        if not f["drifted"]:
            continue
        parts.append(f"<h3>{esc(f['feature'])}: values that changed most</h3>")
        changes = [
            [
                esc(str(c["value"])),
                f"{c['baseline']:.1%}",
                f"{c['current']:.1%}",
                f"{c['current'] - c['baseline']:+.1%}",
            ]
            for c in f["top_changes"]
        ]
        parts.append(_table(["value", "baseline", "current", "change"], changes, numeric=(1, 2, 3)))
    parts.append("</body></html>\n")
    return "\n".join(parts)
