"""Validation-driven training: Recall@K on a sample of eval users after every epoch, early stopping, best weights.

``ValidationSample`` holds, for up to ``trainer.validation_users`` users of the eval split, the
transformed query features of their first eval interaction, their eval items (the truth) and, with
``evaluator.exclude_seen``, their training items (excluded from the ranking, as the evaluator does).
``ValidationCallback`` ranks every vocabulary item for them at each epoch's end (the candidate tower
over the catalogue's item features) and logs ``val_recall@K`` (Keras logs: TensorBoard and
history.json show it). It stops a phase after ``trainer.patience`` epochs without a new best and
keeps a copy of the best weights seen, so ``restore`` can end training on them. A phase ending on a
weight average is measured once more after the average is swapped in.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from twotower.trainer.checkpoints import Best
from twotower.transform.features import ITEM_ID, USER_ID

USER_BATCH = 256  # users ranked at once: [256, n_items] scores
REPEAT_SCALES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # factors calibrate_repeats tries on the learned repeat scores


@dataclasses.dataclass
class ValidationSample:
    """The sampled eval users: query features ``[users, ...]``, truth and exclusions as item index sets."""

    queries: Dict[str, np.ndarray]
    truth: List[np.ndarray]  # per user: eval item indices
    seen: List[np.ndarray]  # per user: item indices excluded from the ranking (empty unless exclude_seen)


def sample_users(
    eval_examples: tf.data.Dataset,
    train_examples: tf.data.Dataset,
    n_users: int,
    exclude_seen: bool,
    seed: int = 0,
) -> Optional[ValidationSample]:
    """Returns up to ``n_users`` eval users (seeded), or None when the eval split has none.

    ``eval_examples``/``train_examples``: unbatched transformed examples (dicts of tensors).
    """
    first: Dict[int, Dict[str, np.ndarray]] = {}
    truth: Dict[int, set] = {}
    for batch in eval_examples.batch(65536):
        arrays = {name: tensor.numpy() for name, tensor in batch.items()}
        for row, (user, item) in enumerate(zip(arrays[USER_ID], arrays[ITEM_ID], strict=True)):
            truth.setdefault(int(user), set()).add(int(item))
            if int(user) not in first:  # a copy: a view would keep the whole batch alive per user
                first[int(user)] = {name: np.array(values[row]) for name, values in arrays.items()}
    if not first:
        return None
    chosen = sorted(first)
    if len(chosen) > n_users:
        chosen = sorted(np.random.default_rng(seed).choice(chosen, n_users, replace=False).tolist())
    seen: Dict[int, set] = {u: set() for u in chosen}
    if exclude_seen:
        wanted = set(chosen)
        for batch in train_examples.batch(65536):
            for user, item in zip(batch[USER_ID].numpy(), batch[ITEM_ID].numpy(), strict=True):
                if int(user) in wanted:
                    seen[int(user)].add(int(item))
    names = list(first[chosen[0]])
    queries = {n: np.stack([first[u][n] for u in chosen]) for n in names}
    as_array = lambda s: np.array(sorted(s), dtype=np.int64)  # noqa: E731
    return ValidationSample(queries, [as_array(truth[u]) for u in chosen], [as_array(seen[u]) for u in chosen])


def recall_at_k(
    query_tower: tf.keras.Model,
    candidates: tf.Tensor,
    sample: ValidationSample,
    k: int,
    temperature: float = 1.0,
    repeat_scale: float = 1.0,
) -> float:
    """Returns the mean over sampled users of |top-k ∩ truth| / |truth|; ``candidates``: ``[n_items, dim]``.

    Items are ranked as in training: dot product / ``temperature`` plus the history's repeat scores
    (``repeat_scale`` x, when the query tower has them).
    """
    n_items = int(candidates.shape[0])
    k = min(k, n_items)
    recalls = []
    n_users = len(sample.truth)
    everything = tf.range(n_items, dtype=tf.int64)
    for start in range(0, n_users, USER_BATCH):
        batch = {name: tf.constant(v[start : start + USER_BATCH]) for name, v in sample.queries.items()}
        scores = tf.matmul(query_tower(batch, training=False), candidates, transpose_b=True) / temperature
        bias = query_tower.repeat_bias(batch, everything)
        scores = (scores if bias is None else scores + repeat_scale * bias).numpy()
        for row, seen in enumerate(sample.seen[start : start + USER_BATCH]):
            scores[row, seen[seen < n_items]] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        for row, truth in enumerate(sample.truth[start : start + USER_BATCH]):
            recalls.append(len(np.intersect1d(top[row], truth)) / len(truth))
    return float(np.mean(recalls))


class ValidationCallback(tf.keras.callbacks.Callback):
    """Logs ``val_recall@K`` per epoch, stops a phase after ``patience`` epochs without a new best, keeps the best.

    One instance lives through every phase (the best is global); ``start_phase`` resets the patience
    count. ``item_features``: the transformed features of every vocabulary item, by item index.
    """

    def __init__(
        self,
        sample: ValidationSample,
        item_features: Mapping[str, np.ndarray],
        k: int,
        patience: int,
        keep: Optional[Callable[[Best], None]] = None,
    ):
        super().__init__()
        self.sample, self.k, self.patience, self.keep = sample, k, patience, keep
        self.items = {name: tf.constant(v) for name, v in item_features.items()}
        self.key = f"val_recall@{k}"
        self.best = -1.0
        self.best_epoch: Optional[int] = None
        self.best_weights: Optional[List[np.ndarray]] = None
        self.waited = 0
        self.averages: List[Dict[str, Any]] = []

    def resume(self, best: Optional[Best]) -> None:
        """Carries on from the best an earlier (cut-off) run kept, so that the end can restore it."""
        if best is not None:
            self.best, self.best_epoch, self.best_weights = best.value, best.epoch, best.weights

    def start_phase(self, first_epoch: int = 0, epochs_done: int = 0) -> None:
        """Starts counting epochs without improvement for the phase whose first epoch is ``first_epoch``.

        A new phase (a new loss) counts from 0. A phase resumed after ``epochs_done`` of its epochs
        counts those that came after its best (all of them when its best is from an earlier phase),
        so a cut and a resume do not give a phase more patience than one uninterrupted run.
        """
        improved = first_epoch if self.best_epoch is None else max(first_epoch, self.best_epoch + 1)
        self.waited = max(0, first_epoch + epochs_done - improved)

    def recall(self, repeat_scale: float = 1.0) -> float:
        """Returns Recall@K of the model's current weights on the sample."""
        candidates = self.model.candidate_tower(self.items, training=False)
        temperature = float(self.model.temperature)
        return recall_at_k(self.model.query_tower, candidates, self.sample, self.k, temperature, repeat_scale)

    def calibrate_repeats(self) -> Optional[Dict[str, Any]]:
        """Scales the history's learned repeat scores by the factor of ``REPEAT_SCALES`` that ranks the sample best.

        Training learns them from every interaction, short early histories included; serving and the
        evaluation score users at the end of their histories, where rebuys weigh more. Returns
        {"scales": {factor: Recall@K}, "chosen": factor}, or None when no history scores repeats.
        """
        histories = [h for h in getattr(self.model.query_tower, "histories", []) if h.feature.repeat]
        if not histories:
            return None
        recalls = {scale: self.recall(scale) for scale in REPEAT_SCALES}
        chosen = max(REPEAT_SCALES, key=lambda scale: (recalls[scale], scale == 1.0))
        for history in histories:
            history.repeat.assign(history.repeat * chosen)
        return {"scales": {str(s): v for s, v in recalls.items()}, "chosen": chosen}

    def measure(self, epoch: int) -> Tuple[float, bool]:
        """Returns (Recall@K of the current weights, whether it is a new best, kept as such)."""
        value = self.recall()
        if value <= self.best:
            return value, False
        self.best, self.best_epoch = value, epoch
        self.best_weights = [w.numpy() for w in self.model.weights]
        if self.keep is not None:
            self.keep(Best(epoch, value, self.best_weights))
        return value, True

    def check_average(self, epoch: int, phase: str) -> float:
        """Measures the weights as they are now, a phase's weight average swapped in after its last epoch."""
        value, _ = self.measure(epoch)
        self.averages.append({"phase": phase, "epoch": epoch, self.key: value})
        return value

    def summary(self, restored: bool, stopped_early: Sequence[str]) -> Dict[str, Any]:
        """Returns history.json's ``validation``: metric, users, best and its epoch, restored, phases stopped early."""
        return {
            "metric": self.key,
            "users": len(self.sample.truth),
            "best": self.best,
            "best_epoch": self.best_epoch,
            "restored": restored,
            "stopped_early": list(stopped_early),
            "weight_averages": list(self.averages),
        }

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        value, better = self.measure(epoch)
        if logs is not None:
            logs[self.key] = value
        if better:
            self.waited = 0
            return
        self.waited += 1
        if self.patience and self.waited >= self.patience:
            logging.info("%s did not improve for %d epoch(s): the phase stops early", self.key, self.waited)
            self.model.stop_training = True

    def restore(self) -> Optional[int]:
        """Sets the model to the best weights seen; returns that epoch (None when nothing was validated)."""
        if self.best_weights is None:
            return None
        for variable, value in zip(self.model.weights, self.best_weights, strict=True):
            variable.assign(value)
        return self.best_epoch
