"""Benchmark: ms per training step of the hm profile with its history feature, without repeat scores, and without.

    .venv/bin/python bench/history_step.py --out bench/results/history_step.json

Where ``history_throughput.py`` measures examples/s over whole training runs (validation and
callbacks included), this times the model's own ``train_step`` alone on the same 40 cached
batches of 512 demo examples, each variant built from the same transform graph, alternating
so drift in machine load hits all of them: what the history feature itself costs per step.
"""

import argparse
import json
import os
import tempfile

from bench_report import write_report  # bench/bench_report.py
from sweep import variant_profile  # bench/sweep.py: the same history overrides, model: false for null
from train_step import BATCHES, step_model, time_step, warm_step  # bench/train_step.py

from twotower.config import load_profile
from twotower.data.synthetic import DEMO_ARTICLES, DEMO_CUSTOMERS, DEMO_TRANSACTIONS, generate_hm
from twotower.trainer.prepare import prepare

VARIANTS = {"history": {}, "history_no_repeat": {"repeat": False}, "no_history": None}
BATCH_SIZE = 512


def step_ms(profile, inputs, root: str) -> float:
    """Returns the mean wall ms per ``train_step`` of ``profile`` (bench/train_step.py: 3 passes over 40 batches)."""
    paths = inputs.paths(os.path.join(root, "run"), os.path.join(root, "ckpt"))
    two_tower, batches, _ = step_model(profile, paths, BATCH_SIZE)
    return time_step(warm_step(two_tower, batches), batches)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--repeats", type=int, default=3, help="alternating measurements of each variant")
    parser.add_argument(
        "--variants",
        default=json.dumps(VARIANTS),
        help="JSON {name: history feature options, or null for none}; the first must have a history "
        '(its transform graph is shared), one must be named "no_history"',
    )
    args = parser.parse_args()
    base = load_profile("hm")
    variants = json.loads(args.variants)
    profiles = {name: variant_profile(base, {"history": options}) for name, options in variants.items()}
    ms = {name: [] for name in profiles}
    with tempfile.TemporaryDirectory() as root:
        generate_hm(os.path.join(root, "data"), DEMO_CUSTOMERS, DEMO_ARTICLES, DEMO_TRANSACTIONS, seed=0)
        inputs = prepare(next(iter(profiles.values())), os.path.join(root, "data"), os.path.join(root, "inputs"))
        for i in range(args.repeats):
            for name, profile in profiles.items():
                ms[name].append(round(step_ms(profile, inputs, root), 2))
                print(f"repeat {i}: {name} {ms[name][-1]:.1f} ms/step", flush=True)
    best = {name: min(values) for name, values in ms.items()}
    report = {
        "data": {"profile": "hm", "transactions": DEMO_TRANSACTIONS, "batch_size": BATCH_SIZE, "batches": BATCHES},
        "ms_per_step": ms,
        "best_ms_per_step": best,
        "step_ratio_without_over_with": {
            name: round(best["no_history"] / ms_, 3) for name, ms_ in best.items() if name != "no_history"
        },
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
