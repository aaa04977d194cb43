"""Benchmark: the memory the evaluator's read of the known interactions takes, ids shared or one object per row.

    .venv/bin/python bench/evaluator_read_memory.py --examples DIR --config hm --out F

DIR is a JoinExampleGen ``examples`` artifact of a finished run (its Split-train and Split-eval are
what the evaluator knows). Each way runs in its own process: ``evaluation.held_out.read_columns`` of
the user id, item id and timestamp, then the process's resident memory after a garbage collection,
minus what it held before the read. ``per_row`` is TensorFlow's own: one bytes object per row and id.
"""

import argparse
import gc
import json
import os
import subprocess
import sys

from bench_report import write_report  # bench/bench_report.py
from proc_tree import own_rss_mb  # bench/proc_tree.py

WAYS = ("shared", "per_row")


def measure(examples: str, config: str, way: str) -> dict:
    """Reads the known interactions one ``way`` in this process; returns {rows, rss_before_mb, rss_after_mb}."""
    import tensorflow as tf

    from twotower.config import load_profile
    from twotower.evaluation import held_out

    if way == "per_row":
        held_out._shared = lambda values, pool: values  # what read_columns did before ids were shared
    d = load_profile(config).data
    spec = {name: tf.io.VarLenFeature(tf.string) for name in (d.user_id, d.item_id)}
    spec[d.timestamp] = tf.io.VarLenFeature(tf.int64)
    tf.constant(0)  # TensorFlow's own start-up memory belongs to "before"
    before = int(own_rss_mb())
    columns = held_out.read_columns([os.path.join(examples, f"Split-{s}", "*") for s in ("train", "eval")], spec)
    gc.collect()
    return {"rows": int(len(columns[d.user_id])), "rss_before_mb": before, "rss_after_mb": int(own_rss_mb())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", required=True, help="a JoinExampleGen examples artifact directory")
    parser.add_argument("--config", default="hm", help="the profile the run used")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.examples, args.config, args.child)))
        return
    results = {}
    for way in WAYS:
        command = [sys.executable, __file__, "--examples", args.examples, "--config", args.config, "--out", "-"]
        out = subprocess.run(command + ["--child", way], check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        row["read_mb"] = row["rss_after_mb"] - row["rss_before_mb"]
        row["bytes_per_row"] = round(row["read_mb"] * 2**20 / max(row["rows"], 1), 1)
        results[way] = row
        print(way, row, flush=True)
    write_report(args.out, {"examples": args.examples, "ways": results})


if __name__ == "__main__":
    main()
