"""Benchmark: training examples/s of a profile with a 50-item history feature vs the same profile without, in one run.

    .venv/bin/python bench/history_throughput.py --out bench/results/history_throughput.json

The demo data (`twotower data generate` defaults) is ingested and its transform analysed once
with the hm profile's history feature (``recent_items``, 50 items, with any options given with
``--history`` on top); then ``trainer.train.fit``
trains the hm profile's default plan with the history feature and without it (the same feature
``model: false``: the towers and the input pipeline do not read it), alternating so drift in
machine load hits both. examples/s is the trainer's own measure over its phase loop (what
history.json records), validation passes included for both. Bar (issue 12): with >= 0.6 x without.
"""

import argparse
import dataclasses
import json
import os
import statistics
import tempfile

from bench_report import write_report  # bench/bench_report.py
from sweep import variant_profile  # bench/sweep.py: the same history overrides, model: false for null

from twotower.config import load_profile
from twotower.data.synthetic import DEMO_ARTICLES, DEMO_CUSTOMERS, DEMO_TRANSACTIONS, generate_hm
from twotower.trainer.prepare import prepare
from twotower.trainer.train import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each")
    parser.add_argument("--history", default="{}", help='history feature options as JSON, e.g. {"pooling": "recency"}')
    parser.add_argument("--transactions", type=int, default=DEMO_TRANSACTIONS)
    args = parser.parse_args()
    options = json.loads(args.history)
    base = load_profile("hm")
    profiles = {
        "history": variant_profile(base, {"history": options}),
        "no_history": variant_profile(base, {"history": None}),
    }
    (feature,) = [f for f in profiles["history"].features if f.kind == "history"]
    speeds = {name: [] for name in profiles}
    with tempfile.TemporaryDirectory() as root:
        generate_hm(os.path.join(root, "data"), DEMO_CUSTOMERS, DEMO_ARTICLES, args.transactions, seed=0)
        inputs = prepare(profiles["history"], os.path.join(root, "data"), os.path.join(root, "inputs"))
        for i in range(args.repeats):
            for name, profile in profiles.items():
                paths = inputs.paths(os.path.join(root, f"{name}{i}"), os.path.join(root, f"ckpt_{name}{i}"))
                fitted = fit(profile, paths)
                fitted.checkpoints.remove()
                speeds[name].append(fitted.history["examples_per_s"])
                print(f"run {i}: {name} {speeds[name][-1]:.0f} examples/s", flush=True)
    ratio = statistics.median(speeds["history"]) / statistics.median(speeds["no_history"])
    report = {
        "data": {"profile": "hm", "transactions": args.transactions},
        "history_feature": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(feature).items()
            if v not in (None, (), "")
        },
        "examples_per_s": {name: [round(v) for v in values] for name, values in speeds.items()},
        "median_ratio": round(ratio, 3),
        "bar": 0.6,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
