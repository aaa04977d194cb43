"""Benchmark: training throughput of our trainer vs a plain TFRS loop over in-memory tensors, in one run.

    .venv/bin/python bench/train_throughput.py --out bench/results/train_throughput.json

Both train the same towers (``build_towers`` over the same transform graph) with
the same batch size, optimizer, learning rate and number of epochs on the same
training examples of the demo data (`twotower data generate` defaults, hm profile):

- ``twotower``: ``trainer.train.train`` with one softmax phase: files -> parse ->
  transform graph -> cache -> shuffle -> batch, logQ correction, accidental-hit
  removal, phase/checkpoint/history/TensorBoard callbacks and a validation pass
  per epoch; examples/s over its phase loop (the same number it records in history.json);
- ``plain_tfrs``: the transformed examples loaded into numpy first, then
  ``tf.data.Dataset.from_tensor_slices`` -> shuffle -> batch and ``model.fit`` of a
  ``tfrs.Model`` with a plain ``tfrs.tasks.Retrieval`` (no validation, no callbacks).

The runs alternate (ours, plain, ours, plain, ...) so drift in machine load hits both.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFRS needs Keras 2

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
from bench_report import write_report  # noqa: E402  (bench/bench_report.py)

from twotower.config import PhaseConfig, load_profile  # noqa: E402
from twotower.data.synthetic import (  # noqa: E402
    DEMO_ARTICLES,
    DEMO_CUSTOMERS,
    DEMO_TRANSACTIONS,
    generate_hm,  # noqa: E402
)
from twotower.export.package import train_and_export  # noqa: E402
from twotower.trainer import data, towers  # noqa: E402
from twotower.trainer.prepare import prepare  # noqa: E402
from twotower.transform.features import raw_inputs  # noqa: E402


class PlainModel(tfrs.Model):
    """The TFRS tutorial's retrieval model around our towers."""

    def __init__(self, query_tower, candidate_tower, temperature):
        super().__init__()
        self.query_tower, self.candidate_tower = query_tower, candidate_tower
        self.task = tfrs.tasks.Retrieval(temperature=temperature)

    def compute_loss(self, features, training=False):
        return self.task(self.query_tower(features), self.candidate_tower(features), compute_metrics=False)


def in_memory(inputs, profile) -> dict:
    """Returns the transformed training examples as numpy arrays."""
    tft_output = tft.TFTransformOutput(inputs.transform_graph)
    query_raw, item_raw = raw_inputs(profile)
    parts: dict = {}
    for batch in data.transformed_dataset(inputs.split("train"), tft_output, query_raw + item_raw).batch(65536):
        for name, values in batch.items():
            parts.setdefault(name, []).append(values.numpy())
    return {name: np.concatenate(v) for name, v in parts.items()}


def plain_examples_per_s(inputs, profile, arrays: dict, epochs: int) -> float:
    """Trains the plain loop and returns examples/s over model.fit."""
    t = profile.trainer
    query_tower, candidate_tower = towers.build_towers(profile, tft.TFTransformOutput(inputs.transform_graph))
    plain = PlainModel(query_tower, candidate_tower, t.temperature)
    plain.compile(optimizer=tf.keras.optimizers.Adagrad(t.learning_rate))
    n = len(next(iter(arrays.values())))
    dataset = tf.data.Dataset.from_tensor_slices(arrays).shuffle(n, seed=0).batch(t.batch_size)
    started = time.monotonic()
    plain.fit(dataset, epochs=epochs, verbose=0)
    return n * epochs / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each")
    parser.add_argument("--transactions", type=int, default=DEMO_TRANSACTIONS)
    args = parser.parse_args()
    base = load_profile("hm")
    phases = (PhaseConfig("softmax", args.epochs),)
    profile = dataclasses.replace(base, trainer=dataclasses.replace(base.trainer, phases=phases))
    ours, plain = [], []
    with tempfile.TemporaryDirectory() as root:
        generate_hm(os.path.join(root, "data"), DEMO_CUSTOMERS, DEMO_ARTICLES, args.transactions, seed=0)
        inputs = prepare(profile, os.path.join(root, "data"), os.path.join(root, "inputs"))
        arrays = in_memory(inputs, profile)
        for i in range(args.repeats):
            history = train_and_export(profile, inputs.paths(os.path.join(root, f"run{i}")))
            ours.append(history["examples_per_s"])
            plain.append(plain_examples_per_s(inputs, profile, arrays, args.epochs))
            print(f"run {i}: twotower {ours[-1]:.0f} ex/s, plain TFRS {plain[-1]:.0f} ex/s", flush=True)
    report = {
        "data": {"profile": "hm", "transactions": args.transactions, "train_examples": len(arrays["item_id"])},
        "trainer": {"batch_size": profile.trainer.batch_size, "epochs": args.epochs, "towers": "hm profile"},
        "twotower_examples_per_s": [round(v) for v in ours],
        "plain_tfrs_examples_per_s": [round(v) for v in plain],
        "median_ratio": round(statistics.median(ours) / statistics.median(plain), 3),
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
