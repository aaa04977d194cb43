"""Input pipelines: gzipped tf.Example files -> raw features -> transformed features."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

PARSE_BATCH = 4096


def files_of(patterns: Iterable[str]) -> List[str]:
    """Returns the sorted files matching ``patterns``; raises if there are none."""
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no example files match {list(patterns)}")
    return files


def optional_spec(feature_spec: Mapping[str, Any], required: Iterable[str] = ()) -> Dict[str, Any]:
    """Returns ``feature_spec`` with a default for every fixed-length feature not in ``required``.

    A contract may call a column required while a row left it empty (the catalogue's
    unnamed items): parsed with the default ("" for strings, NaN for floats, 0 for
    integers) it is a missing value, as everywhere else, instead of a parse error.
    """
    keep, out = set(required), dict(feature_spec)
    for name, spec in feature_spec.items():
        if name in keep or not isinstance(spec, tf.io.FixedLenFeature) or spec.default_value is not None:
            continue
        size = int(np.prod(spec.shape)) if spec.shape else 1
        missing = "" if spec.dtype == tf.string else float("nan") if spec.dtype.is_floating else 0
        out[name] = tf.io.FixedLenFeature(spec.shape, spec.dtype, default_value=[missing] * size)
    return out


def raw_dataset(patterns: Iterable[str], feature_spec: Mapping[str, tf.io.FixedLenFeature]) -> tf.data.Dataset:
    """Returns batches of parsed raw features (dicts of tensors) from gzipped TFRecords."""
    return (
        tf.data.TFRecordDataset(files_of(patterns), compression_type="GZIP")
        .batch(PARSE_BATCH)
        .map(lambda s: tf.io.parse_example(s, dict(feature_spec)), num_parallel_calls=tf.data.AUTOTUNE)
    )


def transformed_dataset(
    patterns: Iterable[str],
    tft_output: tft.TFTransformOutput,
    raw_features: Iterable[str],
    keep: Optional[Iterable[str]] = None,
) -> tf.data.Dataset:
    """Returns unbatched examples: dicts of the transformed features named in ``keep`` (default: all).

    Only the ``raw_features`` are parsed, so catalog examples (item columns only)
    and interaction examples go through the same transform graph.
    """
    return transformed_batches(patterns, tft_output, raw_features, keep).unbatch()


def transformed_batches(
    patterns: Iterable[str],
    tft_output: tft.TFTransformOutput,
    raw_features: Iterable[str],
    keep: Optional[Iterable[str]] = None,
) -> tf.data.Dataset:
    """Returns :func:`transformed_dataset`'s examples in batches of up to PARSE_BATCH (as parsed)."""
    spec = {name: tft_output.raw_feature_spec()[name] for name in raw_features}
    layer = tft_output.transform_features_layer()
    names = None if keep is None else list(keep)

    def transform(raw: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        out = layer(raw)
        return out if names is None else {name: out[name] for name in names}

    return raw_dataset(patterns, spec).map(transform)


def shuffled_batches(blocks: tf.data.Dataset, batch_size: int, window: int, seed: int) -> tf.data.Dataset:
    """Returns the examples of ``blocks`` (batches as parsed) shuffled, in batches of ``batch_size``.

    The shuffle works on whole blocks, not on single examples (a per-example shuffle costs more CPU
    per training step than the rest of the input pipeline together): the blocks' order is shuffled
    in a buffer of about ``window`` examples, the blocks are joined ``window`` examples at a time and
    each join's rows are permuted at random. The batches then hold examples from anywhere in a
    window of the data, as a ``shuffle(window)`` of single examples would give. Every batch has
    ``batch_size`` examples but the epoch's last. ``seed`` makes the order reproducible; each epoch
    (each pass over the returned dataset) has its own.
    """
    blocks_per_window = max(1, -(-window // PARSE_BATCH))

    def permute(index: tf.Tensor, joined: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        rows = tf.shape(next(iter(joined.values())))[0]
        key = tf.stack([tf.constant(seed, tf.int64), index])
        order = tf.random.experimental.stateless_shuffle(tf.range(rows), seed=key)
        return {name: tf.gather(tensor, order) for name, tensor in joined.items()}

    return (
        blocks.shuffle(blocks_per_window, seed=seed)
        .rebatch(blocks_per_window * PARSE_BATCH)
        .enumerate()
        .map(permute)
        .rebatch(batch_size)
    )
