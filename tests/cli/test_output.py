"""The evaluator's table as ``twotower run`` and ``twotower bench quality`` print it."""

from twotower.cli.output import print_evaluation, print_models

METRICS = {
    "models": {
        "twotower": {"recall@50": 0.35, "coverage@50": 0.4},
        "popularity": {"recall@50": 0.2, "coverage@50": 0.05},
        "item_knn": {"recall@50": 0.3, "coverage@50": 0.3},
    },
    "intervals": {
        "twotower": {"recall@50": [0.33, 0.37]},
        "popularity": {"recall@50": [0.18, 0.22]},
        "item_knn": {"recall@50": [0.28, 0.32]},
    },
    "bootstrap": {"samples": 1000, "seed": 0, "users": 943, "confidence": 0.95},
    "baselines": {"skipped": {"ease": "105,542 items > 30,000 (its dense inverse would not fit)"}},
    "baseline": {"uri": "/runs/m/1", "metrics": {"recall@50": 0.34, "coverage@50": 0.39}, "intervals": {}},
    "held_out_split": "test",
    "eval_users": 943,
    "blessing": {
        "blessed": True,
        "reason": "recall 0.3500 >= ... (paired difference +0.0500, 95% CI [+0.0300, +0.0700])",
    },
}


def test_one_row_per_model_with_intervals_and_the_blessing_line(capsys):
    print_evaluation(METRICS)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "recall@50", "coverage@50"]
    assert lines[1].split() == ["twotower", "0.3500", "[0.330,", "0.370]", "0.4000"]  # coverage has no interval
    assert [line.split()[0] for line in lines[1:5]] == ["twotower", "popularity", "item_knn", "last_blessed"]
    assert lines[4].split() == ["last_blessed", "0.3400", "0.3900"]  # no interval given: the value alone
    assert lines[5] == "[lo, hi]: 95% bootstrap interval over the 943 users (1,000 resamples, seed 0)"
    assert lines[6] == "ease: not computed, 105,542 items > 30,000 (its dense inverse would not fit)"
    assert lines[7] == f"test users: 943; BLESSED: {METRICS['blessing']['reason']}"
    assert lines[8] == "last_blessed: the model blessed before, /runs/m/1"


def test_columns_line_up_and_stay_plain_without_intervals(capsys):
    print_models(METRICS["models"])
    lines = capsys.readouterr().out.splitlines()
    assert len({len(line) for line in lines}) == 1  # right-aligned columns of equal width
    assert lines[2].split() == ["popularity", "0.2000", "0.0500"] and "[" not in "".join(lines)
