"""Ordinary, unit-testable feature code behind the Transform module file.

Transformed feature names are stable and independent of the data set:

- ``user_id``, ``item_id``: int64 ``[batch]`` vocabulary indices of the profile's
  user and item id columns; vocabulary files ``user_id`` and ``item_id`` (the
  index equal to the vocabulary size is the out-of-vocabulary bucket).
- each categorical model feature (``model: true``) ``NAME``: int64 ``[batch]`` index into vocabulary
  file ``NAME`` (plus one OOV bucket); a missing value is the empty string.
- each numeric feature ``NAME``: float32 ``[batch]`` z-score; a missing value
  is replaced by the training mean (so it scores 0).
"""

from __future__ import annotations

from typing import Dict, List, Tuple, Union

import tensorflow as tf
import tensorflow_transform as tft

from twotower.config import Profile

USER_ID = "user_id"
ITEM_ID = "item_id"
NUM_OOV_BUCKETS = 1
AnyTensor = Union[tf.Tensor, tf.SparseTensor, tf.RaggedTensor]


def raw_inputs(profile: Profile) -> Tuple[List[str], List[str]]:
    """Returns (query raw feature names, item raw feature names): the serving signatures' inputs."""
    d = profile.data
    query = [d.user_id] + [f.name for f in profile.model_features if f.source in ("user", "interaction")]
    items = [d.item_id] + [f.name for f in profile.model_features if f.source == "item"]
    return query, items


def to_dense(x: AnyTensor) -> tf.Tensor:
    """Returns ``x`` as a dense ``[batch]`` tensor; missing values become '' or NaN.

    ``x`` is ``[batch, 1]`` dense (a feature always present) or ``[batch, None]``
    sparse (a feature that may be missing), as TFX parses them from tf.Examples.
    """
    if isinstance(x, tf.SparseTensor):
        default = "" if x.dtype == tf.string else float("nan")
        x = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default)
    if isinstance(x, tf.RaggedTensor):
        x = x.to_tensor(default_value="" if x.dtype == tf.string else float("nan"), shape=[None, 1])
    if x.dtype in (tf.float64, tf.int64, tf.int32):
        x = tf.cast(x, tf.float32)
    return tf.reshape(x, [-1])


def zscore_with_imputation(x: tf.Tensor) -> tf.Tensor:
    """Returns the z-score of float ``x`` ``[batch]``; NaNs (missing) map to 0."""
    present = tf.boolean_mask(x, tf.math.is_finite(x))
    mean = tft.mean(present)
    std = tf.sqrt(tft.var(present))
    filled = tf.where(tf.math.is_finite(x), x, mean)
    return tf.math.divide_no_nan(filled - mean, std)


def preprocess(inputs: Dict[str, AnyTensor], profile: Profile) -> Dict[str, tf.Tensor]:
    """Returns the transformed features (see module docstring) of raw ``inputs``."""
    outputs: Dict[str, tf.Tensor] = {}
    ids = {USER_ID: profile.data.user_id, ITEM_ID: profile.data.item_id}
    for name, column in ids.items():
        outputs[name] = tft.compute_and_apply_vocabulary(
            to_dense(inputs[column]), num_oov_buckets=NUM_OOV_BUCKETS, vocab_filename=name
        )
    for feature in profile.model_features:
        x = to_dense(inputs[feature.name])
        if feature.kind == "categorical":
            outputs[feature.name] = tft.compute_and_apply_vocabulary(
                x, num_oov_buckets=NUM_OOV_BUCKETS, vocab_filename=feature.name
            )
        else:
            outputs[feature.name] = zscore_with_imputation(x)
    return outputs
