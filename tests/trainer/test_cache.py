"""Where the transformed examples are cached: the same examples from memory and from a file, and the auto rule."""

import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from twotower.trainer import cache, data
from twotower.transform.features import raw_inputs


@pytest.fixture(scope="module")
def train_batches(trainer_inputs):
    query_raw, item_raw = raw_inputs(trainer_inputs.profile)
    tft_output = tft.TFTransformOutput(trainer_inputs.transform_graph)
    patterns = trainer_inputs.split("train")
    return patterns, data.transformed_batches(patterns, tft_output, query_raw + item_raw)


def as_arrays(examples: tf.data.Dataset) -> dict:
    whole = next(iter(examples.batch(10**7)))
    return {name: t.numpy() for name, t in whole.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_small_files_are_cached_in_memory_without_counting(train_batches):
    patterns, batches = train_batches
    plan = cache.plan_cache("auto", "train", patterns, batches)
    assert (plan.where, plan.file, plan.examples) == ("memory", "", -1)
    assert_same(as_arrays(cache.cached(batches, plan).unbatch()), as_arrays(batches.unbatch()))


def test_a_file_cache_gives_the_same_examples_every_epoch_and_is_filled_at_once(train_batches):
    patterns, batches = train_batches
    plan = cache.plan_cache("disk", "train", patterns, batches)
    assert plan.where == "disk" and plan.file.startswith(tempfile.gettempdir())
    examples = cache.cached(batches, plan).unbatch()
    assert os.path.exists(plan.file + ".index")  # filled before the first epoch reads it
    expected = as_arrays(batches.unbatch())
    first, second = as_arrays(examples), as_arrays(examples)
    assert_same(first, expected)
    assert_same(second, expected)
    assert next(iter(examples.batch(2)))  # a peek after the fill does not lock the file


def test_auto_counts_big_files_and_goes_to_disk_over_the_budget(train_batches, monkeypatch):
    patterns, batches = train_batches
    n = sum(1 for _ in batches.unbatch())
    monkeypatch.setattr(cache, "MEMORY_FRACTION", 1e-9)  # any file is big against a budget of a few bytes
    plan = cache.plan_cache("auto", "train", patterns, batches)
    assert plan.where == "disk" and plan.examples == n == cache.count_examples(patterns)
    assert plan.estimated_bytes > plan.budget_bytes
    assert "on disk" in plan.describe() and f"{n:,} examples" in plan.describe()


def test_a_disk_cache_deletes_those_of_dead_trainers_and_needs_room(train_batches, tmp_path, monkeypatch):
    patterns, batches = train_batches
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f"twotower-cache-train-{dead.pid}-abc"
    alive = tmp_path / f"twotower-cache-train-{os.getpid()}-def"
    for directory in (orphan, alive):
        directory.mkdir()
        (directory / "train.index").write_bytes(b"x")
    plan = cache.plan_cache("disk", "train", patterns, batches)
    assert not orphan.exists() and alive.exists()
    assert os.path.dirname(plan.file).startswith(str(tmp_path / f"twotower-cache-train-{os.getpid()}-"))

    free = shutil.disk_usage(str(tmp_path)).free
    monkeypatch.setattr(cache, "MEMORY_FRACTION", 1e-9)
    monkeypatch.setattr(cache, "bytes_per_example", lambda _: free)  # an estimate of one disk per example
    with pytest.raises(OSError, match=r"train cache needs about .* GB on disk in .*TMPDIR"):
        cache.plan_cache("auto", "train", patterns, batches)


def test_an_unknown_mode_is_refused(train_batches):
    patterns, batches = train_batches
    with pytest.raises(ValueError, match="trainer.cache must be one of"):
        cache.plan_cache("ram", "train", patterns, batches)
