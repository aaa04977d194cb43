"""``twotower bench quality``: train and evaluate on a benchmark split, model next to its baselines.

Runs the real local pipeline (ingestion, contract, Transform, Trainer, the
evaluator with every baseline on the same users) into a scratch pipeline
root and returns the metrics as JSON-able data. For MovieLens the split is the
usual per-user temporal one (each user's last 20% of ratings are test, the 10%
before them eval; training items are excluded from ranking); other profiles
keep their own split unless asked.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import tempfile
import time
from typing import Any, Dict, Optional

from twotower.cli.output import print_evaluation
from twotower.config import Profile, load_profile
from twotower.errors import EXIT_OK
from twotower.export.assets import HISTORY_ASSET

PER_USER_TEST = 0.2
PER_USER_EVAL = 0.1


def per_user_split(profile: Profile, test_fraction: float = PER_USER_TEST) -> Profile:
    """Returns ``profile`` with the per-user temporal split (``test_fraction`` test, 10% eval per user)."""
    split = dataclasses.replace(
        profile.split, mode="per_user", test_fraction=test_fraction, eval_fraction=PER_USER_EVAL
    )
    return dataclasses.replace(profile, split=split)


def newest_model_dir(pipeline_root: str) -> str:
    """Returns the newest trained model's SavedModel directory (``Trainer/model/N/Format-Serving``) under the root."""
    pattern = os.path.join(pipeline_root, "Trainer", "model", "*", "Format-Serving", HISTORY_ASSET)
    paths = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not paths:
        raise FileNotFoundError(f"no trained model's history matches {pattern}")
    return paths[-1][: -len(HISTORY_ASSET) - 1]


def training_history(pipeline_root: str) -> Dict[str, Any]:
    """Returns the newest trained model's history.json (phases, per-epoch losses, examples/s) under the root."""
    with open(os.path.join(newest_model_dir(pipeline_root), HISTORY_ASSET), encoding="utf-8") as f:
        return json.load(f)


def run_quality(profile: Profile, data_dir: str, work_dir: Optional[str] = None) -> Dict[str, Any]:
    """Runs the pipeline on ``data_dir`` and returns {models, cold_start, split, train_examples_per_s, ...}.

    ``train_examples_per_s`` is the trainer's own measure over its phase loop (history.json);
    ``trainer_seconds`` is the whole Trainer component (input pipeline, catalogue embedding, export too).
    """
    with tempfile.TemporaryDirectory(prefix="twotower-quality-", dir=work_dir) as root:
        started = time.monotonic()
        from twotower.pipeline.local import run_local

        result = run_local(profile, data_root=data_dir, pipeline_root=root)
        wall = time.monotonic() - started
        history = training_history(root)
    splits = result.ingestion["splits"]
    trainer_seconds = result.component_seconds.get("Trainer", float("nan"))
    return {
        "profile": profile.name,
        "models": result.metrics["models"],
        "intervals": result.metrics.get("intervals", {}),
        "bootstrap": result.metrics.get("bootstrap"),
        "baselines": result.metrics.get("baselines", {}),
        "cold_start": result.metrics["cold_start"],
        "blessing": result.metrics["blessing"],
        "split": {
            "rule": result.ingestion["boundaries"],
            "sizes": {name: s["examples"] for name, s in splits.items()},
            "held_out": result.metrics["held_out_split"],
            "held_out_users": result.metrics["eval_users"],
            "exclude_seen": profile.evaluator.exclude_seen,
        },
        "trainer": dataclasses.asdict(profile.trainer),
        "train_examples_per_s": round(history["examples_per_s"]),
        "training": {"phases": history["phases"], "epochs": history["epochs"], "temperature": history["temperature"]},
        "trainer_seconds": round(trainer_seconds, 1),
        "wall_seconds": round(wall, 1),
        "data": os.path.abspath(data_dir),
    }


def _cmd_bench_quality(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)  # tempfile needs it to exist
    with tempfile.TemporaryDirectory(prefix="movielens-", dir=args.work_dir) as scratch:
        data = args.data
        if data is None:
            if profile.name != "movielens":
                raise ValueError(f"--data is required for profile {profile.name!r} (only movielens is fetched)")
            from twotower.data.movielens import write_movielens

            data = os.path.join(scratch, "data")
            write_movielens(data)
        split = args.split or ("per_user" if profile.name == "movielens" else "profile")
        if split == "per_user":
            profile = per_user_split(profile)
        report = run_quality(profile, data, args.work_dir)
    print()
    split = report["split"]
    print_evaluation({**report, "held_out_split": split["held_out"], "eval_users": split["held_out_users"]})
    print(f"split: {split['rule']}; {split['held_out_users']} held-out users")
    print(f"training: {report['train_examples_per_s']:,} examples/s; wall {report['wall_seconds']:.0f}s")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.out}")
    return EXIT_OK


def add_bench_commands(commands: argparse._SubParsersAction) -> None:
    """Adds ``bench quality`` to the ``twotower`` sub-command parser ``commands``."""
    bench = commands.add_parser("bench", help="benchmarks")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True, metavar="COMMAND")
    quality = bench_commands.add_parser(
        "quality", help="train + evaluate on a benchmark split: the model next to every baseline on the same users"
    )
    quality.add_argument("--profile", default="movielens", help="profile name or YAML (default movielens)")
    quality.add_argument("--data", help="CSV directory (default for movielens: fetched and converted)")
    quality.add_argument(
        "--split",
        choices=["per_user", "profile"],
        help="per_user: each user's last 20%% test (default for movielens); profile: the profile's own split",
    )
    quality.add_argument("--out", help="write the results as JSON here")
    quality.add_argument("--work-dir", help="where scratch pipeline roots go (default: system temp)")
    quality.set_defaults(func=_cmd_bench_quality)
