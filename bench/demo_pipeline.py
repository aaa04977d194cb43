"""Benchmark: the demo pipeline end to end, with per-component wall time and quality.

    .venv/bin/python bench/demo_pipeline.py --out bench/results/demo_pipeline.json

Generates the demo data set (the `twotower data generate` defaults), runs the
local pipeline and writes wall times and Recall@K (model vs popularity) as JSON.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import twotower  # noqa: F401  (Keras 2 before TensorFlow loads)
from twotower.config import load_profile
from twotower.data.synthetic import DEMO_ARTICLES, DEMO_CUSTOMERS, DEMO_TRANSACTIONS, generate_hm
from twotower.pipeline.local import run_local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--transactions", type=int, default=DEMO_TRANSACTIONS)
    parser.add_argument("--customers", type=int, default=DEMO_CUSTOMERS)
    parser.add_argument("--articles", type=int, default=DEMO_ARTICLES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        started = time.monotonic()
        generate_hm(os.path.join(root, "data"), args.customers, args.articles, args.transactions, seed=0)
        generate_seconds = time.monotonic() - started
        result = run_local(load_profile("hm"), os.path.join(root, "data"), os.path.join(root, "pipeline"))
    report = {
        "data": {"customers": args.customers, "articles": args.articles, "transactions": args.transactions},
        "generate_seconds": round(generate_seconds, 1),
        "pipeline_seconds": round(result.seconds, 1),
        "component_seconds": {k: round(v, 1) for k, v in result.component_seconds.items()},
        "ingestion": {k: result.ingestion[k] for k in ("files", "splits")},
        "held_out_split": result.metrics["held_out_split"],
        "eval_users": result.metrics["eval_users"],
        "models": result.metrics["models"],
        "blessed": result.metrics["blessing"]["blessed"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    json.dump(report, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
