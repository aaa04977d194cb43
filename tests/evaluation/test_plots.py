"""The evaluator's plots: real PNGs rendered by matplotlib (Agg) from small curves and a training history."""

import struct

import pytest

from twotower.evaluation import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

HISTORY = {
    "phases": [
        {"name": "warmup", "first_epoch": 0, "last_epoch": 1},
        {"name": "main", "first_epoch": 2, "last_epoch": 4},
        {"name": "finetune", "first_epoch": 5, "last_epoch": 5},
    ],
    "epochs": [
        {"epoch": 0, "phase": "warmup", "loss": 5.1, "val_loss": 5.3, "learning_rate": 0.01},
        {"epoch": 1, "phase": "warmup", "loss": 4.2, "val_loss": 4.6, "learning_rate": 0.05},
        {"epoch": 2, "phase": "main", "loss": 3.5, "val_loss": None, "learning_rate": 0.05},
        {"epoch": 3, "phase": "main", "loss": 3.1, "val_loss": 3.6},
        {"epoch": 4, "phase": "main", "loss": 2.9, "val_loss": 3.5, "learning_rate": 0.02},
        {"epoch": 5, "phase": "finetune", "loss": 2.8},
    ],
}


def _png_size(path) -> tuple:
    """Returns (width, height) from the PNG header; asserts the file is a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def test_recall_plot_is_a_png(tmp_path):
    curves = {
        "twotower": [0.1, 0.18, 0.24, 0.3],
        "popularity": [0.05, 0.09, 0.12, 0.15],
        "ease": [0.12, 0.2, 0.26, 0.31],
        "last_blessed": [0.09, 0.17, 0.23, 0.29],
    }
    path = tmp_path / "recall_at_k.png"
    path.write_bytes(plots.recall_at_k_png(curves, "Recall@K", blessing_k=3, min_recall=0.02))
    width, height = _png_size(path)
    # figsize 7 x 4.5 in at 100 dpi, then cropped to the drawing ("tight"): a few hundred pixels each way
    assert 400 < width <= 800 and 250 < height <= 500
    assert path.stat().st_size > 10_000  # four lines, axes, legend: not an empty canvas
    with pytest.raises(ValueError, match="no curves"):
        plots.recall_at_k_png({}, "empty")


def test_recall_plot_draws_every_baseline_with_error_bars(tmp_path):
    curves = {
        name: [0.1 * (1 + k / 10) * (1 + i / 10) for k in range(100)] for i, name in enumerate(plots.MODEL_COLOURS)
    }
    intervals = {
        name: {k: [curve[k - 1] - 0.02, curve[k - 1] + 0.03] for k in (10, 50, 100)} for name, curve in curves.items()
    }
    plain = plots.recall_at_k_png(curves, "Recall@K", blessing_k=50)
    path = tmp_path / "recall_at_k.png"
    path.write_bytes(plots.recall_at_k_png(curves, "Recall@K", blessing_k=50, intervals=intervals))
    assert path.read_bytes() != plain and _png_size(path)[0] > 400
    # an interval at a K beyond the curve is left out rather than failing
    plots.recall_at_k_png({"twotower": [0.1, 0.2]}, "short", intervals={"twotower": {2: [0.1, 0.3], 50: [0, 1]}})


def test_loss_plot_is_a_png_with_or_without_optional_values(tmp_path):
    path = tmp_path / "loss_by_phase.png"
    path.write_bytes(plots.loss_by_phase_png(plots.check_history(HISTORY, "history.json"), "loss"))
    width, height = _png_size(path)
    assert 400 < width <= 900 and 250 < height <= 500 and path.stat().st_size > 10_000
    # training loss only: no val_loss, no learning rate, no phases
    bare = {"phases": [], "epochs": [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5}]}
    path.write_bytes(plots.loss_by_phase_png(plots.check_history(bare, "history.json"), "loss"))
    assert _png_size(path)[0] > 400


@pytest.mark.parametrize(
    "history, message",
    [
        ([], "expected a JSON object"),
        ({"phases": []}, "'epochs' must be a list"),
        ({"phases": [], "epochs": []}, "'epochs' is empty"),
        ({"phases": [{"name": "warmup"}], "epochs": [{"epoch": 0}]}, r"phases\[0\] \(warmup\) needs numeric"),
        ({"phases": [], "epochs": [{"loss": 1.0}]}, r"epochs\[0\] needs a numeric 'epoch'"),
    ],
)
def test_malformed_history_names_the_file_and_field(history, message):
    with pytest.raises(ValueError, match=f"history.json: {message}"):
        plots.check_history(history, "history.json")
