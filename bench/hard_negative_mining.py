"""Benchmark: TFRS's hard-negative mining against two exact selections without ``top_k``, forward and gradient.

    .venv/bin/python bench/hard_negative_mining.py --out bench/results/hard_negative_mining.json

The hm profile's hard-negatives phase keeps, per query, the positive and the 256 highest-scoring of
1,536 candidates (512 in-batch, 1,024 sampled). TFRS's ``HardNegativeMining`` finds them with
``tf.math.top_k``. The alternatives find the 257th largest score with ``NthElement`` (a partial sort)
and keep the columns at or above it; to keep exactly ``top_k``'s columns when scores tie at the cut
(the same item twice among the candidates), ``nth_element_ties`` takes tied columns in column order
through a running count, and ``nth_element_keys`` ranks distinct int64 keys (the score's
order-preserving bits, then the column). ``no_mining`` is the softmax over all 1,536 columns: the
floor. Each variant is checked to keep exactly ``top_k``'s columns, on random scores and on scores
with ten copies of the cut value per row. Times are CPU milliseconds per call of forward plus
gradient (a softmax cross-entropy over the kept columns), alternating the variants, median of
``--repeats``: CPU time, so a busy machine inflates them less than wall time. ``twotower`` is the
trainer's own ``model.hard_negative_mining``: ``nth_element_ties`` with NaN scores ranked highest.

``--train-step`` also times the hm profile's whole ``train_step`` in its hard-negatives phase
(1,024 sampled negatives, 256 kept) on 40 batches of 512 demo examples, alternating the mining of
TFRS's layer, of the trainer (``model.hard_negative_mining``) and none (the same candidates, no
mining): ms per step, wall and CPU, mean of 3 passes over the batches, median over ``--repeats``.
The mining's cost depends on the batch and candidate counts only, so the saving per step should
carry over to the full-size run's hard-negatives epoch; ``--pipeline-root`` checks that on a
finished full-size run's examples and transform graph (its embedding tables at their full size).
"""

import argparse
import os
import statistics
import tempfile
import time
from types import SimpleNamespace

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402
from bench_report import write_report  # noqa: E402  (bench/bench_report.py)
from evaluator_stages import newest_examples, newest_output  # noqa: E402  (bench/evaluator_stages.py)
from train_step import step_model, time_step, warm_step  # noqa: E402  (bench/train_step.py)

from twotower.config import load_profile  # noqa: E402
from twotower.data.synthetic import DEMO_ARTICLES, DEMO_CUSTOMERS, DEMO_TRANSACTIONS, generate_hm  # noqa: E402
from twotower.trainer import model  # noqa: E402
from twotower.trainer.prepare import prepare  # noqa: E402
from twotower.transform.features import ITEM_ID, USER_ID  # noqa: E402

QUERIES, CANDIDATES, HARD = 512, 1536, 256
KEEP = HARD + 1  # the positive and the hard negatives
BIG = tfrs.layers.loss.MAX_FLOAT  # what TFRS adds to the positive's logit so that it is always kept


def _nth_largest(values: tf.Tensor, k: int) -> tf.Tensor:
    """Returns ``[rows, 1]``: each row's ``k``-th largest value."""
    return tf.raw_ops.NthElement(input=values, n=tf.shape(values)[1] - k)[:, None]


def _columns(mask: tf.Tensor) -> tf.Tensor:
    """Returns ``[rows, KEEP]`` column indices of a mask with ``KEEP`` true entries per row."""
    return tf.reshape(tf.where(mask)[:, 1], [-1, KEEP])


def ties_by_running_count(z: tf.Tensor) -> tf.Tensor:
    """``top_k``'s columns: those above the cut, then tied ones in column order until ``KEEP``."""
    cut = _nth_largest(z, KEEP)
    above, tied = z > cut, tf.equal(z, cut)
    short = KEEP - tf.reduce_sum(tf.cast(above, tf.int32), axis=1, keepdims=True)
    return _columns(above | (tied & (tf.cumsum(tf.cast(tied, tf.int32), axis=1) <= short)))


def distinct_keys(z: tf.Tensor) -> tf.Tensor:
    """``top_k``'s columns: the ``KEEP`` largest int64 keys (score bits in order, then lower column first)."""
    bits = tf.bitcast(z, tf.int32)
    ordered = tf.where(bits < 0, tf.bitwise.bitwise_xor(bits, tf.constant(0x7FFFFFFF, tf.int32)), bits)
    column = tf.range(tf.shape(z, out_type=tf.int64)[1], dtype=tf.int64)
    keys = tf.bitwise.left_shift(tf.cast(ordered, tf.int64), 32) + (0xFFFFFFFF - column)
    return _columns(keys >= _nth_largest(keys, KEEP))


def top_k_columns(z: tf.Tensor) -> tf.Tensor:
    """TFRS's selection."""
    return tf.math.top_k(z, k=KEEP, sorted=False).indices


SELECTIONS = {"nth_element_ties": ties_by_running_count, "nth_element_keys": distinct_keys}


def variants(labels: tf.Tensor) -> dict:
    """Returns name -> tf.function(scores) -> (loss, gradient) for every variant."""

    def cross_entropy(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(y, logits))

    def tfrs_layer(scores: tf.Tensor) -> tf.Tensor:
        return cross_entropy(*tfrs.layers.loss.HardNegativeMining(HARD)(scores, labels))

    def gathered(select):
        def loss(scores: tf.Tensor) -> tf.Tensor:
            columns = select(tf.stop_gradient(scores) + labels * BIG)
            return cross_entropy(tf.gather(scores, columns, batch_dims=1), tf.gather(labels, columns, batch_dims=1))

        return loss

    losses = {"tfrs": tfrs_layer, "no_mining": lambda scores: cross_entropy(scores, labels)}
    losses["twotower"] = lambda scores: cross_entropy(*model.hard_negative_mining(scores, labels, HARD))
    losses.update({name: gathered(select) for name, select in SELECTIONS.items()})

    def with_gradient(loss):
        @tf.function
        def run(scores: tf.Tensor):
            with tf.GradientTape() as tape:
                tape.watch(scores)
                value = loss(scores)
            return value, tape.gradient(value, scores)

        return run

    return {name: with_gradient(loss) for name, loss in losses.items()}


def check(scores: tf.Tensor, labels: tf.Tensor) -> None:
    """Raises unless every selection keeps exactly ``top_k``'s columns in every row."""
    z = scores + labels * BIG
    expected = np.sort(top_k_columns(z).numpy(), axis=1)
    for name, select in SELECTIONS.items():
        got = np.sort(tf.function(select)(z).numpy(), axis=1)
        if not np.array_equal(expected, got):
            raise AssertionError(f"{name} keeps other columns than top_k")


class TfrsMining(model.Retrieval):
    """The trainer's Retrieval task with TFRS's ``HardNegativeMining`` layer, as before."""

    def mine(self, scores: tf.Tensor, labels: tf.Tensor) -> tuple:
        return tfrs.layers.loss.HardNegativeMining(self._num_hard_negatives)(scores, labels)


def pipeline_paths(root: str) -> SimpleNamespace:
    """Returns the newest train / catalog examples and transform graph under a pipeline root."""
    examples = newest_examples(root)
    return SimpleNamespace(
        train=[os.path.join(examples, "Split-train", "*.gz")],
        catalog=[os.path.join(examples, "Split-catalog", "*.gz")],
        transform_graph=newest_output(root, "Transform", "transform_graph"),
    )


def train_step_ms(repeats: int, pipeline_root: str = "") -> dict:
    """Returns {variant: {"wall": [ms], "cpu": [ms]}} of the hm profile's hard-negatives ``train_step``,
    on the demo data or on the examples and transform graph of ``pipeline_root`` (an hm run's)."""
    profile = load_profile("hm")
    phase = next(ph for ph in profile.trainer.plan() if ph.hard_negatives)
    with tempfile.TemporaryDirectory() as root:
        if pipeline_root:
            paths = pipeline_paths(pipeline_root)
        else:
            generate_hm(os.path.join(root, "data"), DEMO_CUSTOMERS, DEMO_ARTICLES, DEMO_TRANSACTIONS, seed=0)
            inputs = prepare(profile, os.path.join(root, "data"), os.path.join(root, "inputs"))
            paths = inputs.paths(os.path.join(root, "run"), os.path.join(root, "ckpt"))
        two_tower, batches, tft_output = step_model(profile, paths, phase.batch_size)
        n_vocab, n_users = tft_output.vocabulary_size_by_name(ITEM_ID), tft_output.vocabulary_size_by_name(USER_ID)
        tasks = {"tfrs": (TfrsMining, phase.hard_negatives), "twotower": (model.Retrieval, phase.hard_negatives)}
        tasks["no_mining"] = (model.Retrieval, None)
        steps = {}
        for name, (task, hard) in tasks.items():
            two_tower.set_loss(phase.loss, phase.negatives, phase.hard_negatives, phase.alignment)
            two_tower.task = task(remove_accidental_hits=True, num_hard_negatives=hard)
            steps[name] = warm_step(two_tower, batches)
        ms = {name: {"wall": [], "cpu": []} for name in tasks}
        for _ in range(repeats):
            for name, step in steps.items():
                wall, cpu = time_step(step, batches)
                ms[name]["wall"].append(round(wall, 2))
                ms[name]["cpu"].append(round(cpu, 2))
                print(f"{name}: {ms[name]['wall'][-1]} ms/step wall, {ms[name]['cpu'][-1]} CPU", flush=True)
    return {
        "data": pipeline_root or f"demo ({DEMO_TRANSACTIONS} transactions)",
        "users": n_users,
        "items": n_vocab,
        "phase": phase.name,
        "negatives": phase.negatives,
        "hard_negatives": phase.hard_negatives,
        "ms": ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--calls", type=int, default=30, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=5, help="alternating timings of each variant")
    parser.add_argument("--train-step", action="store_true", help="also time the hm profile's train_step (see above)")
    parser.add_argument(
        "--pipeline-root", default="", help="--train-step on this finished hm run's examples and transform graph"
    )
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(QUERIES, CANDIDATES)).astype(np.float32)
    tied = scores.copy()
    tied[:, 10:20] = np.sort(tied, axis=1)[:, -KEEP : -KEEP + 1]  # ten copies of each row's cut value
    scores, tied = tf.constant(scores), tf.constant(tied)
    labels = tf.one_hot(tf.range(QUERIES), CANDIDATES)
    for inputs in (scores, tied):
        check(inputs, labels)
    runs = variants(labels)
    cpu_ms = {f"{name} {kind}": [] for name in runs for kind in ("random", "tied")}
    for _ in range(args.repeats):
        for name, run in runs.items():
            for kind, inputs in (("random", scores), ("tied", tied)):
                run(inputs)  # traced and warm
                start = time.process_time()
                for _ in range(args.calls):
                    run(inputs)
                cpu_ms[f"{name} {kind}"].append((time.process_time() - start) / args.calls * 1000)
    report = {}
    if args.train_step:
        step = train_step_ms(args.repeats, args.pipeline_root)
        step["median_ms"] = {
            name: {kind: statistics.median(v) for kind, v in times.items()} for name, times in step["ms"].items()
        }
        report["train_step"] = step
    write_report(
        args.out,
        {
            **report,
            "queries": QUERIES,
            "candidates": CANDIDATES,
            "hard_negatives": HARD,
            "same_columns_as_top_k": True,
            "cpu_ms_median": {k: round(statistics.median(v), 2) for k, v in cpu_ms.items()},
            "cpu_ms": {k: [round(x, 2) for x in v] for k, v in cpu_ms.items()},
        },
    )


if __name__ == "__main__":
    main()
