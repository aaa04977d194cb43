"""Trainer sweep: train and evaluate variants of a profile's trainer section on one prepared data set.

    .venv/bin/python bench/sweep.py --profile movielens --data DIR --out bench/results/sweep_movielens.json \
        --variants '{"adagrad": {"optimizer": "adagrad", "learning_rate": 0.1}, "adam": {}}'

Ingests DIR and analyses the transform once (``twotower.trainer.prepare``,
the same code as JoinExampleGen and Transform), then for each variant trains
with ``trainer.train.train`` and scores the held-out split with the evaluator's
``evaluate`` (every baseline on the same users), without the orchestrator.
A variant is a mapping of trainer fields to override, ``phases`` as a list of
phase mappings. ``--split per_user`` (default for movielens) is the split of
`twotower bench quality`. Variants run in order; results are written after each.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from twotower.cli.bench import per_user_split  # noqa: E402
from twotower.config import PhaseConfig, load_profile  # noqa: E402
from twotower.evaluation.evaluate import evaluate  # noqa: E402
from twotower.export.package import train_and_export  # noqa: E402
from twotower.trainer.prepare import prepare  # noqa: E402

METRICS = ("recall@10", "recall@50", "recall@100", "ndcg@10", "map@12")


def variant_profile(profile, overrides: dict):
    """Returns ``profile`` with its trainer fields replaced by ``overrides``."""
    fields = dict(overrides)
    if "phases" in fields:
        fields["phases"] = tuple(PhaseConfig(**ph) for ph in fields["phases"])
    return dataclasses.replace(profile, trainer=dataclasses.replace(profile.trainer, **fields))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="movielens")
    parser.add_argument("--data", required=True, help="directory with the profile's CSV files")
    parser.add_argument("--split", choices=("per_user", "profile"), default=None)
    parser.add_argument("--variants", required=True, help="JSON {name: {trainer field: value}}")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    profile = load_profile(args.profile)
    if (args.split or ("per_user" if profile.name == "movielens" else "profile")) == "per_user":
        profile = per_user_split(profile)
    variants = json.loads(args.variants)
    report = {"profile": profile.name, "split": dataclasses.asdict(profile.split), "command": " ".join(sys.argv)}
    report["variants"] = {}
    with tempfile.TemporaryDirectory(prefix="twotower-sweep-") as root:
        inputs = prepare(profile, args.data, os.path.join(root, "inputs"))
        held_out = "test" if profile.split.mode == "per_user" or profile.split.test_days else "eval"
        history = inputs.split("train") + (inputs.split("eval") if held_out == "test" else [])
        for name, overrides in variants.items():
            candidate = variant_profile(profile, overrides)
            out = os.path.join(root, name)
            started = time.monotonic()
            trained = train_and_export(candidate, inputs.paths(out))
            seconds = time.monotonic() - started
            result = evaluate(
                candidate, os.path.join(out, "model"), history, inputs.split(held_out), inputs.split("catalog")
            )
            report["variants"][name] = {
                "overrides": overrides,
                "models": {m: {k: round(t[k], 4) for k in METRICS} for m, t in result["models"].items()},
                "train_seconds": round(seconds, 1),
                "examples_per_s": round(trained["examples_per_s"]),
                "temperature": round(trained["temperature"], 4),
            }
            row = report["variants"][name]["models"]["twotower"]
            print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
            with open(args.out, "w") as f:
                json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
