"""Reading a profile: YAML (a built-in name or a path) -> checked, frozen ``Profile``.

A wrong type or an unknown field is a ``ConfigError`` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import yaml

from twotower.config.checks import check_feature, check_feature_references, check_values
from twotower.config.profile import (
    PROFILE_DIR,
    ContractConfig,
    DataConfig,
    EvaluatorConfig,
    Feature,
    PhaseConfig,
    Profile,
    ServingConfig,
    SplitConfig,
    TrainerConfig,
)
from twotower.errors import ConfigError


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
        check_feature(i, f, where)
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
    check_values(profile, where)
    check_feature_references(profile, where)
    return profile


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
