"""One batch's loss and gradients on 2 replicas (MirroredStrategy over 2 logical CPUs) and on one device.

usage: python -m tests.trainer.replicas_child
Prints one JSON line: {case: {"one": loss, "two": loss, "gradient_error": max |difference|, "gradient_scale":
max |gradient|, "rows": [rows on replica 0, rows on replica 1]}}; the "train_step" case compares the
variables after one optimizer step instead (its "gradient_*" keys hold the weights' difference and update).
A fresh process: logical devices must be set before TensorFlow initialises its runtime.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from twotower.trainer import history, model  # noqa: E402
from twotower.transform.features import ITEM_ID, USER_ID  # noqa: E402

N_USERS, N_ITEMS, DIM = 8, 6, 4
rng = np.random.default_rng(7)
USER_TABLE = rng.normal(size=(N_USERS, DIM)).astype(np.float32)
ITEM_TABLE = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
# item 1 in rows 1 and 4, item 0 in rows 0 and 6: accidental hits across the two replicas' halves
BATCH = {
    USER_ID: np.arange(8, dtype=np.int64),
    ITEM_ID: np.array([0, 1, 2, 3, 1, 4, 0, 5], np.int64),
    "category": np.array([0, 1, 1, 2, 1, 0, 0, 2], np.int64),
    # each user's earlier items (-1 padding) and their age buckets: the repeat bias reaches other rows' items
    "history": np.array([[1, 4, -1], [0, -1, -1], [5, 2, 1], [-1, -1, -1], [3, -1, -1], [4, 4, 0], [2, -1, -1], [1, 5, 3]]),
    "age": np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0], [1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 1, 0]]),
}  # fmt: skip
FREQUENCY = np.array([0.3, 0.25, 0.15, 0.1, 0.1, 0.1], np.float32)
DRAWS = np.array([5, 2, 2, 0], np.int64)


class Table(tf.keras.Model):
    """A trainable tower: unit rows of a table; with ``repeat``, a learned score per history age bucket."""

    def __init__(self, key: str, values: np.ndarray, repeat: bool = False):
        super().__init__()
        self.key = key
        self.table = tf.Variable(values, name=f"{key}_table")
        self.repeat = tf.Variable([0.5, -0.3], name="repeat") if repeat else None

    def call(self, features, training=None):
        return tf.math.l2_normalize(tf.gather(self.table, features[self.key]), axis=1)

    def repeat_bias(self, features, candidates):
        if self.repeat is None:
            return None
        ids = features["history"]
        scores = tf.gather(self.repeat, features["age"]) * tf.cast(ids >= 0, tf.float32)
        return history.repeat_bias(ids, scores, candidates)


class FixedDraws(model.TwoTowerModel):
    """Sampled negatives that are the same rows on every replica (so both runs see the same candidates)."""

    def sample_rows(self):
        return tf.constant(DRAWS[: self.negatives])


def build(options) -> model.TwoTowerModel:
    two_tower = FixedDraws(
        Table(USER_ID, USER_TABLE, repeat=True),
        Table(ITEM_ID, ITEM_TABLE),
        0.2,
        learn_temperature=True,
        item_frequency=FREQUENCY,
        item_table={ITEM_ID: np.arange(N_ITEMS, dtype=np.int64)},
        alignment_feature="category",
    )
    two_tower.set_loss(**options)
    two_tower.query_tower(BATCH), two_tower.candidate_tower(BATCH)
    return two_tower


def loss_and_gradients(two_tower, features):
    with tf.GradientTape() as tape:
        loss = two_tower.compute_loss(features, training=True)
    variables = two_tower.trainable_variables
    return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]


def slices(rows):
    """Returns the per-replica batches: ``rows[0]`` rows on replica 0, the next ``rows[1]`` on replica 1."""
    bounds = [0, rows[0], rows[0] + rows[1]]

    def part(context):
        i = context.replica_id_in_sync_group
        return {k: tf.constant(v[bounds[i] : bounds[i + 1]]) for k, v in BATCH.items()}

    return part


def compare(strategy, options, rows):
    one = build(options)
    one_loss, one_gradients = loss_and_gradients(one, {k: v[: sum(rows)] for k, v in BATCH.items()})
    with strategy.scope():
        two = build(options)
    features = strategy.experimental_distribute_values_from_function(slices(rows))

    @tf.function
    def step(features):
        loss, gradients = strategy.run(loss_and_gradients, args=(two, features))
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        return total, [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in gradients]

    two_loss, two_gradients = step(features)
    error = max(float(np.max(np.abs(a - b))) for a, b in zip(one_gradients, two_gradients, strict=True))
    scale = max(float(np.max(np.abs(a))) for a in one_gradients)
    return {"one": float(one_loss), "two": float(two_loss), "gradient_error": error, "gradient_scale": scale}


def compare_train_step(strategy, rows):
    """One Keras train step (the optimizer's own cross-replica sum of gradients) from the same weights."""
    one = build({})
    one.compile(optimizer=tf.keras.optimizers.Adagrad(0.5))
    one.optimizer.build(one.trainable_variables)
    before = [w.numpy() for w in one.weights]
    logs_one = one.train_step({k: tf.constant(v[: sum(rows)]) for k, v in BATCH.items()})
    with strategy.scope():
        two = build({})
        two.compile(optimizer=tf.keras.optimizers.Adagrad(0.5))
        two.optimizer.build(two.trainable_variables)
    features = strategy.experimental_distribute_values_from_function(slices(rows))
    logs_two = tf.function(lambda f: strategy.run(two.train_step, args=(f,)))(features)
    logged = strategy.experimental_local_results(logs_two["loss"])
    error = max(float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(one.weights, two.weights, strict=True))
    moved = max(float(np.max(np.abs(a.numpy() - b))) for a, b in zip(one.weights, before, strict=True))
    return {
        "one": float(logs_one["loss"]),
        "two": sum(float(x) for x in logged),  # Keras logs the sum of the replicas' losses
        "gradient_error": error,
        "gradient_scale": moved,
    }


def main() -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    cases = {
        "softmax": ({}, (4, 4)),
        "softmax_uneven": ({}, (3, 2)),
        "softmax_empty_replica": ({}, (3, 0)),  # the last, short batch can leave replica 1 no rows
        "bpr": ({"loss": "bpr"}, (4, 4)),
        "hard_negatives": ({"hard_negatives": 3}, (4, 4)),
        "sampled_negatives": ({"negatives": 4, "hard_negatives": 5}, (4, 3)),
        "alignment": ({"alignment": 0.7}, (5, 3)),
    }
    out = {}
    for name, (options, rows) in cases.items():
        out[name] = dict(compare(strategy, options, rows), rows=list(rows))
    out["train_step"] = dict(compare_train_step(strategy, (4, 4)), rows=[4, 4])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
