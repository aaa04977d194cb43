"""Profile loading: types, defaults and errors that name the field at fault."""

import json

import pytest
import yaml

from twotower.config import ConfigError, builtin_profiles, from_dict, load_profile


def _raw_hm() -> dict:
    with open(load_profile("hm").path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_hm_profile_loads_typed_values():
    p = load_profile("hm")
    assert p.data.user_id == "customer_id" and p.data.item_id == "article_id"
    assert isinstance(p.trainer.epochs, int) and isinstance(p.trainer.learning_rate, float)
    assert p.trainer.hidden_units == (64,)
    assert p.evaluator.blessing_k in p.evaluator.ks
    assert [f.name for f in p.features_of("user")] == ["age", "club_member_status", "fashion_news_frequency"]
    assert "hm" in builtin_profiles()


def test_json_round_trip_is_identity():
    p = load_profile("hm")
    assert from_dict(json.loads(p.to_json())) == p


def test_unknown_profile_names_the_choices():
    with pytest.raises(ConfigError, match="unknown profile 'nope'.*hm"):
        load_profile("nope")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_profile(str(tmp_path / "x.yaml"))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["trainer"].pop("epochs"), "set 'trainer.epochs' \\(>= 1\\) or list 'trainer.phases'"),
        (lambda r: r["trainer"].update(phases={"name": "a"}), "'trainer.phases' must be a list"),
        (lambda r: r["trainer"].update(phases=[{"name": "a"}]), "missing field 'trainer.phases\\[0\\].epochs'"),
        (lambda r: r["trainer"].update(phases=[{"name": "a", "epochs": 1, "loss": "hinge"}]), "loss must be one of"),
        (lambda r: r["trainer"].update(phases=[{"name": "a", "epochs": 1, "schedule": "step"}]), "schedule must be"),
        (lambda r: r["trainer"].update(phases=[{"name": "a", "epochs": 1, "ema": 1.0}]), "ema must be in"),
        (lambda r: r["trainer"].update(phases=[{"name": "a", "epochs": 1}] * 2), "names must be unique"),
        (lambda r: r["trainer"].update(optimizer="sgd"), "'trainer.optimizer' must be"),
        (lambda r: r["trainer"].update(epochs="4"), "'trainer.epochs' must be int"),
        (lambda r: r["trainer"].update(epochs=True), "'trainer.epochs' must be int"),
        (lambda r: r["trainer"].update(hidden_units=[64, "x"]), "list of integers"),
        (lambda r: r["evaluator"].update(blessing_k=7), "blessing_k"),
        (lambda r: r["split"].update(eval_days=0), "eval_days"),
        (lambda r: r["features"][0].update(kind="image"), r"features\[0\].kind"),
        (lambda r: r["features"].append({"name": "age", "source": "user", "kind": "numeric"}), "unique"),
        (lambda r: r["data"].update(colour="x"), "unknown field"),
        (lambda r: r.update(extra=1), "unknown top-level"),
        (lambda r: r["serving"].update(top_k=5), "serving.top_k"),
        (lambda r: r["split"].update(test_start="16/09/2020"), "'split.test_start' must be a date"),
        (lambda r: r["split"].update(eval_start="2020-09-10", test_start="2020-09-01"), "must be after"),
        (lambda r: r["contract"].update(max_quarantine_fraction=2), "max_quarantine_fraction"),
        (lambda r: r["contract"].update(drift_thresholds={"age": "x"}), "mapping of names to numbers"),
        (lambda r: r["features"][0].update(model="yes"), r"'features\[0\].model' must be bool"),
        (lambda r: r["split"].update(mode="random"), "'split.mode' must be 'time' or 'per_user'"),
        (lambda r: r["split"].update(mode="per_user", test_fraction=0.2), "per_user needs"),
        (lambda r: r["evaluator"].update(max_regression=1.5), r"'evaluator.max_regression' must be in \[-1, 1\]"),
        (
            lambda r: r["trainer"].update(weight_decay=0.01),
            "'trainer.weight_decay' must be >= 0 and needs optimizer adamw",
        ),
        (lambda r: r["trainer"].update(dropout=1.0), r"'trainer.dropout' must be in \[0, 1\)"),
        (lambda r: r["trainer"].update(mixed_precision="float8"), "mixed_float16"),
        (lambda r: r["trainer"].update(patience=-1), "'patience' must be >= 0"),
        (lambda r: r["trainer"].update(cache="ram"), "'trainer.cache' must be one of auto, memory, disk; got 'ram'"),
        (lambda r: r["trainer"].update(validation_k=0), "'validation_k' >= 1"),
        (
            lambda r: r["trainer"].update(alignment_feature="price"),
            "'trainer.alignment_feature' must name a categorical",
        ),
        (
            lambda r: r["trainer"].update(phases=[{"name": "a", "epochs": 1, "alignment": 0.5}]),
            r"alignment must be >= 0 and needs 'trainer.alignment_feature'",
        ),
    ],
)
def test_bad_profiles_name_the_field(tmp_path, edit, message):
    raw = _raw_hm()
    edit(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message) as info:
        load_profile(str(path))
    assert str(path) in str(info.value)


def test_int_accepted_for_float():
    raw = _raw_hm()
    raw["trainer"]["learning_rate"] = 1
    assert from_dict(raw).trainer.learning_rate == 1.0
    assert isinstance(from_dict(raw).trainer.learning_rate, float)


def test_contract_section_is_optional_with_defaults(tmp_path):
    raw = _raw_hm()
    del raw["contract"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    contract = load_profile(str(path)).contract
    assert contract.schema == "" and contract.max_quarantine_fraction == 0.05 and contract.drift_thresholds == {}


def test_contract_schema_is_resolved_next_to_the_yaml(tmp_path):
    raw = _raw_hm()
    raw["contract"]["schema"] = "missing.pbtxt"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=f"schema' file not found: {tmp_path}/missing.pbtxt"):
        load_profile(str(path))
