"""Benchmark: pooling a history's item features as the masked mean of their embeddings vs by value.

    .venv/bin/python bench/pooling_by_value.py --out bench/results/pooling_by_value.json

Three item features of 20, 50 and 5 values (+ OOV), 8 dimensions each (the hm profile's
product group, colour group and index group are of these sizes), batch 512, histories of 50
with half the slots filled, random catalogue of 20,000 items. Each step is the forward pass,
the gradient and an Adagrad update of the three tables, as in training; ms per step is the
best of 5 timings of 40 steps, alternating the two ways.
"""

import argparse
import time

import numpy as np
import tensorflow as tf
from bench_report import write_report  # bench/bench_report.py

from twotower.trainer.history import masked_mean, pooled_by_value

BATCH, LENGTH, ITEMS, SIZES, DIM = 512, 50, 20_000, (20, 50, 5), 8


def best_ms(step, steps: int = 40, timings: int = 5) -> float:
    step()
    step()
    best = float("inf")
    for _ in range(timings):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - start) / steps * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ids = np.where(rng.random((BATCH, LENGTH)) < 0.5, rng.integers(0, ITEMS, (BATCH, LENGTH)), -1)
    weights = tf.constant(ids >= 0, tf.float32)
    index = tf.constant(np.clip(ids, 0, ITEMS), tf.int64)
    features = []
    for size in SIZES:
        embedding = tf.keras.layers.Embedding(size + 1, DIM)
        embedding.build(None)
        features.append((tf.constant(rng.integers(0, size, ITEMS + 1), tf.int64), embedding))
    tables = [embedding.embeddings for _, embedding in features]
    probe = tf.constant(rng.normal(size=(BATCH, DIM * len(SIZES))), tf.float32)

    def make(way: str):
        optimizer = tf.keras.optimizers.Adagrad(0.1)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                parts = []
                for by_item, embedding in features:
                    values = tf.gather(by_item, index)
                    if way == "masked_mean":
                        parts.append(masked_mean(embedding(values), weights))
                    else:
                        parts.append(pooled_by_value(values, weights, embedding))
                loss = tf.reduce_sum(tf.concat(parts, axis=-1) * probe)
            optimizer.apply_gradients(zip(tape.gradient(loss, tables), tables, strict=True))

        return step

    ms = {"masked_mean": [], "by_value": []}
    for i in range(args.repeats):
        for way in ms:
            ms[way].append(round(best_ms(make(way)), 3))
            print(f"repeat {i}: {way} {ms[way][-1]:.2f} ms/step", flush=True)
    write_report(
        args.out,
        {
            "setup": {"batch": BATCH, "history_length": LENGTH, "items": ITEMS, "feature_sizes": SIZES, "dim": DIM},
            "ms_per_step": ms,
            "best_ms_per_step": {way: min(values) for way, values in ms.items()},
        },
    )


if __name__ == "__main__":
    main()
