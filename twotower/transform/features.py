"""Ordinary, unit-testable feature code behind the Transform module file.

Transformed feature names are stable and independent of the data set (README,
"Feature config"); every output has a fixed shape per example:

- ``user_id``, ``item_id``: int64 ``[batch]`` vocabulary indices of the profile's
  user and item id columns; vocabulary files ``user_id`` and ``item_id`` (the
  index equal to the vocabulary size is the out-of-vocabulary bucket).
- each model feature (``model: true``) ``NAME``, by kind:

  - categorical: int64 ``[batch]`` index into vocabulary file ``NAME`` (plus one
    OOV bucket); a missing value is the empty string.
  - numeric, ``transform: zscore``: float32 ``[batch]`` z-score; a missing value
    is replaced by the training mean (so it scores 0). ``transform: quantiles``:
    int64 ``[batch]`` quantile bucket in ``[0, buckets)``; missing is ``buckets``.
  - text: int64 ``[batch, max_tokens]`` token indices into vocabulary file
    ``NAME`` (plus one OOV bucket), padded with -1.
  - dense: float32 ``[batch, dim]``, the column's vector; missing is all zeros.
  - time: float32 ``[batch, 2 * len(parts) + recency]``: sin and cos of each
    part's angle (UTC), then recency in [0, 1] if asked for.
  - cross: int64 ``[batch]`` hash bucket in ``[0, hash_buckets)`` of the crossed values.
  - history: int64 ``[batch, max_length]`` indices of the history's item ids in the ``item_id``
    vocabulary (its OOV bucket for unknown ids), most recent first, padded with -1; and
    ``NAME_age_days``: float32 ``[batch, max_length]``, their ages in days (0 where padded; an
    item sent without an age counts as ``position`` days old, its rank in the list).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import tensorflow as tf
import tensorflow_transform as tft

from twotower.config import DataConfig, Feature, Profile

USER_ID = "user_id"
ITEM_ID = "item_id"
NUM_OOV_BUCKETS = 1
TEXT_PADDING = -1
SECONDS_PER_DAY = 86400
AnyTensor = Union[tf.Tensor, tf.SparseTensor, tf.RaggedTensor]


def feature_columns(feature: Feature, data: DataConfig) -> List[str]:
    """Returns the raw columns ``feature`` is computed from."""
    if feature.kind == "history":
        return [feature.name, history_ages(feature)]
    if feature.kind == "time":
        return [data.timestamp]
    if feature.kind == "cross":
        return list(feature.cross)
    return [feature.name]


def raw_inputs(profile: Profile) -> Tuple[List[str], List[str]]:
    """Returns (query raw feature names, item raw feature names): the serving signatures' inputs.

    The query side is the user id plus every column its model features read
    (the timestamp for time features, the crossed columns for crosses); the item
    side likewise for item features.
    """
    d = profile.data
    query, items = [d.user_id], [d.item_id]
    for feature in profile.model_features:
        side = items if feature.source == "item" else query
        side.extend(c for c in feature_columns(feature, d) if c not in side)
    return query, items


def to_dense(x: AnyTensor) -> tf.Tensor:
    """Returns ``x`` as a dense ``[batch]`` tensor; missing values become '', NaN or 0 (integers).

    ``x`` is ``[batch, 1]`` dense (a feature always present) or ``[batch, None]``
    sparse (a feature that may be missing), as TFX parses them from tf.Examples.
    Floats become float32 and integers int64.
    """
    default = "" if x.dtype == tf.string else (0 if x.dtype.is_integer else float("nan"))
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default)
    if isinstance(x, tf.RaggedTensor):
        x = x.to_tensor(default_value=default, shape=[None, 1])
    if x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    elif x.dtype.is_integer:
        x = tf.cast(x, tf.int64)
    return tf.reshape(x, [-1])


def vocabulary(x: AnyTensor, name: str, min_frequency: int = 1, max_vocab: int = 0) -> AnyTensor:
    """Returns int64 indices (shape of ``x``) into vocabulary file ``name``; rare or unseen values -> OOV bucket."""
    return apply_vocabulary(x, vocabulary_file(x, name, min_frequency, max_vocab))


def vocabulary_file(x: AnyTensor, name: str, min_frequency: int = 1, max_vocab: int = 0) -> tf.Tensor:
    """Returns the (deferred) vocabulary file ``name`` of ``x``'s training values (``tft.vocabulary``)."""
    threshold = min_frequency if min_frequency > 1 else None
    return tft.vocabulary(x, top_k=max_vocab or None, frequency_threshold=threshold, vocab_filename=name)


def apply_vocabulary(x: AnyTensor, file: tf.Tensor) -> AnyTensor:
    """Returns int64 indices (shape of ``x``) of its values in vocabulary ``file``, unseen ones in the OOV bucket."""
    return tft.apply_vocabulary(x, file, num_oov_buckets=NUM_OOV_BUCKETS)


def history_ages(feature: Feature) -> str:
    """Returns the name of the raw and transformed ages of history ``feature``."""
    return feature.name + "_age_days"


def history_features(
    ids: AnyTensor, ages: AnyTensor, max_length: int, item_vocabulary: tf.Tensor
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Returns (int64 item indices, float32 ages), each ``[batch, max_length]``, of a history (module docstring).

    ``ids``/``ages``: string and float ``[batch, None]`` (sparse or ragged, as parsed or sent), the first
    ``max_length`` values kept; ``item_vocabulary``: the ``item_id`` vocabulary file.
    """
    ids = _ragged(ids)[:, :max_length]
    ages = _ragged(ages)[:, :max_length]
    indices = apply_vocabulary(ids, item_vocabulary).to_tensor(default_value=TEXT_PADDING, shape=[None, max_length])
    ages = tf.cast(ages.to_tensor(default_value=float("nan"), shape=[None, max_length]), tf.float32)
    position = tf.broadcast_to(tf.range(max_length, dtype=tf.float32), tf.shape(ages))
    ages = tf.where(tf.math.is_finite(ages), tf.maximum(ages, 0.0), position)
    return tf.reshape(indices, [-1, max_length]), tf.where(indices >= 0, ages, 0.0)


def _ragged(x: AnyTensor) -> tf.RaggedTensor:
    if isinstance(x, tf.SparseTensor):
        return tf.RaggedTensor.from_sparse(x)
    if isinstance(x, tf.RaggedTensor):
        return x
    return tf.RaggedTensor.from_tensor(x)


def zscore_with_imputation(x: tf.Tensor) -> tf.Tensor:
    """Returns the z-score of float ``x`` ``[batch]``; NaNs (missing) map to 0."""
    present = tf.boolean_mask(x, tf.math.is_finite(x))
    mean = tft.mean(present)
    std = tf.sqrt(tft.var(present))
    filled = tf.where(tf.math.is_finite(x), x, mean)
    return tf.math.divide_no_nan(filled - mean, std)


def quantile_buckets(x: tf.Tensor, buckets: int) -> tf.Tensor:
    """Returns int64 ``[batch]`` training-quantile buckets of float ``x`` in ``[0, buckets)``; NaN -> ``buckets``."""
    finite = tf.math.is_finite(x)
    boundaries = tft.quantiles(tf.boolean_mask(x, finite), buckets, epsilon=min(1.0 / buckets, 0.01))
    bucket = tft.apply_buckets(tf.where(finite, x, tf.zeros_like(x)), boundaries)
    return tf.where(finite, tf.cast(bucket, tf.int64), tf.constant(buckets, tf.int64))


def tokens(text: tf.Tensor, separator: str, max_tokens: int) -> tf.RaggedTensor:
    """Returns string ``[batch, None]`` tokens of ``text`` ``[batch]``, at most ``max_tokens`` per row.

    With a ``separator`` the value is split on it and tokens are stripped; without,
    it is lower-cased and split on whitespace and punctuation. Empty tokens are dropped.
    """
    if separator:
        parts = tf.strings.strip(tf.strings.split(text, sep=separator))
    else:
        words = tf.strings.regex_replace(tf.strings.lower(text, encoding="utf-8"), r"[\pP\pS]", " ")
        parts = tf.strings.split(words)
    parts = tf.ragged.boolean_mask(parts, tf.strings.length(parts) > 0)
    return parts[:, :max_tokens]


def token_ids(text: tf.Tensor, feature: Feature) -> tf.Tensor:
    """Returns int64 ``[batch, max_tokens]`` vocabulary indices of ``text``'s tokens, padded with TEXT_PADDING."""
    length = feature.max_tokens
    words = tokens(text, feature.separator, length).to_sparse()
    ids = vocabulary(words, feature.name, feature.min_frequency, feature.max_vocab)
    dense = tf.sparse.to_dense(ids, default_value=TEXT_PADDING)
    dense = tf.pad(dense, [[0, 0], [0, length - tf.shape(dense)[1]]], constant_values=TEXT_PADDING)
    return tf.reshape(dense, [-1, length])


def dense_vector(x: AnyTensor, dim: int) -> tf.Tensor:
    """Returns float32 ``[batch, dim]`` of a vector column parsed FixedLen ``[batch, dim]`` or sparse; missing: 0."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], dim]))
    if isinstance(x, tf.RaggedTensor):
        x = x.to_tensor(shape=[None, dim])
    return tf.reshape(tf.cast(x, tf.float32), [-1, dim])


def day_of_year(days: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Returns (0-based day of the year, days in that year), int64, of int64 ``days`` since 1970-01-01.

    The proleptic Gregorian calendar by integer arithmetic (H. Hinnant's ``civil_from_days``).
    """
    z = days + 719468
    era = tf.math.floordiv(z, 146097)
    doe = z - era * 146097  # day of the 400-year era, [0, 146096]
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365  # year of the era, [0, 399]
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)  # day of the year starting 1 March, [0, 365]
    month_from_march = (5 * doy + 2) // 153  # 0 = March .. 11 = February
    year = yoe + era * 400 + tf.cast(month_from_march >= 10, tf.int64)
    # tf.equal, not ==: Transform traces this as a TF1 graph, where == between tensors is Python identity (False)
    leap = tf.cast(
        tf.equal(year % 4, 0) & (tf.not_equal(year % 100, 0) | tf.equal(year % 400, 0)),
        tf.int64,
    )
    jan_feb = month_from_march >= 10
    return tf.where(jan_feb, doy - 306, doy + 59 + leap), 365 + leap


def cycle_fraction(seconds: tf.Tensor, part: str) -> tf.Tensor:
    """Returns float32 ``[batch]`` position in [0, 1) of int64 UTC ``seconds`` within a day, week or year."""
    days = tf.math.floordiv(seconds, SECONDS_PER_DAY)
    if part == "hour":
        fraction = tf.cast(tf.math.floormod(seconds, SECONDS_PER_DAY), tf.float64) / SECONDS_PER_DAY
    elif part == "day_of_week":
        fraction = tf.cast(tf.math.floormod(days + 3, 7), tf.float64) / 7  # 1970-01-01 was a Thursday; Monday = 0
    elif part == "day_of_year":
        day, length = day_of_year(days)
        fraction = tf.cast(day, tf.float64) / tf.cast(length, tf.float64)
    else:
        raise ValueError(f"unknown time part {part!r}")
    return tf.cast(fraction, tf.float32)


def recency(seconds: tf.Tensor) -> tf.Tensor:
    """Returns float32 ``[batch]`` in [0, 1]: log-scaled age before the newest training interaction.

    ``log1p(age in days) / log1p(training span in days)``; later times (serving,
    eval) are clipped to 0, the freshest training data.
    """
    newest, oldest = tft.max(seconds), tft.min(seconds)
    age = tf.maximum(tf.cast(newest - seconds, tf.float32), 0.0) / SECONDS_PER_DAY
    span = tf.maximum(tf.cast(newest - oldest, tf.float32) / SECONDS_PER_DAY, 1.0)
    return tf.minimum(tf.math.log1p(age) / tf.math.log1p(span), 1.0)


def time_features(timestamp: AnyTensor, parts: Sequence[str], with_recency: bool) -> tf.Tensor:
    """Returns float32 ``[batch, 2 * len(parts) + with_recency]``: sin, cos per part, then recency."""
    seconds = to_dense(timestamp)
    columns = []
    for part in parts:
        angle = 2 * math.pi * cycle_fraction(seconds, part)
        columns += [tf.sin(angle), tf.cos(angle)]
    if with_recency:
        columns.append(recency(seconds))
    return tf.stack(columns, axis=1)


def hashed_cross(columns: Sequence[tf.Tensor], buckets: int) -> tf.Tensor:
    """Returns int64 ``[batch]`` buckets in ``[0, buckets)`` of the joined string ``columns`` (FarmHash: stable)."""
    return tf.strings.to_hash_bucket_fast(tf.strings.join(list(columns), separator="\x1f"), buckets)


def transform_feature(inputs: Dict[str, AnyTensor], feature: Feature, data: DataConfig) -> tf.Tensor:
    """Returns the transformed feature ``feature.name`` (module docstring) of raw ``inputs``."""
    kind = feature.kind
    if kind == "categorical":
        return vocabulary(to_dense(inputs[feature.name]), feature.name, feature.min_frequency, feature.max_vocab)
    if kind == "numeric":
        x = tf.cast(to_dense(inputs[feature.name]), tf.float32)
        return quantile_buckets(x, feature.buckets) if feature.transform == "quantiles" else zscore_with_imputation(x)
    if kind == "text":
        return token_ids(to_dense(inputs[feature.name]), feature)
    if kind == "dense":
        return dense_vector(inputs[feature.name], feature.dim)
    if kind == "time":
        return time_features(inputs[data.timestamp], feature.parts, feature.recency)
    if kind == "cross":
        return hashed_cross([to_dense(inputs[c]) for c in feature.cross], feature.hash_buckets)
    raise ValueError(f"feature '{feature.name}': unknown kind {kind!r}")


def preprocess(inputs: Dict[str, AnyTensor], profile: Profile) -> Dict[str, tf.Tensor]:
    """Returns the transformed features (see module docstring) of raw ``inputs``."""
    d = profile.data
    items = to_dense(inputs[d.item_id])
    item_vocabulary = vocabulary_file(items, ITEM_ID, d.item_min_frequency)
    outputs: Dict[str, tf.Tensor] = {
        USER_ID: vocabulary(to_dense(inputs[d.user_id]), USER_ID, d.user_min_frequency),
        ITEM_ID: apply_vocabulary(items, item_vocabulary),
    }
    for feature in profile.model_features:
        if feature.kind == "history":
            ids, ages = history_features(
                inputs[feature.name], inputs[history_ages(feature)], feature.max_length, item_vocabulary
            )
            outputs[feature.name], outputs[history_ages(feature)] = ids, ages
        else:
            outputs[feature.name] = transform_feature(inputs, feature, d)
    return outputs


def vocabulary_features(profile: Profile) -> List[str]:
    """Returns the names of the vocabulary files Transform writes: the ids, then categorical and text features."""
    return [USER_ID, ITEM_ID] + [f.name for f in profile.model_features if f.kind in ("categorical", "text")]


def table_size(feature: Feature, vocabulary_size: Optional[int] = None) -> int:
    """Returns the number of distinct int64 values ``feature``'s output takes (0: its output is float).

    ``vocabulary_size`` (without OOV) is needed for categorical and text features.
    """
    if feature.kind in ("categorical", "text"):
        if vocabulary_size is None:
            raise ValueError(f"feature '{feature.name}': table_size needs its vocabulary size")
        return vocabulary_size + NUM_OOV_BUCKETS
    if feature.kind == "numeric" and feature.transform == "quantiles":
        return feature.buckets + 1  # the last bucket holds missing values
    if feature.kind == "cross":
        return feature.hash_buckets
    return 0


def history_item_features(profile: Profile) -> List[str]:
    """Returns the item features a history feature pools besides the ids (they need a table by item index)."""
    return sorted({name for f in profile.model_features if f.kind == "history" for name in f.item_features})
