"""Benchmark: the trainer's shuffle of single examples (before) vs of whole parse batches (now), in one run.

    .venv/bin/python bench/input_shuffle.py --out bench/results/input_shuffle.json

On the demo data's transformed training examples (hm profile, cached in memory as the trainer
caches them, in parse batches), side by side and alternating:

- ``per_example``: ``unbatch() -> shuffle(SHUFFLE_BUFFER) -> batch(512)``, the trainer before;
- ``block``: ``data.shuffled_batches``, the trainer now (blocks shuffled, joined a window at a time,
  rows permuted, rebatched).

Two measures for each: the input pipeline alone (every batch of an epoch drawn, nothing trained),
and ``model.fit`` of the hm profile's model over the pipeline, one softmax phase. Both in wall and
in CPU milliseconds per batch (user + system time of this process): on 2 cores the input pipeline
runs beside the training step, so its CPU time is what it takes from training, and CPU time holds
up when the machine is shared, where wall time does not.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFRS needs Keras 2

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Callable, Dict, List  # noqa: E402

import tensorflow_transform as tft  # noqa: E402
from bench_report import write_report  # noqa: E402  (bench/bench_report.py)

from twotower.config import PhaseConfig, load_profile  # noqa: E402
from twotower.data.synthetic import DEMO_ARTICLES, DEMO_CUSTOMERS, DEMO_TRANSACTIONS, generate_hm  # noqa: E402
from twotower.trainer import data, phases, train  # noqa: E402
from twotower.trainer.prepare import prepare  # noqa: E402
from twotower.transform.features import ITEM_ID, NUM_OOV_BUCKETS, raw_inputs  # noqa: E402

BATCH = 512


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(run: Callable[[], int]) -> Dict[str, float]:
    """Runs ``run`` (which returns the batches it drew); returns wall and CPU ms per batch."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    batches = run()
    return {
        "wall_ms": round((time.perf_counter() - wall) / batches * 1000, 2),
        "cpu_ms": round((cpu_seconds() - cpu) / batches * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each")
    parser.add_argument("--fit-batches", type=int, default=300, help="training steps per fit measure")
    args = parser.parse_args()
    profile = load_profile("hm")
    with tempfile.TemporaryDirectory() as root:
        generate_hm(os.path.join(root, "data"), DEMO_CUSTOMERS, DEMO_ARTICLES, DEMO_TRANSACTIONS, seed=0)
        inputs = prepare(profile, os.path.join(root, "data"), os.path.join(root, "inputs"))
        tft_output = tft.TFTransformOutput(inputs.transform_graph)
        query_raw, item_raw = raw_inputs(profile)
        blocks = data.transformed_batches(inputs.split("train"), tft_output, query_raw + item_raw).cache()
        examples = blocks.unbatch()
        n = int(examples.reduce(0, lambda count, _: count + 1))  # fills the cache
        pipelines = {
            "per_example": lambda: examples.shuffle(train.SHUFFLE_BUFFER, seed=0).batch(BATCH),
            "block": lambda: data.shuffled_batches(blocks, BATCH, train.SHUFFLE_BUFFER, seed=0),
        }
        n_vocab = tft_output.vocabulary_size_by_name(ITEM_ID)
        counts = train.item_counts(examples, n_vocab + NUM_OOV_BUCKETS)
        table = train.item_table(inputs.split("catalog"), tft_output, profile, n_vocab)
        first = next(iter(examples.batch(2)))
        model, _, schedule, _ = train.build_model(profile, tft_output, counts, table, first)
        plan = phases.plan_steps((PhaseConfig("softmax", 1, learning_rate=0.05, batch_size=BATCH),), n)
        schedule.set(plan[0])
        model.set_loss("softmax")
        results: Dict[str, Dict[str, List[Dict[str, float]]]] = {
            name: {"pipeline": [], "fit": []} for name in pipelines
        }
        for i in range(args.repeats):
            for name, make in pipelines.items():
                results[name]["pipeline"].append(timed(lambda make=make: sum(1 for _ in make())))
                steps = make().take(args.fit_batches).prefetch(2)
                model.fit(steps.take(20), epochs=1, verbose=0)  # traced before the measure

                def fit(steps=steps) -> int:
                    model.fit(steps, epochs=1, verbose=0)
                    return args.fit_batches

                results[name]["fit"].append(timed(fit))
                print(f"run {i} {name}: {results[name]}", flush=True)
    medians = {
        name: {
            part: {k: statistics.median(r[k] for r in runs) for k in ("wall_ms", "cpu_ms")}
            for part, runs in parts.items()
        }
        for name, parts in results.items()
    }
    report = {
        "data": {"profile": "hm", "transactions": DEMO_TRANSACTIONS, "train_examples": n},
        "batch_size": BATCH,
        "window": train.SHUFFLE_BUFFER,
        "fit_batches": args.fit_batches,
        "runs": results,
        "median": medians,
        "fit_cpu_ms_saved_per_step": round(
            medians["per_example"]["fit"]["cpu_ms"] - medians["block"]["fit"]["cpu_ms"], 2
        ),
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
