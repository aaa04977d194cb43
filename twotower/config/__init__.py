"""Typed configuration: a profile YAML loaded once into frozen dataclasses.

A profile names a data set's files and columns, the features the model uses,
the split, the trainer and evaluator settings and the serving name. Code never
hard-codes a data set's column names; it asks the profile.

Built-in profiles live next to this file (``hm.yaml``); ``load_profile`` takes
either such a name or a path to a YAML file.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Any, Mapping

import yaml

PROFILE_DIR = os.path.dirname(os.path.abspath(__file__))
FEATURE_SOURCES = ("user", "item", "interaction")
FEATURE_KINDS = ("categorical", "numeric", "text", "dense", "time", "cross")
DERIVED_KINDS = ("time", "cross")  # computed in Transform from other columns; not a column of any file
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
}


class ConfigError(ValueError):
    """A profile is missing a field or has a field of the wrong type or value."""


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


@dataclasses.dataclass(frozen=True)
class Feature:
    """One model feature: a column of the users, items or interactions file, or one derived from columns.

    ``kind`` says how Transform builds it (README, "Feature config"): categorical,
    numeric, text and dense read the column ``name``; time is derived from
    ``data.timestamp`` and cross from the columns in ``cross``. Options other than
    those of the feature's kind (``KIND_OPTIONS``) must keep their defaults.
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


PHASE_SCHEDULES = ("constant", "cosine", "warmup")
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
    learn_temperature: bool = False  # train the softmax temperature (starting at ``temperature``)
    logq_strength: float = 1.0  # in-batch logQ correction: logits - strength * log q(item); 0 turns it off
    optimizer: str = "adagrad"  # adagrad | adam
    checkpoint_every_steps: int = 500  # 0: checkpoint at phase ends only
    phases: tuple[PhaseConfig, ...] = ()

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


@dataclasses.dataclass(frozen=True)
class EvaluatorConfig:
    """Retrieval metrics to compute and the blessing thresholds."""

    ks: tuple[int, ...]
    blessing_k: int
    min_recall: float
    min_lift_over_popularity: float
    exclude_seen: bool
    ease_l2: float = 300.0  # EASE baseline's L2 weight; 0 turns the baseline off
    # Share of the last blessed model's Recall@blessing_k the new model may lose and still be blessed:
    # new >= (1 - max_regression) x last blessed. 0: no loss allowed; negative: demand an improvement.
    max_regression: float = 0.0


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


def _typed(section: str, cls: type, raw: Any, where: str) -> Any:
    """Builds dataclass ``cls`` from mapping ``raw``, checking names and scalar types."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: section '{section}' must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) in '{section}': {', '.join(unknown)}")
    values = {}
    for name, field in fields.items():
        if name not in raw:
            if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
                continue
            raise ConfigError(f"{where}: missing field '{section}.{name}'")
        values[name] = _coerce(f"{section}.{name}", field.type, raw[name], where)
    return cls(**values)


def _coerce(key: str, annotation: str, value: Any, where: str) -> Any:
    """Checks ``value`` against a field annotation; ints are accepted for floats."""
    scalar = {"str": str, "int": int, "float": float, "bool": bool}
    if annotation in scalar:
        want = scalar[annotation]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise ConfigError(f"{where}: '{key}' must be {annotation}, got {value!r}")
        return value
    if annotation == "dict[str, float]":
        ok = isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in value.items()
        )
        if not ok:
            raise ConfigError(f"{where}: '{key}' must be a mapping of names to numbers, got {value!r}")
        return {k: float(v) for k, v in value.items()}
    if annotation == "tuple[str, ...]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: '{key}' must be a list of strings, got {value!r}")
        return tuple(value)
    if annotation == "tuple[int, ...]":
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{where}: '{key}' must be a list of integers, got {value!r}")
        return tuple(value)
    raise ConfigError(f"{where}: no rule to read '{key}' of type {annotation}")


def _trainer(raw: Any, where: str) -> TrainerConfig:
    """Builds the TrainerConfig, its ``phases`` list included."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: section 'trainer' must be a mapping, got {type(raw).__name__}")
    phases = raw.get("phases", [])
    if not isinstance(phases, list):
        raise ConfigError(f"{where}: 'trainer.phases' must be a list of phases, got {phases!r}")
    trainer = _typed("trainer", TrainerConfig, {k: v for k, v in raw.items() if k != "phases"}, where)
    parsed = tuple(_typed(f"trainer.phases[{i}]", PhaseConfig, ph, where) for i, ph in enumerate(phases))
    return dataclasses.replace(trainer, phases=parsed)


def _check_trainer(t: TrainerConfig, where: str) -> None:
    """Range checks of the trainer section and its phases."""
    for key, value in (("batch_size", t.batch_size), ("embedding_dim", t.embedding_dim)):
        if value < 1:
            raise ConfigError(f"{where}: 'trainer.{key}' must be >= 1, got {value}")
    if t.learning_rate <= 0 or t.temperature <= 0:
        raise ConfigError(f"{where}: 'trainer.learning_rate' and 'trainer.temperature' must be > 0")
    if not t.phases and t.epochs < 1:
        raise ConfigError(f"{where}: set 'trainer.epochs' (>= 1) or list 'trainer.phases'")
    if t.optimizer not in ("adagrad", "adam"):
        raise ConfigError(f"{where}: 'trainer.optimizer' must be 'adagrad' or 'adam', got {t.optimizer!r}")
    if t.checkpoint_every_steps < 0 or t.logq_strength < 0 or min(t.hidden_units, default=1) < 1:
        raise ConfigError(f"{where}: 'trainer.checkpoint_every_steps', 'logq_strength' and 'hidden_units' must be >= 0")
    names = [ph.name for ph in t.phases]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: 'trainer.phases' names must be unique, got {names}")
    for i, ph in enumerate(t.phases):
        at = f"{where}: 'trainer.phases[{i}]' ({ph.name})"
        if ph.epochs < 1 or ph.batch_size < 0 or ph.learning_rate < 0 or ph.negatives < 0 or ph.hard_negatives < 0:
            raise ConfigError(f"{at}: epochs must be >= 1; batch_size, learning_rate and negatives >= 0")
        if ph.schedule not in PHASE_SCHEDULES:
            raise ConfigError(f"{at}: schedule must be one of {PHASE_SCHEDULES}, got {ph.schedule!r}")
        if ph.loss not in PHASE_LOSSES:
            raise ConfigError(f"{at}: loss must be one of {PHASE_LOSSES}, got {ph.loss!r}")
        if not 0 <= ph.ema < 1:
            raise ConfigError(f"{at}: ema must be in [0, 1), got {ph.ema}")


def from_dict(raw: Mapping[str, Any], where: str = "<dict>") -> Profile:
    """Returns a validated ``Profile`` from parsed YAML/JSON data; raises ConfigError."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a profile must be a mapping at the top level")
    unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(Profile)})
    if unknown:
        raise ConfigError(f"{where}: unknown top-level field(s): {', '.join(unknown)}")
    for key in ("name", "data", "features", "split", "trainer", "evaluator", "serving"):
        if key not in raw:
            raise ConfigError(f"{where}: missing top-level field '{key}'")
    if not isinstance(raw["features"], list) or not raw["features"]:
        raise ConfigError(f"{where}: 'features' must be a non-empty list")
    features = tuple(_typed(f"features[{i}]", Feature, f, where) for i, f in enumerate(raw["features"]))
    for i, f in enumerate(features):
        _check_feature(i, f, where)
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: feature names must be unique, got {names}")
    profile = Profile(
        name=_coerce("name", "str", raw["name"], where),
        data=_typed("data", DataConfig, raw["data"], where),
        features=features,
        split=_typed("split", SplitConfig, raw["split"], where),
        trainer=_trainer(raw["trainer"], where),
        evaluator=_typed("evaluator", EvaluatorConfig, raw["evaluator"], where),
        serving=_typed("serving", ServingConfig, raw["serving"], where),
        contract=_typed("contract", ContractConfig, raw.get("contract", {}), where),
        path=str(raw.get("path", where)),
    )
    _check_values(profile, where)
    _check_feature_references(profile, where)
    return profile


def _check_feature(i: int, f: Feature, where: str) -> None:
    """Checks one feature's source, kind and options on their own."""
    at = f"{where}: features[{i}]"
    if f.source not in FEATURE_SOURCES:
        raise ConfigError(f"{at}.source must be one of {FEATURE_SOURCES}, got {f.source!r}")
    if f.kind not in FEATURE_KINDS:
        raise ConfigError(f"{at}.kind must be one of {FEATURE_KINDS}, got {f.kind!r}")
    at = f"{at} ({f.name}, kind {f.kind})"
    defaults = Feature(name=f.name, source=f.source, kind=f.kind)
    options = sorted({o for opts in KIND_OPTIONS.values() for o in opts} - set(KIND_OPTIONS[f.kind]))
    foreign = [o for o in options if getattr(f, o) != getattr(defaults, o)]
    if foreign:
        raise ConfigError(f"{at}: option(s) {foreign} do not apply to this kind; it reads {list(KIND_OPTIONS[f.kind])}")
    if f.embedding_dim < 0 or f.min_frequency < 1 or f.max_vocab < 0:
        raise ConfigError(f"{at}: embedding_dim and max_vocab must be >= 0, min_frequency >= 1")
    if f.kind == "numeric":
        if f.transform not in NUMERIC_TRANSFORMS:
            raise ConfigError(f"{at}: transform must be one of {NUMERIC_TRANSFORMS}, got {f.transform!r}")
        if f.transform == "quantiles" and f.buckets < 2:
            raise ConfigError(f"{at}: buckets must be >= 2, got {f.buckets}")
        if f.transform == "zscore" and (f.buckets != defaults.buckets or f.embedding_dim):
            raise ConfigError(f"{at}: buckets and embedding_dim apply to 'transform: quantiles' only")
    if f.kind == "text" and f.max_tokens < 1:
        raise ConfigError(f"{at}: max_tokens must be >= 1, got {f.max_tokens}")
    if f.kind == "dense":
        if f.dim < 1:
            raise ConfigError(f"{at}: needs 'dim', the length of its vectors (>= 1)")
        if f.source != "item":
            raise ConfigError(f"{at}: dense vectors are supported on items only (source: item)")
    if f.kind == "time":
        unknown = sorted(set(f.parts) - set(TIME_PARTS))
        if unknown or len(set(f.parts)) != len(f.parts):
            raise ConfigError(f"{at}: parts must be distinct values of {TIME_PARTS}, got {list(f.parts)}")
        if not f.parts and not f.recency:
            raise ConfigError(f"{at}: needs 'parts' ({', '.join(TIME_PARTS)}) or 'recency: true'")
        if f.source != "interaction":
            raise ConfigError(f"{at}: source must be 'interaction' (it is the time of the interaction)")
    if f.kind == "cross":
        if len(f.cross) < 2 or len(set(f.cross)) != len(f.cross):
            raise ConfigError(f"{at}: 'cross' must name two or more distinct features, got {list(f.cross)}")
        if f.hash_buckets < 2:
            raise ConfigError(f"{at}: hash_buckets must be >= 2, got {f.hash_buckets}")


def _tower(source: str) -> str:
    return "candidate" if source == "item" else "query"


def _check_feature_references(p: Profile, where: str) -> None:
    """Checks what features say about each other and about the data section."""
    d = p.data
    if d.user_min_frequency < 1 or d.item_min_frequency < 1:
        raise ConfigError(f"{where}: 'data.user_min_frequency' and 'data.item_min_frequency' must be >= 1")
    by_name = {f.name: f for f in p.features}
    for i, f in enumerate(p.features):
        at = f"{where}: features[{i}] ({f.name}, kind {f.kind})"
        if f.name in ("user_id", "item_id") and f.name not in (d.user_id, d.item_id):
            raise ConfigError(f"{at}: 'user_id' and 'item_id' name the transformed id features; rename it")
        if f.kind == "time" and "hour" in f.parts and not _has_time_of_day(d.timestamp_format):
            raise ConfigError(
                f"{at}: part 'hour' needs a time of day, but data.timestamp_format {d.timestamp_format!r} has none"
            )
        for name in f.cross:
            other = by_name.get(name)
            if other is None:
                raise ConfigError(f"{at}: crosses '{name}', which is not a feature of the profile")
            if other.kind != "categorical":
                raise ConfigError(f"{at}: crosses '{name}' of kind {other.kind}; only categorical features cross")
            if _tower(other.source) != _tower(f.source):
                raise ConfigError(
                    f"{at}: crosses '{name}' (source {other.source}) into the {_tower(f.source)} tower; "
                    "user and interaction features feed the query tower, item features the candidate tower"
                )


def _has_time_of_day(fmt: str) -> bool:
    return fmt == "unix" or any(code in fmt for code in ("%H", "%I", "%T", "%X", "%c"))


def _check_values(p: Profile, where: str) -> None:
    """Range checks that types alone cannot express."""
    reserved = {p.data.user_id, p.data.item_id, p.data.timestamp, p.data.item_name}
    clash = sorted(reserved & {f.name for f in p.features})
    if clash:
        raise ConfigError(f"{where}: features must not repeat id/timestamp/name columns: {clash}")
    s = p.split
    if s.eval_days < 1 or s.test_days < 0:
        raise ConfigError(f"{where}: 'split.eval_days' must be >= 1 and 'split.test_days' >= 0")
    for key in ("eval_start", "test_start"):
        value = getattr(s, key)
        if value:
            try:
                datetime.date.fromisoformat(value)
            except ValueError as e:
                raise ConfigError(f"{where}: 'split.{key}' must be a date YYYY-MM-DD, got {value!r}") from e
    if s.mode not in ("time", "per_user"):
        raise ConfigError(f"{where}: 'split.mode' must be 'time' or 'per_user', got {s.mode!r}")
    if s.mode == "per_user" and not (
        0 < s.test_fraction and 0 < s.eval_fraction and s.test_fraction + s.eval_fraction < 1
    ):
        raise ConfigError(f"{where}: split.mode per_user needs 0 < test_fraction, 0 < eval_fraction, sum < 1")
    if s.eval_start and s.test_start and s.test_start <= s.eval_start:
        raise ConfigError(f"{where}: 'split.test_start' ({s.test_start}) must be after 'split.eval_start'")
    c = p.contract
    if not 0 <= c.max_quarantine_fraction <= 1:
        raise ConfigError(f"{where}: 'contract.max_quarantine_fraction' must be in [0, 1]")
    if min([c.drift_l_infinity, c.drift_jensen_shannon, *c.drift_thresholds.values()]) <= 0:
        raise ConfigError(f"{where}: drift thresholds in 'contract' must be > 0")
    _check_trainer(p.trainer, where)
    e = p.evaluator
    if not e.ks or min(e.ks) < 1:
        raise ConfigError(f"{where}: 'evaluator.ks' must be a non-empty list of positive integers")
    if e.blessing_k not in e.ks:
        raise ConfigError(f"{where}: 'evaluator.blessing_k' ({e.blessing_k}) must be one of evaluator.ks {list(e.ks)}")
    if not -1 <= e.max_regression <= 1:
        raise ConfigError(f"{where}: 'evaluator.max_regression' must be in [-1, 1], got {e.max_regression}")
    if p.serving.top_k < max(e.ks):
        raise ConfigError(f"{where}: 'serving.top_k' ({p.serving.top_k}) must be >= max(evaluator.ks) ({max(e.ks)})")


def builtin_profiles() -> list[str]:
    """Returns the names of the profiles shipped with the package."""
    return sorted(n[:-5] for n in os.listdir(PROFILE_DIR) if n.endswith(".yaml"))


def load_profile(name_or_path: str) -> Profile:
    """Returns the profile named ``name_or_path`` (built-in) or read from that YAML path."""
    if os.path.sep not in name_or_path and not name_or_path.endswith((".yaml", ".yml")):
        if name_or_path not in builtin_profiles():
            raise ConfigError(
                f"unknown profile '{name_or_path}': built-in profiles are {builtin_profiles()}; "
                "or pass a path to a YAML file"
            )
        path = os.path.join(PROFILE_DIR, name_or_path + ".yaml")
    else:
        path = name_or_path
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: profile file not found")
    with open(path, encoding="utf-8") as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
    profile = from_dict(raw, where=path)
    schema = profile.contract.schema
    if schema and not os.path.isabs(schema):
        schema = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), schema))
        profile = dataclasses.replace(profile, contract=dataclasses.replace(profile.contract, schema=schema))
    if schema and not os.path.isfile(schema):
        raise ConfigError(f"{path}: 'contract.schema' file not found: {schema}")
    return profile
