"""Value checks of a profile beyond its types: ranges, feature options, references between features.

Each check raises ``ConfigError`` naming the profile file and the field at fault.
"""

from __future__ import annotations

import codecs
import datetime
import re

from twotower.config.profile import (
    BASELINES,
    CACHE_MODES,
    FEATURE_KINDS,
    FEATURE_SOURCES,
    HISTORY_POOLINGS,
    KIND_OPTIONS,
    NUMERIC_TRANSFORMS,
    PHASE_LOSSES,
    PHASE_SCHEDULES,
    TIME_PARTS,
    EvaluatorConfig,
    Feature,
    Profile,
    TrainerConfig,
)
from twotower.errors import ConfigError

OPTIMIZERS = ("adagrad", "adam", "adamw")
MIN_BOOTSTRAP_SAMPLES = 100  # fewer put the 2.5th and 97.5th percentiles on a handful of draws


def check_trainer(t: TrainerConfig, where: str) -> None:
    """Range checks of the trainer section and its phases."""
    for key, value in (("batch_size", t.batch_size), ("embedding_dim", t.embedding_dim)):
        if value < 1:
            raise ConfigError(f"{where}: 'trainer.{key}' must be >= 1, got {value}")
    if t.learning_rate <= 0 or t.temperature <= 0:
        raise ConfigError(f"{where}: 'trainer.learning_rate' and 'trainer.temperature' must be > 0")
    if not t.phases and t.epochs < 1:
        raise ConfigError(f"{where}: set 'trainer.epochs' (>= 1) or list 'trainer.phases'")
    if t.optimizer not in OPTIMIZERS:
        raise ConfigError(f"{where}: 'trainer.optimizer' must be one of {OPTIMIZERS}, got {t.optimizer!r}")
    if not 0 <= t.dropout < 1 or t.mixed_precision not in ("", "mixed_float16", "mixed_bfloat16"):
        raise ConfigError(
            f"{where}: 'trainer.dropout' must be in [0, 1) and 'trainer.mixed_precision' one of '', mixed_float16, "
            f"mixed_bfloat16; got {t.dropout}, {t.mixed_precision!r}"
        )
    if t.cache not in CACHE_MODES:
        raise ConfigError(f"{where}: 'trainer.cache' must be one of {', '.join(CACHE_MODES)}; got {t.cache!r}")
    if t.weight_decay < 0 or (t.weight_decay and t.optimizer != "adamw"):
        raise ConfigError(f"{where}: 'trainer.weight_decay' must be >= 0 and needs optimizer adamw")
    if t.validation_users < 0 or t.validation_k < 1 or t.patience < 0:
        raise ConfigError(f"{where}: 'trainer.validation_users' and 'patience' must be >= 0, 'validation_k' >= 1")
    if t.seed < 0:
        raise ConfigError(f"{where}: 'trainer.seed' must be >= 0 (0: unseeded), got {t.seed}")
    if t.worker_start_timeout_s <= 0:
        raise ConfigError(f"{where}: 'trainer.worker_start_timeout_s' must be > 0, got {t.worker_start_timeout_s}")
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
        if ph.alignment < 0 or (ph.alignment and not t.alignment_feature):
            raise ConfigError(f"{at}: alignment must be >= 0 and needs 'trainer.alignment_feature'")


def check_feature(i: int, f: Feature, where: str) -> None:
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
    if f.kind == "history":
        if f.source != "interaction":
            raise ConfigError(f"{at}: source must be 'interaction' (the user's interactions before this one)")
        if f.max_length < 1 or f.half_life_days <= 0:
            raise ConfigError(f"{at}: max_length must be >= 1 and half_life_days > 0")
        if f.pooling not in HISTORY_POOLINGS:
            raise ConfigError(f"{at}: pooling must be one of {HISTORY_POOLINGS}, got {f.pooling!r}")
    if f.kind == "cross":
        if len(f.cross) < 2 or len(set(f.cross)) != len(f.cross):
            raise ConfigError(f"{at}: 'cross' must name two or more distinct features, got {list(f.cross)}")
        if f.hash_buckets < 2:
            raise ConfigError(f"{at}: hash_buckets must be >= 2, got {f.hash_buckets}")


def _tower(source: str) -> str:
    return "candidate" if source == "item" else "query"


def check_feature_references(p: Profile, where: str) -> None:
    """Checks what features say about each other and about the data section."""
    d = p.data
    if d.user_min_frequency < 1 or d.item_min_frequency < 1:
        raise ConfigError(f"{where}: 'data.user_min_frequency' and 'data.item_min_frequency' must be >= 1")
    by_name = {f.name: f for f in p.features}
    aligned = by_name.get(p.trainer.alignment_feature)
    if p.trainer.alignment_feature and (
        aligned is None or aligned.kind != "categorical" or aligned.source != "item" or not aligned.model
    ):
        raise ConfigError(
            f"{where}: 'trainer.alignment_feature' must name a categorical item feature the model uses, "
            f"got {p.trainer.alignment_feature!r}"
        )
    for i, f in enumerate(p.features):
        at = f"{where}: features[{i}] ({f.name}, kind {f.kind})"
        if f.name in ("user_id", "item_id") and f.name not in (d.user_id, d.item_id):
            raise ConfigError(f"{at}: 'user_id' and 'item_id' name the transformed id features; rename it")
        if f.kind == "time" and "hour" in f.parts and not _has_time_of_day(d.timestamp_format):
            raise ConfigError(
                f"{at}: part 'hour' needs a time of day, but data.timestamp_format {d.timestamp_format!r} has none"
            )
        for name in f.item_features:
            other = by_name.get(name)
            if other is None or other.kind != "categorical" or other.source != "item" or not other.model:
                raise ConfigError(
                    f"{at}: item_features must name categorical item features the model uses (source: item, "
                    f"model: true); {name!r} is not one"
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


def check_dialect(delimiter: str, encoding: str, where: str) -> None:
    """Raises ConfigError unless ``data.delimiter`` and ``data.encoding`` can read a CSV file."""
    if not delimiter or any(c in delimiter for c in '"\r\n'):
        raise ConfigError(
            f"{where}: 'data.delimiter' must be characters other than quote and line breaks, got {delimiter!r}"
        )
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(
            f"{where}: 'data.encoding' {encoding!r} is not an encoding Python knows (e.g. utf-8, latin-1)"
        ) from None


_INPUT_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def check_input_names(p: Profile, where: str) -> None:
    """Raises ConfigError unless every column that becomes a serving signature input has a name TensorFlow keeps.

    TensorFlow lowercases a signature's argument names and turns anything but letters and digits
    into '_' ('Customer ID' fails the export, 'Country' is served as 'country'), so such a column
    is refused here, before any data is read.
    """
    d = p.data
    inputs = [("data.user_id", d.user_id), ("data.item_id", d.item_id)]
    for f in p.model_features:
        columns = [d.timestamp] if f.kind == "time" else list(f.cross) if f.kind == "cross" else [f.name]
        inputs += [(f"feature {f.name!r} reads column" if c != f.name else "feature", c) for c in columns]
    for key, name in inputs:
        if not _INPUT_NAME.match(name):
            raise ConfigError(
                f"{where}: {key} {name!r}: a column the model reads becomes a serving signature input, so its name "
                "must be lowercase ASCII letters, digits and '_', starting with a letter; rename the column in "
                f"the CSV header and the profile (e.g. {_suggest(name)!r})"
            )


def _suggest(name: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return text if text[:1].isalpha() else f"c_{text}"


def check_values(p: Profile, where: str) -> None:
    """Range checks that types alone cannot express."""
    check_dialect(p.data.delimiter, p.data.encoding, where)
    check_input_names(p, where)
    reserved = {p.data.user_id, p.data.item_id, p.data.timestamp}  # the item name may also be a feature (text)
    clash = sorted(reserved & {f.name for f in p.features})
    if clash:
        raise ConfigError(f"{where}: features must not repeat id/timestamp columns: {clash}")
    named = [f for f in p.features if f.name == p.data.item_name]
    if any(f.source != "item" for f in named):
        raise ConfigError(f"{where}: the item name column '{p.data.item_name}' can only be an item feature")
    ages = {f.name + "_age_days" for f in p.features if f.kind == "history"}
    taken = sorted(ages & ({f.name for f in p.features} | reserved | {p.data.item_name}))
    if taken:
        raise ConfigError(f"{where}: {taken} name the ages of a history feature; rename the other feature")
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
    check_trainer(p.trainer, where)
    e = p.evaluator
    check_evaluator(e, where)
    if p.serving.top_k < max(e.ks):
        raise ConfigError(f"{where}: 'serving.top_k' ({p.serving.top_k}) must be >= max(evaluator.ks) ({max(e.ks)})")


def check_evaluator(e: EvaluatorConfig, where: str) -> None:
    """Range checks of the evaluator section: Ks, thresholds, baseline names, window, neighbours, bootstrap."""
    if not e.ks or min(e.ks) < 1:
        raise ConfigError(f"{where}: 'evaluator.ks' must be a non-empty list of positive integers")
    if e.blessing_k not in e.ks:
        raise ConfigError(f"{where}: 'evaluator.blessing_k' ({e.blessing_k}) must be one of evaluator.ks {list(e.ks)}")
    if not -1 <= e.max_regression <= 1:
        raise ConfigError(f"{where}: 'evaluator.max_regression' must be in [-1, 1], got {e.max_regression}")
    for key in ("baselines", "bless_against"):
        names = getattr(e, key)
        unknown = [n for n in names if n not in BASELINES]
        if unknown:
            raise ConfigError(f"{where}: 'evaluator.{key}' has unknown baseline(s) {unknown}; known: {list(BASELINES)}")
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: 'evaluator.{key}' lists a baseline twice: {list(names)}")
    if "popularity" not in e.baselines:
        raise ConfigError(
            f"{where}: 'evaluator.baselines' must include popularity (min_lift_over_popularity reads it), "
            f"got {list(e.baselines)}"
        )
    missing = [n for n in e.bless_against if n not in e.baselines]
    if missing:
        raise ConfigError(
            f"{where}: 'evaluator.bless_against' names {missing}, which 'evaluator.baselines' does not compute"
        )
    if e.min_lift_over_best_baseline < 0:
        raise ConfigError(
            f"{where}: 'evaluator.min_lift_over_best_baseline' must be >= 0, got {e.min_lift_over_best_baseline}"
        )
    for key in ("window_days", "knn_neighbours"):
        if getattr(e, key) < 1:
            raise ConfigError(f"{where}: 'evaluator.{key}' must be >= 1, got {getattr(e, key)}")
    if e.bootstrap_samples != 0 and e.bootstrap_samples < MIN_BOOTSTRAP_SAMPLES:
        raise ConfigError(
            f"{where}: 'evaluator.bootstrap_samples' must be 0 (no intervals) or >= {MIN_BOOTSTRAP_SAMPLES}, "
            f"got {e.bootstrap_samples}"
        )
    if e.bootstrap_seed < 0:
        raise ConfigError(f"{where}: 'evaluator.bootstrap_seed' must be >= 0, got {e.bootstrap_seed}")
    if e.require_significance and not e.bootstrap_samples:
        raise ConfigError(f"{where}: 'evaluator.require_significance' needs 'evaluator.bootstrap_samples' > 0")
