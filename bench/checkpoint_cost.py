"""Benchmark: what one trainer checkpoint costs at a data set's table sizes, and what a cadence adds per step.

    .venv/bin/python bench/checkpoint_cost.py --out bench/results/checkpoint_cost.json

A checkpoint holds each embedding table three times: the weights, Adagrad's accumulator and the
weight average's shadow. This builds the tables at the given sizes (default: the H&M Kaggle data's
1,371,980 customers and 105,542 articles, and 20% of them), the real optimizer, weight average and
``Checkpoints`` the trainer uses, saves ``--saves`` times into a temporary directory and reports the
median seconds per save. The overhead per step of a cadence is that over the cadence's training
time at ``--ms-per-step`` (the full-size run's softmax epochs: 22.5 ms).
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
from bench_report import write_report  # noqa: E402  (bench/bench_report.py)

from twotower.trainer.checkpoints import Checkpoints  # noqa: E402
from twotower.trainer.phases import WeightAverage  # noqa: E402

DIM = 32


def save_seconds(customers: int, articles: int, saves: int) -> list:
    """Returns the seconds of each of ``saves`` checkpoints of tables of ``customers`` and ``articles`` rows."""
    model = tf.Module()
    model.tables = [tf.Variable(tf.random.normal([rows, DIM]) * 0.05) for rows in (customers, articles)]
    optimizer = tf.keras.optimizers.Adagrad(0.05)
    optimizer.build(model.tables)
    average = WeightAverage(model.tables)
    seconds = []
    with tempfile.TemporaryDirectory() as root:
        checkpoints = Checkpoints(root, model=model, optimizer=optimizer, average=average)
        for i in range(saves):
            start = time.perf_counter()
            checkpoints.save(i)
            seconds.append(round(time.perf_counter() - start, 3))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--sizes", default="1371980x105542,274396x21108", help="CUSTOMERSxARTICLES,...")
    parser.add_argument("--saves", type=int, default=5, help="checkpoints per size (the median is reported)")
    parser.add_argument("--ms-per-step", type=float, default=22.5, help="training step time the cadence is run at")
    parser.add_argument("--cadences", default="500,5000", help="checkpoint_every_steps values to price")
    args = parser.parse_args()
    cadences = [int(c) for c in args.cadences.split(",")]
    rows = []
    for size in args.sizes.split(","):
        customers, articles = (int(n) for n in size.split("x"))
        seconds = save_seconds(customers, articles, args.saves)
        median = statistics.median(seconds)
        row = {"customers": customers, "articles": articles, "save_s": seconds, "median_save_s": median}
        row["overhead_per_step"] = {str(c): round(median / (c * args.ms_per_step / 1000), 4) for c in cadences}
        rows.append(row)
        print(f"{customers:,} x {articles:,}: median {median:.2f} s per save, overhead {row['overhead_per_step']}")
    write_report(args.out, {"dim": DIM, "ms_per_step": args.ms_per_step, "sizes": rows})


if __name__ == "__main__":
    main()
