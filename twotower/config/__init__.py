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
FEATURE_KINDS = ("categorical", "numeric")


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


@dataclasses.dataclass(frozen=True)
class Feature:
    """One model feature: a column of the users, items or interactions file."""

    name: str
    source: str
    kind: str
    model: bool = True  # false: validated by the contract and carried in examples, not fed to the towers


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
class TrainerConfig:
    """Two-tower trainer hyper-parameters."""

    epochs: int
    batch_size: int
    learning_rate: float
    embedding_dim: int
    hidden_units: tuple[int, ...]
    temperature: float
    logq_strength: float = 1.0  # in-batch logQ correction: logits - strength * log q(item); 0 turns it off


@dataclasses.dataclass(frozen=True)
class EvaluatorConfig:
    """Retrieval metrics to compute and the blessing thresholds."""

    ks: tuple[int, ...]
    blessing_k: int
    min_recall: float
    min_lift_over_popularity: float
    exclude_seen: bool
    ease_l2: float = 300.0  # EASE baseline's L2 weight; 0 turns the baseline off


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
    if annotation == "tuple[int, ...]":
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{where}: '{key}' must be a list of integers, got {value!r}")
        return tuple(value)
    raise ConfigError(f"{where}: no rule to read '{key}' of type {annotation}")


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
        if f.source not in FEATURE_SOURCES:
            raise ConfigError(f"{where}: features[{i}].source must be one of {FEATURE_SOURCES}, got {f.source!r}")
        if f.kind not in FEATURE_KINDS:
            raise ConfigError(f"{where}: features[{i}].kind must be one of {FEATURE_KINDS}, got {f.kind!r}")
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: feature names must be unique, got {names}")
    profile = Profile(
        name=_coerce("name", "str", raw["name"], where),
        data=_typed("data", DataConfig, raw["data"], where),
        features=features,
        split=_typed("split", SplitConfig, raw["split"], where),
        trainer=_typed("trainer", TrainerConfig, raw["trainer"], where),
        evaluator=_typed("evaluator", EvaluatorConfig, raw["evaluator"], where),
        serving=_typed("serving", ServingConfig, raw["serving"], where),
        contract=_typed("contract", ContractConfig, raw.get("contract", {}), where),
        path=str(raw.get("path", where)),
    )
    _check_values(profile, where)
    return profile


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
    t = p.trainer
    for key, value in (("epochs", t.epochs), ("batch_size", t.batch_size), ("embedding_dim", t.embedding_dim)):
        if value < 1:
            raise ConfigError(f"{where}: 'trainer.{key}' must be >= 1, got {value}")
    if t.learning_rate <= 0 or t.temperature <= 0:
        raise ConfigError(f"{where}: 'trainer.learning_rate' and 'trainer.temperature' must be > 0")
    e = p.evaluator
    if not e.ks or min(e.ks) < 1:
        raise ConfigError(f"{where}: 'evaluator.ks' must be a non-empty list of positive integers")
    if e.blessing_k not in e.ks:
        raise ConfigError(f"{where}: 'evaluator.blessing_k' ({e.blessing_k}) must be one of evaluator.ks {list(e.ks)}")
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
