"""The TFRS two-tower model and its loss options (towers live in towers.py).

Every option is a candidate set plus a TFRS Retrieval task over it:

- in-batch softmax: each query's positive against the other rows' items,
  logQ-corrected (score - strength * log q(item)) and with accidental hits
  (the same item in another row) removed;
- ``negatives`` M: M items drawn uniformly from the vocabulary join every
  query's candidates (mixed negative sampling), their features looked up in the
  catalogue table; q then mixes the two samplers;
- ``hard_negatives`` h: per query only the h highest-scoring negatives count;
- ``loss: bpr``: pairwise log-sigmoid of positive minus each negative instead of
  the softmax.

Under a distribution strategy with several replicas (MirroredStrategy, MultiWorkerMirroredStrategy)
each replica holds a share of the global batch. The in-batch candidates (embeddings and item ids)
are all-gathered across replicas, so every query scores the whole global batch as one replica would;
its positive sits at its replica's offset in the gathered batch. Each replica's loss is summed over
its own queries and the optimizer sums the gradients across replicas, so loss and gradients are
the single-replica ones on the global batch (tests/trainer/test_replicas.py checks this to 1e-5).
Sampled negatives are drawn on each replica for its own queries: M per query either way.
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from twotower.trainer.towers import Tower
from twotower.transform.features import ITEM_ID

# TFRS marks removed accidental hits by adding this to their logits.
_REMOVED = tfrs.layers.loss.MIN_FLOAT / 2


def hard_negative_mining(scores: tf.Tensor, labels: tf.Tensor, hard_negatives: int) -> tuple:
    """Returns ``(scores, labels)`` ``[queries, k]`` of each query's positive and its ``k - 1`` hardest negatives.

    ``k`` is ``hard_negatives + 1``, at most the number of candidates. The same columns as TFRS's
    ``HardNegativeMining`` keeps, found without ``tf.math.top_k``: ``NthElement`` (a partial sort)
    finds each row's k-th largest score, every column above it is kept, and columns tied with it
    are taken in column order until there are k, which is the tie rule of ``top_k``. Only the order of
    the kept columns differs from TFRS's, and the softmax loss does not depend on it. The hm
    profile's hard-negatives step takes 36 CPU ms instead of 44 at the full H&M size
    (bench/hard_negative_mining.py). A NaN score ranks highest: the row still yields k columns
    (not a shape error), and its NaN is kept, so a diverged row's loss is NaN, never a finite loss
    over the columns that happen to be numbers.
    """
    keep = tf.minimum(hard_negatives + 1, tf.shape(scores)[1])
    ranked = tf.stop_gradient(scores) + tf.cast(labels, scores.dtype) * tfrs.layers.loss.MAX_FLOAT
    ranked = tf.where(tf.math.is_nan(ranked), tf.constant(np.inf, ranked.dtype), ranked)
    cut = tf.raw_ops.NthElement(input=ranked, n=tf.shape(ranked)[1] - keep)[:, None]
    above, tied = ranked > cut, tf.equal(ranked, cut)
    short = keep - tf.reduce_sum(tf.cast(above, tf.int32), axis=1, keepdims=True)
    kept = above | (tied & (tf.cumsum(tf.cast(tied, tf.int32), axis=1) <= short))
    columns = tf.reshape(tf.where(kept)[:, 1], [tf.shape(scores)[0], keep])
    return tf.gather(scores, columns, batch_dims=1), tf.gather(labels, columns, batch_dims=1)


def item_frequency(item_counts: np.ndarray) -> np.ndarray:
    """Returns ``[n_items]`` float32 add-one-smoothed training frequencies of each item index.

    In-batch negatives are the other rows' items, so an item is sampled in
    proportion to its training count; smoothing keeps unseen items (and the OOV
    bucket) finite under the log.
    """
    counts = np.asarray(item_counts, dtype=np.float64) + 1.0
    return (counts / counts.sum()).astype(np.float32)


class BPRLoss(tf.keras.losses.Loss):
    """Bayesian personalised ranking: mean over negatives of softplus(negative - positive) per query.

    Takes the Retrieval task's ``y_true`` (one-hot positives) and ``y_pred``
    (logits ``[queries, candidates]``); removed accidental hits do not count.
    Summed over queries like TFRS's softmax loss.
    """

    def __init__(self):
        super().__init__(reduction=tf.keras.losses.Reduction.SUM, name="bpr")

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_true = tf.cast(y_true, y_pred.dtype)
        positive = tf.reduce_sum(y_true * y_pred, axis=1, keepdims=True)
        negative = (1.0 - y_true) * tf.cast(y_pred > _REMOVED, y_pred.dtype)
        pairwise = tf.math.softplus(y_pred - positive) * negative
        return tf.math.divide_no_nan(tf.reduce_sum(pairwise, axis=1), tf.reduce_sum(negative, axis=1))


def alignment_loss(
    embeddings: tf.Tensor, categories: tf.Tensor, first: tf.Tensor | int = 0, rows: Optional[tf.Tensor] = None
) -> tf.Tensor:
    """Returns the category-alignment loss: sum over rows of 1 - cos(embedding, its category's mean direction).

    ``embeddings``: ``[batch, dim]`` unit vectors (the in-batch candidates); ``categories``: int64 ``[batch]``.
    The mean directions come from the whole batch; the sum runs over ``rows`` rows from ``first``
    (default: all), one replica's share of a gathered global batch.
    Summed over rows like the retrieval loss, so a phase's ``alignment`` weight is per example.
    """
    categories = tf.cast(categories, tf.int32)
    sums = tf.math.unsorted_segment_sum(embeddings, categories, tf.reduce_max(categories) + 1)
    centres = tf.gather(tf.math.l2_normalize(sums, axis=1), categories)
    cosines = tf.reduce_sum(embeddings * centres, axis=1)
    if rows is not None:
        cosines = cosines[first : first + rows]
    return tf.reduce_sum(1.0 - cosines)


def _replica_context() -> Optional[tf.distribute.ReplicaContext]:
    """Returns the replica context when the step runs on more than one replica (else None)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def _gather(context: tf.distribute.ReplicaContext, value: tf.Tensor) -> tf.Tensor:
    """Returns ``value`` ``[rows, ...]`` of every replica, concatenated in replica order along axis 0."""
    # tf.identity places the value on this replica's device: an input tensor carries none, and
    # MultiWorkerMirroredStrategy's all_gather needs one ("destinations can not be empty")
    return context.all_gather(tf.identity(value), axis=0)


class Retrieval(tfrs.tasks.Retrieval):
    """TFRS's Retrieval task, whose logits may also get a per-(query, candidate) ``score_bias``.

    The bias (``[queries, candidates]``, logit units) is added before the logQ correction, the
    accidental-hit removal and hard-negative mining, exactly where the dot products are: the
    history's repeat scores (``trainer.history``) compete with them in the same softmax.
    Query ``i``'s positive is candidate ``positive_offset + i`` (a replica's offset in a gathered batch).
    """

    def call(  # noqa: D102  (TFRS's own, plus score_bias)
        self,
        query_embeddings: tf.Tensor,
        candidate_embeddings: tf.Tensor,
        sample_weight: Optional[tf.Tensor] = None,
        candidate_sampling_probability: Optional[tf.Tensor] = None,
        candidate_ids: Optional[tf.Tensor] = None,
        compute_metrics: bool = False,
        compute_batch_metrics: bool = False,
        score_bias: Optional[tf.Tensor] = None,
        positive_offset: tf.Tensor | int = 0,
    ) -> tf.Tensor:
        scores = tf.linalg.matmul(query_embeddings, candidate_embeddings, transpose_b=True)
        labels = tf.one_hot(positive_offset + tf.range(tf.shape(scores)[0]), tf.shape(scores)[1])
        if score_bias is not None:
            scores = scores + score_bias
        if candidate_sampling_probability is not None:
            scores = tfrs.layers.loss.SamplingProbablityCorrection()(scores, candidate_sampling_probability)
        if self._remove_accidental_hits:
            scores = tfrs.layers.loss.RemoveAccidentalHits()(labels, scores, candidate_ids)
        if self._num_hard_negatives is not None:
            scores, labels = self.mine(scores, labels)
        return self._loss(y_true=labels, y_pred=scores, sample_weight=sample_weight)

    def mine(self, scores: tf.Tensor, labels: tf.Tensor) -> tuple:
        """Returns the positive and the hardest negatives of each query (``hard_negative_mining``)."""
        return hard_negative_mining(scores, labels, self._num_hard_negatives)


class TwoTowerModel(tfrs.Model):
    """Two towers, a (learnable or fixed) temperature and the loss of the current phase.

    ``item_frequency`` (``[n_items]``, see ``item_frequency``) turns on the logQ
    correction with ``logq_strength``; ``item_table`` maps each transformed item
    feature to ``[n_vocab, ...]`` values by item index, which the ``negatives``
    option needs to embed sampled items. ``set_loss`` switches options between phases.
    """

    def __init__(
        self,
        query_tower: Tower,
        candidate_tower: Tower,
        temperature: float,
        learn_temperature: bool = False,
        item_frequency: Optional[np.ndarray] = None,
        logq_strength: float = 1.0,
        item_table: Optional[Mapping[str, np.ndarray]] = None,
        alignment_feature: str = "",
    ):
        """``alignment_feature``: the transformed categorical item feature ``set_loss``'s ``alignment`` uses."""
        super().__init__()
        self.alignment_feature = alignment_feature
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.log_temperature = tf.Variable(math.log(temperature), trainable=learn_temperature, name="log_temperature")
        self.item_frequency = None if item_frequency is None else tf.constant(item_frequency, tf.float32)
        self.logq_strength = logq_strength
        self.item_table = {k: tf.constant(v) for k, v in (item_table or {}).items()}
        self.set_loss()

    def train_step(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """TFRS's train step, plus loss scaling when the optimizer is a LossScaleOptimizer (``mixed_float16``).

        The optimizer sums the gradients of the replicas' losses; regularization, added on every
        replica, is divided by their number. Keras logs the sum over replicas: the global batch's loss.
        """
        scaled = isinstance(self.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization_loss = tf.nn.scale_regularization_loss(
                tf.reduce_sum([tf.reduce_sum(x) for x in self.losses])
            )
            total_loss = loss + regularization_loss
            target = self.optimizer.get_scaled_loss(total_loss) if scaled else total_loss
        gradients = tape.gradient(target, self.trainable_variables)
        if scaled:
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        metrics = {metric.name: metric.result() for metric in self.metrics}
        metrics.update(loss=loss, regularization_loss=regularization_loss, total_loss=total_loss)
        return metrics

    @property
    def temperature(self) -> tf.Tensor:
        """The softmax temperature, a scalar float32 in [0.01, 10]."""
        return tf.clip_by_value(tf.exp(self.log_temperature), 0.01, 10.0)

    def set_loss(
        self, loss: str = "softmax", negatives: int = 0, hard_negatives: int = 0, alignment: float = 0.0
    ) -> None:
        """Selects the loss options (see module docstring); retrace the train step afterwards."""
        if negatives and not self.item_table:
            raise ValueError("sampled negatives need the catalogue's item features (item_table)")
        if alignment and not self.alignment_feature:
            raise ValueError("the alignment loss needs the model's alignment_feature")
        self.negatives = negatives
        self.alignment = alignment
        self.task = Retrieval(
            loss=BPRLoss() if loss == "bpr" else None,
            remove_accidental_hits=True,
            num_hard_negatives=hard_negatives or None,
        )

    def sample_rows(self) -> tf.Tensor:
        """Returns ``[negatives]`` int64 item indices drawn uniformly from the item table."""
        n_vocab = tf.shape(self.item_table[ITEM_ID], out_type=tf.int64)[0]
        return tf.random.uniform([self.negatives], 0, n_vocab, dtype=tf.int64)

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Returns the scalar loss of a batch of transformed ``features`` under the current options.

        On one of several replicas: the loss of this replica's queries against the global batch's
        candidates (module docstring), whose sum over replicas is the single-replica loss.
        """
        queries = self.query_tower(features, training=training)
        positives = self.candidate_tower(features, training=training)
        ids = features[ITEM_ID]
        rows = tf.shape(queries)[0]
        first = tf.constant(0, tf.int32)  # this replica's first row in the global batch
        categories = features[self.alignment_feature] if self.alignment else None
        context = _replica_context()
        if context is not None:
            # every replica takes part, even one left without rows by the last, short batch
            sizes = _gather(context, tf.reshape(rows, [1]))
            first = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
            positives, ids = _gather(context, positives), _gather(context, ids)
            if categories is not None:
                categories = _gather(context, categories)
        candidates = positives
        if self.negatives:
            rows_drawn = self.sample_rows()
            sampled = {name: tf.gather(values, rows_drawn) for name, values in self.item_table.items()}
            candidates = tf.concat([candidates, self.candidate_tower(sampled, training=training)], axis=0)
            ids = tf.concat([ids, sampled[ITEM_ID]], axis=0)
        probability = None
        if self.item_frequency is not None:
            # a negative slot holds item i with probability (B p_i + M / n) / (B + M), n the table's items
            probability = tf.gather(self.item_frequency, ids)
            if self.negatives:
                batch = tf.cast(tf.shape(positives)[0], tf.float32)  # the global batch
                uniform = self.negatives / tf.cast(tf.shape(self.item_table[ITEM_ID])[0], tf.float32)
                probability = (batch * probability + uniform) / (batch + self.negatives)
            probability = tf.pow(probability, self.logq_strength)

        bias = self.query_tower.repeat_bias(features, ids)

        def loss() -> tf.Tensor:
            return self.task(
                queries / self.temperature,
                candidates,
                candidate_sampling_probability=probability,
                candidate_ids=ids,
                score_bias=bias,
                positive_offset=first,
            )

        # under MirroredStrategy the last, short batch can leave a replica with no rows
        total = tf.cond(rows > 0, loss, lambda: 0.0 * tf.reduce_sum(queries))
        if self.alignment:
            total += self.alignment * alignment_loss(positives, categories, first, rows)
        return total
