"""Typed configuration: a profile YAML loaded once into frozen dataclasses.

- ``profile``: the dataclasses (``Profile``, ``DataConfig``, ``Feature``, ...) and their constants;
- ``loader``: ``load_profile`` (a built-in name or a YAML path) and ``from_dict``;
- ``checks``: the value checks ``from_dict`` runs.

Built-in profiles (``hm.yaml``, ``movielens.yaml``, ``retail.yaml``) live next to this file.
The bottom layer: imports nothing of twotower but ``twotower.errors``.
"""

from twotower.config.loader import builtin_profiles, from_dict, load_profile
from twotower.config.profile import (
    BASELINES,
    CACHE_MODES,
    DERIVED_KINDS,
    FEATURE_KINDS,
    FEATURE_SOURCES,
    KIND_OPTIONS,
    NUMERIC_TRANSFORMS,
    PHASE_LOSSES,
    PHASE_SCHEDULES,
    PROFILE_DIR,
    TIME_PARTS,
    ContractConfig,
    DataConfig,
    EvaluatorConfig,
    Feature,
    PhaseConfig,
    Profile,
    ServingConfig,
    SplitConfig,
    TrainerConfig,
    default_phases,
)
from twotower.errors import ConfigError

__all__ = [
    "BASELINES",
    "CACHE_MODES",
    "DERIVED_KINDS",
    "FEATURE_KINDS",
    "FEATURE_SOURCES",
    "KIND_OPTIONS",
    "NUMERIC_TRANSFORMS",
    "PHASE_LOSSES",
    "PHASE_SCHEDULES",
    "PROFILE_DIR",
    "TIME_PARTS",
    "ConfigError",
    "ContractConfig",
    "DataConfig",
    "EvaluatorConfig",
    "Feature",
    "PhaseConfig",
    "Profile",
    "ServingConfig",
    "SplitConfig",
    "TrainerConfig",
    "builtin_profiles",
    "default_phases",
    "from_dict",
    "load_profile",
]
