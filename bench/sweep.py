"""Sweep: train and evaluate variants of a profile on one prepared data set, model next to every baseline.

    .venv/bin/python bench/sweep.py --profile movielens --data DIR --out bench/results/sweep_movielens.json \\
        --variants '{"no_history": {"history": null}, "mean": {}, "attention": {"history": {"pooling": "attention"}}}'

Ingests DIR and analyses the transform once (``twotower.trainer.prepare``, the same code as
JoinExampleGen and Transform), then for each variant fits (``trainer.train.fit``), exports the
SavedModel (no index, no ONNX: they do not change the ranking) and scores the held-out split with
the evaluator's ``evaluate`` (every baseline on the same users, bootstrap intervals), without the
orchestrator. A variant maps ``trainer`` and ``evaluator`` to field overrides (``phases`` as a list
of phase mappings) and ``history`` to overrides of the profile's history feature options (``null``:
the model without it, the feature kept ``model: false`` so every variant shares one transform);
any other key is a trainer field (the old format). ``--split per_user`` (default for movielens) is
the split of `twotower bench quality`. Variants run in order; results are written after each.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

from twotower.cli.bench import per_user_split
from twotower.config import PhaseConfig, load_profile
from twotower.evaluation.evaluate import evaluate
from twotower.export.package import package
from twotower.trainer.prepare import prepare
from twotower.trainer.train import fit

METRICS = ("recall@10", "recall@50", "recall@100", "ndcg@10", "map@12")
SECTIONS = ("trainer", "evaluator", "history")


def variant_profile(profile, variant: dict):
    """Returns ``profile`` with the variant's trainer, evaluator and history overrides (module docstring)."""
    variant = dict(variant)
    if not set(variant) <= set(SECTIONS):  # the old format: trainer fields only
        variant = {"trainer": variant}
    trainer = dict(variant.get("trainer", {}))
    if "phases" in trainer:
        trainer["phases"] = tuple(PhaseConfig(**ph) for ph in trainer["phases"])
    trainer = {k: tuple(v) if isinstance(v, list) else v for k, v in trainer.items()}
    history = variant.get("history", {})
    features = []
    for f in profile.features:
        if f.kind == "history":
            options = {k: tuple(v) if isinstance(v, list) else v for k, v in (history or {}).items()}
            f = dataclasses.replace(f, model=False) if history is None else dataclasses.replace(f, **options)
        features.append(f)
    return dataclasses.replace(
        profile,
        features=tuple(features),
        trainer=dataclasses.replace(profile.trainer, **trainer),
        evaluator=dataclasses.replace(profile.evaluator, **variant.get("evaluator", {})),
    )


def run_variant(profile, inputs, out: str, held_out: str) -> dict:
    """Fits, exports and evaluates one variant; returns its report entry."""
    paths = inputs.paths(out, checkpoint_dir=os.path.join(out, "checkpoints"))
    started = time.monotonic()
    fitted = fit(profile, paths)
    package(profile, paths, fitted, with_index=False, with_onnx=False)
    fitted.checkpoints.remove()
    seconds = time.monotonic() - started
    known = inputs.split("train") + (inputs.split("eval") if held_out == "test" else [])
    result = evaluate(profile, paths.serving_model_dir, known, inputs.split(held_out), inputs.split("catalog"))
    validation = fitted.history.get("validation") or {}
    return {
        "models": {m: {k: round(t[k], 4) for k in METRICS} for m, t in result["models"].items()},
        "intervals": {m: {k: [round(x, 4) for x in v[k]] for k in METRICS} for m, v in result["intervals"].items()},
        "blessing": result["blessing"]["reason"],
        "train_seconds": round(seconds, 1),
        "examples_per_s": round(fitted.history["examples_per_s"]),
        "validation": {k: validation.get(k) for k in ("best", "best_epoch", "stopped_early", "repeat_calibration")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="movielens")
    parser.add_argument("--data", required=True, help="directory with the profile's CSV files")
    parser.add_argument("--split", choices=("per_user", "profile"), default=None)
    parser.add_argument("--variants", required=True, help="JSON {name: variant} (module docstring)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    profile = load_profile(args.profile)
    if (args.split or ("per_user" if profile.name == "movielens" else "profile")) == "per_user":
        profile = per_user_split(profile)
    report = {"profile": profile.name, "split": dataclasses.asdict(profile.split), "command": " ".join(sys.argv)}
    report["load_average"], report["variants"] = os.getloadavg(), {}
    with tempfile.TemporaryDirectory(prefix="twotower-sweep-") as root:
        inputs = prepare(profile, args.data, os.path.join(root, "inputs"))
        held_out = "test" if profile.split.mode == "per_user" or profile.split.test_days else "eval"
        for name, variant in json.loads(args.variants).items():
            entry = run_variant(variant_profile(profile, variant), inputs, os.path.join(root, name), held_out)
            report["variants"][name] = {"variant": variant, **entry}
            row = entry["models"]
            print(
                f"{name}: twotower R@50 {row['twotower']['recall@50']:.4f} NDCG@10 {row['twotower']['ndcg@10']:.4f}; "
                + ", ".join(f"{m} {t['recall@50']:.4f}/{t['ndcg@10']:.4f}" for m, t in row.items() if m != "twotower"),
                flush=True,
            )
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
