"""The profile's typed dataclasses: what a profile YAML holds, loaded once (``config.loader``) and frozen.

A profile names a data set's files and columns, the features the model uses,
the split, the trainer and evaluator settings and the serving name. Code never
hard-codes a data set's column names; it asks the profile.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

PROFILE_DIR = os.path.dirname(os.path.abspath(__file__))
FEATURE_SOURCES = ("user", "item", "interaction")
FEATURE_KINDS = ("categorical", "numeric", "text", "dense", "time", "cross", "history")
# Not a column of any file: time and cross are computed in Transform from other columns, history by ingestion.
DERIVED_KINDS = ("time", "cross", "history")
HISTORY_POOLINGS = ("mean", "recency", "attention")
NUMERIC_TRANSFORMS = ("zscore", "quantiles")
TIME_PARTS = ("hour", "day_of_week", "day_of_year")
# Options a feature kind reads; any other option left at its default (see Feature).
KIND_OPTIONS = {
    "categorical": ("min_frequency", "max_vocab", "embedding_dim"),
    "numeric": ("transform", "buckets", "embedding_dim"),
    "text": ("separator", "max_tokens", "min_frequency", "max_vocab", "embedding_dim"),
    "dense": ("dim", "embedding_dim"),
    "time": ("parts", "recency"),
    "cross": ("cross", "hash_buckets", "embedding_dim"),
    "history": ("max_length", "half_life_days", "item_features", "pooling", "share_embeddings", "repeat"),
}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the three CSV files are and which columns play which role."""

    interactions: str
    items: str
    users: str
    user_id: str
    item_id: str
    timestamp: str
    timestamp_format: str
    item_name: str
    user_min_frequency: int = 1  # users seen fewer times in train share the out-of-vocabulary embedding
    item_min_frequency: int = 1  # likewise for items (their features still tell them apart)
    delimiter: str = ","  # "\t" for TSV, "::" for MovieLens-1M/10M .dat files (split as is, no quoting)
    encoding: str = "utf-8"  # latin-1 for MovieLens .dat files; a UTF-8 BOM is skipped


@dataclasses.dataclass(frozen=True)
class Feature:
    """One model feature: a column of the users, items or interactions file, or one derived from columns.

    ``kind`` says how Transform builds it (README, "Feature config"): categorical,
    numeric, text and dense read the column ``name``; time is derived from
    ``data.timestamp`` and cross from the columns in ``cross``; history is the
    user's earlier interactions, attached by ingestion (``twotower.ingest.history``).
    Options other than those of the feature's kind (``KIND_OPTIONS``) must keep their defaults.
    """

    name: str
    source: str
    kind: str
    model: bool = True  # false: validated by the contract and carried in examples, not fed to the towers
    embedding_dim: int = 0  # embedding (or dense projection) width; 0: from the cardinality (see towers.py)
    min_frequency: int = 1  # categorical, text: values seen fewer times in train go to the OOV bucket
    max_vocab: int = 0  # categorical, text: keep only the most frequent values; 0: all
    transform: str = "zscore"  # numeric: zscore | quantiles
    buckets: int = 10  # numeric with transform quantiles: number of quantile buckets
    separator: str = ""  # text: token separator; "": words (lower-cased, split on spaces and punctuation)
    max_tokens: int = 16  # text: tokens kept per value (the rest are dropped)
    dim: int = 0  # dense: length of the vector in each cell (space-separated floats)
    parts: tuple[str, ...] = ()  # time: cyclical parts, any of TIME_PARTS
    recency: bool = False  # time: add the interaction's age relative to the newest training interaction
    cross: tuple[str, ...] = ()  # cross: the categorical features crossed (two or more)
    hash_buckets: int = 1000  # cross: hash buckets of the crossed values
    max_length: int = 50  # history: the most recent interactions kept
    half_life_days: float = 30.0  # history with pooling recency: an item this many days old weighs half
    item_features: tuple[str, ...] = ()  # history: categorical item features of the history items pooled too
    pooling: str = "mean"  # history: mean | recency | attention (see towers.py)
    share_embeddings: bool = True  # history: pool through the candidate tower's item tables (else its own)
    repeat: bool = True  # history: learn a score for an item the user had before, by its age (trainer/history.py)

    @property
    def derived(self) -> bool:
        """True for kinds computed from other columns (time, cross): no file has a column ``name``."""
        return self.kind in DERIVED_KINDS


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """How interactions are split into train, eval and test.

    ``mode: time`` (default): by date, train < eval < test. With no dates set,
    the last ``test_days`` days are test and the ``eval_days`` days before them
    are eval. ``eval_start``/``test_start`` ('YYYY-MM-DD', UTC) fix the boundaries
    instead; an interaction on or after a boundary belongs to the later split.

    ``mode: per_user``: each user's last ``test_fraction`` of interactions (by
    time, rounded down) are test and the ``eval_fraction`` before them eval, the
    usual protocol for MovieLens-style benchmarks. This groups interactions by
    user, so memory grows with the rows: meant for benchmark-sized data.
    """

    eval_days: int = 7
    test_days: int = 0
    eval_start: str = ""
    test_start: str = ""
    mode: str = "time"
    test_fraction: float = 0.0
    eval_fraction: float = 0.0


@dataclasses.dataclass(frozen=True)
class PhaseConfig:
    """One phase of the training schedule (see README, "Training phases").

    A phase trains for ``epochs`` epochs with its own batch size, learning-rate
    schedule and loss options; 0 for ``batch_size`` / ``learning_rate`` means the
    trainer's value. ``negatives`` uniformly sampled catalogue items join the
    in-batch negatives of every query; ``hard_negatives`` > 0 keeps, per query,
    only that many highest-scoring negatives. ``ema`` > 0 keeps an exponential
    moving average of the weights (that decay per step) and ends the phase on it.
    ``alignment`` > 0 adds, with that weight, a loss pulling each in-batch candidate
    towards the mean of its ``trainer.alignment_feature`` category (``trainer.model``).
    """

    name: str
    epochs: int
    batch_size: int = 0
    learning_rate: float = 0.0
    schedule: str = "constant"
    loss: str = "softmax"
    negatives: int = 0
    hard_negatives: int = 0
    ema: float = 0.0
    alignment: float = 0.0  # weight of the category-alignment loss (trainer.alignment_feature), added to the phase's


PHASE_SCHEDULES = ("constant", "cosine", "warmup")
CACHE_MODES = ("auto", "memory", "disk")  # trainer.cache (trainer/cache.py)
PHASE_LOSSES = ("softmax", "bpr")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Two-tower trainer hyper-parameters.

    Without ``phases`` the trainer follows the default plan (``default_phases``)
    around ``epochs`` epochs of in-batch softmax.
    """

    batch_size: int
    learning_rate: float
    embedding_dim: int  # the towers' output width (the last MLP layer)
    temperature: float
    epochs: int = 0  # length of the main softmax phase of the default plan; ignored when phases are given
    hidden_units: tuple[int, ...] = (128, 64)
    dropout: float = 0.0  # dropout rate after each hidden MLP layer of both towers
    batch_norm: bool = False  # batch normalisation before each hidden layer's activation
    mixed_precision: str = ""  # "" (float32) | mixed_float16 | mixed_bfloat16: for accelerators (slower on CPUs)
    alignment_feature: str = ""  # categorical item feature whose items a phase's `alignment` pulls together
    learn_temperature: bool = False  # train the softmax temperature (starting at ``temperature``)
    logq_strength: float = 1.0  # in-batch logQ correction: logits - strength * log q(item); 0 turns it off
    optimizer: str = "adagrad"  # adagrad | adam | adamw
    weight_decay: float = 0.0  # adamw: decoupled weight decay (a fraction of each weight per step, x the rate)
    # 0: checkpoint at phase ends only. Each save writes every table with its optimizer slot and weight average:
    # 1.5 s for the full H&M size's 1.37M customers, so every 500 steps (11 s of training) cost 13.5% of the
    # training time (bench/checkpoint_cost.py); 5,000 steps is about 2 minutes of training there, 1.4%.
    checkpoint_every_steps: int = 5000
    # where the transformed examples wait between epochs: auto (memory when they fit, else a local file),
    # memory or disk (trainer/cache.py)
    cache: str = "auto"
    # several workers (TF_CONFIG): how long each waits for the others to answer before it gives up
    worker_start_timeout_s: float = 300.0
    # > 0: initial weights (and every other Keras/NumPy/Python draw) from this seed, so one worker and N workers,
    # or two runs, start alike and see the same global batches; 0: unseeded
    seed: int = 0
    phases: tuple[PhaseConfig, ...] = ()
    # Validation-driven training (trainer/validation.py): Recall@validation_k of up to validation_users eval users
    # after every epoch; a phase stops after `patience` epochs without a new best (0: never); with restore_best
    # training ends on the best weights seen. validation_users 0 turns all three off.
    validation_users: int = 2000
    validation_k: int = 50
    patience: int = 0
    restore_best: bool = True

    def plan(self) -> tuple[PhaseConfig, ...]:
        """Returns the phases to run, with batch size and learning rate filled in."""
        phases = self.phases or default_phases(self.epochs, self.learning_rate)
        return tuple(
            dataclasses.replace(
                ph,
                batch_size=ph.batch_size or self.batch_size,
                learning_rate=ph.learning_rate or self.learning_rate,
            )
            for ph in phases
        )


def default_phases(epochs: int, learning_rate: float) -> tuple[PhaseConfig, ...]:
    """Returns the default 4-phase plan around ``epochs`` epochs of in-batch softmax.

    1. warm-up: one epoch of BPR at a tenth of the learning rate, rising linearly;
    2. softmax: ``epochs`` epochs of in-batch softmax (logQ-corrected) at the trainer's batch size,
       which should be the large one (more in-batch negatives), the learning rate decaying on a cosine;
    3. hard negatives: one epoch with 1024 sampled catalogue negatives, the 256 hardest kept, at a twentieth
       of the rate (harder mining or a higher rate hurt on MovieLens and the synthetic H&M data: the hardest
       "negatives" of a dense catalogue are often a user's future positives);
    4. stabilise: one epoch at a tenth of the rate, ending on an exponential moving average of the weights.
    """
    return (
        PhaseConfig("warmup", 1, learning_rate=learning_rate / 10, schedule="warmup", loss="bpr"),
        PhaseConfig("softmax", epochs, learning_rate=learning_rate, schedule="cosine"),
        PhaseConfig("hard_negatives", 1, learning_rate=learning_rate / 20, negatives=1024, hard_negatives=256),
        PhaseConfig("stabilise", 1, learning_rate=learning_rate / 10, ema=0.99),
    )


# The evaluator's baselines (README, "Blessing"), scored on the same held-out users with the same exclusions.
BASELINES = ("popularity", "recent_popularity", "repurchase", "item_knn", "ease")


@dataclasses.dataclass(frozen=True)
class EvaluatorConfig:
    """Retrieval metrics to compute, the baselines next to them, their intervals and the blessing thresholds."""

    ks: tuple[int, ...]
    blessing_k: int
    min_recall: float
    min_lift_over_popularity: float
    exclude_seen: bool
    ease_l2: float = 300.0  # EASE baseline's L2 weight; 0 turns the baseline off
    # Share of the last blessed model's Recall@blessing_k the new model may lose and still be blessed:
    # new >= (1 - max_regression) x last blessed. 0: no loss allowed; negative: demand an improvement.
    max_regression: float = 0.0
    baselines: tuple[str, ...] = BASELINES  # which to compute; popularity is required (the lift above reads it)
    # Baselines the model must beat at Recall@blessing_k: new >= min_lift_over_best_baseline x the best of them.
    # Empty: every baseline computed (EASE is skipped above 30,000 items); min_lift_over_best_baseline 0: no check.
    bless_against: tuple[str, ...] = ()
    min_lift_over_best_baseline: float = 1.0
    window_days: int = 7  # recent_popularity (and repurchase's fill): the last window_days of known interactions
    knn_neighbours: int = 100  # item_knn: most similar items kept per item
    bootstrap_samples: int = 1000  # resamples of the held-out users for the 95% intervals; 0: no intervals
    bootstrap_seed: int = 0
    # Also require the 95% interval of the paired difference model - best baseline to lie above 0.
    require_significance: bool = False


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """Name the model is served under and how many items it returns."""

    model_name: str
    top_k: int


@dataclasses.dataclass(frozen=True)
class ContractConfig:
    """The data contract: schema file, quarantine limit and drift thresholds.

    ``schema`` is a TFDV schema (.pbtxt); a relative path is relative to the
    profile YAML. Empty: the schema is inferred from the train split (no contract).
    Drift is the L-infinity distance for categorical features and the
    Jensen-Shannon divergence for numeric ones; ``drift_thresholds`` overrides
    the default per feature (an id column listed there is checked too).
    """

    schema: str = ""
    max_quarantine_fraction: float = 0.05
    drift_l_infinity: float = 0.25
    drift_jensen_shannon: float = 0.1
    drift_thresholds: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Profile:
    """A whole profile. ``path`` is the file it was read from."""

    name: str
    data: DataConfig
    features: tuple[Feature, ...]
    split: SplitConfig
    trainer: TrainerConfig
    evaluator: EvaluatorConfig
    serving: ServingConfig
    contract: ContractConfig = ContractConfig()
    path: str = ""

    def features_of(self, source: str) -> tuple[Feature, ...]:
        """Returns the features read from ``source`` ('user', 'item' or 'interaction')."""
        return tuple(f for f in self.features if f.source == source)

    def columns_of(self, source: str) -> tuple[Feature, ...]:
        """Returns the features of ``source`` that are columns of its file (not derived), in profile order."""
        return tuple(f for f in self.features_of(source) if not f.derived)

    @property
    def model_features(self) -> tuple[Feature, ...]:
        """Returns the features the towers use (``model: true``), in profile order."""
        return tuple(f for f in self.features if f.model)

    def to_dict(self) -> dict[str, Any]:
        """Returns the profile as plain JSON-able data (for TFX custom_config)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Returns the profile as a JSON string; ``from_dict(json.loads(s))`` inverts it."""
        return json.dumps(self.to_dict(), sort_keys=True)
