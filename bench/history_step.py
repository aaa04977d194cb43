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
import time

import tensorflow as tf
import tensorflow_transform as tft
from bench_report import write_report  # bench/bench_report.py
from sweep import variant_profile  # bench/sweep.py: the same history overrides, model: false for null

from twotower.config import load_profile
from twotower.data.synthetic import DEMO_ARTICLES, DEMO_CUSTOMERS, DEMO_TRANSACTIONS, generate_hm
from twotower.trainer import data, train
from twotower.trainer.prepare import prepare
from twotower.transform.features import ITEM_ID, NUM_OOV_BUCKETS, history_item_features, raw_inputs

VARIANTS = {"history": {}, "history_no_repeat": {"repeat": False}, "no_history": None}
BATCHES, BATCH_SIZE, PASSES = 40, 512, 3


def step_ms(profile, inputs, root: str) -> float:
    """Returns the mean ms of ``PASSES`` passes of ``train_step`` over ``BATCHES`` batches (after 5 warm-up steps)."""
    paths = inputs.paths(os.path.join(root, "run"), os.path.join(root, "ckpt"))
    tft_output = tft.TFTransformOutput(paths.transform_graph)
    query_raw, item_raw = raw_inputs(profile)
    examples = data.transformed_dataset(paths.train, tft_output, query_raw + item_raw)
    batches = list(examples.batch(BATCH_SIZE).take(BATCHES))
    n_vocab = tft_output.vocabulary_size_by_name(ITEM_ID)
    counts = train.item_counts(examples.take(BATCHES * BATCH_SIZE), n_vocab + NUM_OOV_BUCKETS)
    table = train.item_table(paths.catalog, tft_output, profile, n_vocab) if history_item_features(profile) else None
    two_tower = train.build_model(profile, tft_output, counts, table, batches[0])[0]
    step = tf.function(two_tower.train_step)
    for batch in batches[:5]:
        step(batch)
    start = time.perf_counter()
    for _ in range(PASSES):
        for batch in batches:
            step(batch)
    return (time.perf_counter() - start) / (PASSES * len(batches)) * 1000


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
