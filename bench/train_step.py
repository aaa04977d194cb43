"""The hm model's ``train_step`` on a few cached batches: the set-up and timing shared by the step
benchmarks (``history_step.py``, ``hard_negative_mining.py --train-step``).

The model is built as the trainer builds it (``train.build_model``), from a transform graph and
its train examples; item counts for the sampled negatives come from the same batches. Timing runs
the step, traced and warmed up, over the cached batches a few times: no input pipeline, validation
or callbacks, so what differs between two models is the step itself.
"""

import os
import time
from typing import Any, List, Tuple

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from twotower.trainer import data, train  # noqa: E402
from twotower.transform.features import ITEM_ID, NUM_OOV_BUCKETS, history_item_features, raw_inputs  # noqa: E402

BATCHES, PASSES, WARM_UP = 40, 3, 5


def step_model(profile: Any, paths: Any, batch_size: int, n_batches: int = BATCHES) -> Tuple[Any, List, Any]:
    """Returns (model, batches, tft_output): ``profile``'s two-tower model built on ``n_batches``
    batches of ``paths.train`` (with ``paths.catalog`` for the history's item table), transformed
    by ``paths.transform_graph``."""
    tft_output = tft.TFTransformOutput(paths.transform_graph)
    query_raw, item_raw = raw_inputs(profile)
    examples = data.transformed_dataset(paths.train, tft_output, query_raw + item_raw)
    batches = list(examples.batch(batch_size).take(n_batches))
    n_vocab = tft_output.vocabulary_size_by_name(ITEM_ID)
    counts = train.item_counts(examples.take(n_batches * batch_size), n_vocab + NUM_OOV_BUCKETS)
    table = train.item_table(paths.catalog, tft_output, profile, n_vocab) if history_item_features(profile) else None
    return train.build_model(profile, tft_output, counts, table, batches[0])[0], batches, tft_output


def warm_step(two_tower: Any, batches: List) -> Any:
    """Returns ``two_tower.train_step`` as a tf.function, traced and run on the first batches."""
    step = tf.function(two_tower.train_step)
    for batch in batches[:WARM_UP]:
        step(batch)
    return step


def time_step(step: Any, batches: List, passes: int = PASSES) -> Tuple[float, float]:
    """Returns (wall ms, CPU ms) per call of ``step``, the mean over ``passes`` passes of ``batches``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(passes):
        for batch in batches:
            step(batch)
    n = passes * len(batches)
    return (time.perf_counter() - wall) / n * 1000, (time.process_time() - cpu) / n * 1000
