"""The evaluator section of a profile: defaults for the new fields, and errors naming the file and the field."""

import pytest
import yaml

from twotower.config import BASELINES, ConfigError, builtin_profiles, from_dict, load_profile


def _raw_hm() -> dict:
    with open(load_profile("hm").path, encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("name", builtin_profiles())
def test_builtin_profiles_load_unchanged_with_the_new_defaults(name):
    ev = load_profile(name).evaluator
    assert ev.baselines == BASELINES == ("popularity", "recent_popularity", "repurchase", "item_knn", "ease")
    assert ev.bless_against == () and ev.min_lift_over_best_baseline == 1.0  # () = every baseline computed
    assert (ev.window_days, ev.knn_neighbours, ev.bootstrap_samples, ev.bootstrap_seed) == (7, 100, 1000, 0)
    assert ev.require_significance is False


def test_new_fields_are_read_typed():
    raw = _raw_hm()
    raw["evaluator"].update(
        baselines=["popularity", "item_knn"],
        bless_against=["item_knn"],
        min_lift_over_best_baseline=1,  # an int is accepted for a float
        window_days=14,
        knn_neighbours=50,
        bootstrap_samples=0,
        bootstrap_seed=3,
    )
    ev = from_dict(raw, where="p.yaml").evaluator
    assert ev.baselines == ("popularity", "item_knn") and ev.bless_against == ("item_knn",)
    assert ev.min_lift_over_best_baseline == 1.0 and isinstance(ev.min_lift_over_best_baseline, float)
    assert (ev.window_days, ev.knn_neighbours, ev.bootstrap_samples, ev.bootstrap_seed) == (14, 50, 0, 3)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"baselines": ["popularity", "knn"]}, r"'evaluator.baselines' has unknown baseline\(s\) \['knn'\]; known:"),
        ({"baselines": "popularity"}, r"'evaluator.baselines' must be a list of strings"),
        ({"baselines": ["repurchase"]}, r"'evaluator.baselines' must include popularity"),
        ({"baselines": ["popularity", "popularity"]}, r"'evaluator.baselines' lists a baseline twice"),
        (
            {"bless_against": ["last_blessed"]},
            r"'evaluator.bless_against' has unknown baseline\(s\) \['last_blessed'\]",
        ),
        (
            {"baselines": ["popularity"], "bless_against": ["ease"]},
            r"'evaluator.bless_against' names \['ease'\], which 'evaluator.baselines' does not compute",
        ),
        ({"min_lift_over_best_baseline": -0.5}, r"'evaluator.min_lift_over_best_baseline' must be >= 0, got -0.5"),
        ({"min_lift_over_best_baseline": "1.0"}, r"'evaluator.min_lift_over_best_baseline' must be float"),
        ({"window_days": 0}, r"'evaluator.window_days' must be >= 1, got 0"),
        ({"window_days": 7.5}, r"'evaluator.window_days' must be int"),
        ({"knn_neighbours": 0}, r"'evaluator.knn_neighbours' must be >= 1, got 0"),
        ({"bootstrap_samples": 10}, r"'evaluator.bootstrap_samples' must be 0 \(no intervals\) or >= 100, got 10"),
        ({"bootstrap_seed": -1}, r"'evaluator.bootstrap_seed' must be >= 0, got -1"),
        ({"require_significance": "yes"}, r"'evaluator.require_significance' must be bool"),
        (
            {"require_significance": True, "bootstrap_samples": 0},
            r"'evaluator.require_significance' needs 'evaluator.bootstrap_samples' > 0",
        ),
        ({"knn_neighbors": 10}, r"unknown field\(s\) in 'evaluator': knn_neighbors"),
    ],
)
def test_bad_evaluator_fields_name_the_file_and_field(tmp_path, edit, message):
    raw = _raw_hm()
    raw["evaluator"].update(edit)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message) as info:
        load_profile(str(path))
    assert str(info.value).startswith(f"{path}: ")
