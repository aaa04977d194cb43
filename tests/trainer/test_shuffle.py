"""The trainer's block shuffle: every example once per epoch, full batches, rows kept whole, a new order per epoch."""

import numpy as np
import tensorflow as tf

from twotower.trainer.data import PARSE_BATCH, shuffled_batches

N = 5 * PARSE_BATCH + 1234  # six parse batches, the last one short


def blocks(n: int = N) -> tf.data.Dataset:
    ids = np.arange(n, dtype=np.int64)
    rows = {"id": ids, "history": np.stack([ids * 10 + k for k in range(3)], axis=1)}
    return tf.data.Dataset.from_tensor_slices(rows).batch(PARSE_BATCH)


def epoch(dataset: tf.data.Dataset) -> list:
    return [{name: t.numpy() for name, t in batch.items()} for batch in dataset]


def test_each_example_once_per_epoch_in_full_batches_with_rows_kept_whole():
    batches = epoch(shuffled_batches(blocks(), 512, window=2 * PARSE_BATCH, seed=3))
    assert [len(b["id"]) for b in batches] == [512] * (N // 512) + [N % 512]
    ids = np.concatenate([b["id"] for b in batches])
    assert sorted(ids.tolist()) == list(range(N))
    history = np.concatenate([b["history"] for b in batches])
    np.testing.assert_array_equal(history, np.stack([ids * 10 + k for k in range(3)], axis=1))


def test_batches_mix_blocks_and_the_order_is_reproducible_and_new_each_epoch():
    dataset = shuffled_batches(blocks(), 512, window=2 * PARSE_BATCH, seed=3)
    first, second = epoch(dataset), epoch(dataset)
    again = epoch(shuffled_batches(blocks(), 512, window=2 * PARSE_BATCH, seed=3))
    other = epoch(shuffled_batches(blocks(), 512, window=2 * PARSE_BATCH, seed=4))
    order = np.concatenate([b["id"] for b in first])
    assert not np.array_equal(order, np.arange(N))
    np.testing.assert_array_equal(order, np.concatenate([b["id"] for b in again]))
    assert not np.array_equal(order, np.concatenate([b["id"] for b in second]))
    assert not np.array_equal(order, np.concatenate([b["id"] for b in other]))
    # a window joins two parse batches: each full batch draws from both, not from one run of rows
    for batch in first[: len(first) - 1]:
        assert len(np.unique(batch["id"] // PARSE_BATCH)) >= 2


def test_data_smaller_than_the_window_is_one_uniform_permutation():
    batches = epoch(shuffled_batches(blocks(1000), 64, window=100_000, seed=0))
    ids = np.concatenate([b["id"] for b in batches])
    assert sorted(ids.tolist()) == list(range(1000))
    assert abs(np.corrcoef(ids, np.arange(1000))[0, 1]) < 0.2
