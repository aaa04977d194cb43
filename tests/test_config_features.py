"""The feature config: every kind's options load typed; a wrong option is an error naming the feature."""

import json

import pytest
import yaml

from twotower.config import ConfigError, from_dict, load_profile


def _raw_hm() -> dict:
    with open(load_profile("hm").path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    raw.pop("contract")
    return raw


EVERY_KIND = [
    {"name": "age", "source": "user", "kind": "numeric", "transform": "quantiles", "buckets": 5, "embedding_dim": 4},
    {"name": "club", "source": "user", "kind": "categorical", "min_frequency": 3, "max_vocab": 100},
    {"name": "desc", "source": "item", "kind": "text"},
    {"name": "genres", "source": "item", "kind": "text", "separator": "|", "max_tokens": 6},
    {"name": "vec", "source": "item", "kind": "dense", "dim": 768, "embedding_dim": 48},
    {"name": "when", "source": "interaction", "kind": "time", "parts": ["day_of_week", "day_of_year"], "recency": True},
    {"name": "type", "source": "item", "kind": "categorical"},
    {"name": "colour", "source": "item", "kind": "categorical", "model": False},
    {"name": "tc", "source": "item", "kind": "cross", "cross": ["type", "colour"], "hash_buckets": 500},
    {"name": "recent", "source": "interaction", "kind": "history", "max_length": 20, "pooling": "recency"},
]


def _with(features, **data) -> dict:
    raw = _raw_hm()
    raw["features"] = features
    raw["data"].update(data)
    return raw


def test_every_kind_loads_typed_and_round_trips():
    p = from_dict(_with(EVERY_KIND, user_min_frequency=2))
    f = {x.name: x for x in p.features}
    assert f["age"].transform == "quantiles" and f["age"].buckets == 5
    assert f["genres"].separator == "|" and f["desc"].separator == ""  # "": words
    assert f["when"].parts == ("day_of_week", "day_of_year") and f["when"].recency is True
    assert f["tc"].cross == ("type", "colour") and f["tc"].derived and not f["type"].derived
    assert f["recent"].max_length == 20 and f["recent"].pooling == "recency" and f["recent"].half_life_days == 30.0
    assert f["recent"].derived and f["recent"].share_embeddings and f["recent"].item_features == ()
    assert p.data.user_min_frequency == 2 and p.data.item_min_frequency == 1
    # derived features are not columns of any file
    assert [x.name for x in p.columns_of("interaction")] == []
    assert [x.name for x in p.columns_of("item")] == ["desc", "genres", "vec", "type", "colour"]
    assert from_dict(json.loads(p.to_json())) == p


def _edit(feature, **options):
    return lambda fs: next(f for f in fs if f["name"] == feature).update(options)


@pytest.mark.parametrize(
    "edit, message",
    [
        (_edit("age", kind="image"), r"features\[0\].kind must be one of"),
        (
            _edit("club", separator="|"),
            r"features\[1\] \(club, kind categorical\): option\(s\) \['separator'\] do not apply",
        ),
        (_edit("age", transform="log"), "transform must be one of"),
        (_edit("age", transform="zscore"), "buckets and embedding_dim apply to 'transform: quantiles' only"),
        (_edit("age", buckets=1), "buckets must be >= 2"),
        (_edit("club", min_frequency=0), "min_frequency >= 1"),
        (_edit("desc", max_tokens=0), "max_tokens must be >= 1"),
        (_edit("vec", dim=0), r"\(vec, kind dense\): needs 'dim'"),
        (_edit("vec", source="user"), "dense vectors are supported on items only"),
        (_edit("when", parts=["minute"]), "parts must be distinct values of"),
        (_edit("when", parts=[], recency=False), "needs 'parts'"),
        (_edit("when", source="user"), "source must be 'interaction'"),
        (_edit("when", parts="hour"), "must be a list of strings"),
        (_edit("tc", cross=["type"]), "two or more distinct features"),
        (_edit("tc", cross=["type", "material"]), "crosses 'material', which is not a feature"),
        (_edit("tc", cross=["type", "desc"]), "only categorical features cross"),
        (_edit("tc", cross=["type", "club"]), r"crosses 'club' \(source user\) into the candidate tower"),
        (_edit("tc", hash_buckets=1), "hash_buckets must be >= 2"),
        (_edit("vec", name="item_id"), "name the transformed id features"),
        (_edit("recent", source="user"), r"\(recent, kind history\): source must be 'interaction'"),
        (_edit("recent", max_length=0), "max_length must be >= 1 and half_life_days > 0"),
        (_edit("recent", half_life_days=0), "max_length must be >= 1 and half_life_days > 0"),
        (_edit("recent", pooling="max"), "pooling must be one of"),
        (_edit("recent", item_features=["desc"]), "item_features must name categorical item features.*'desc'"),
        (_edit("recent", item_features=["colour"]), "item_features must name categorical.*model: true.*'colour'"),
        (_edit("recent", buckets=3), r"option\(s\) \['buckets'\] do not apply"),
        (_edit("vec", name="recent_age_days"), r"\['recent_age_days'\] name the ages of a history feature"),
    ],
)
def test_bad_feature_options_name_the_feature(edit, message):
    features = [dict(f) for f in EVERY_KIND]
    edit(features)
    with pytest.raises(ConfigError, match=message):
        from_dict(_with(features), where="p.yaml")


def test_hour_needs_a_timestamp_with_a_time_of_day():
    hourly = [{"name": "when", "source": "interaction", "kind": "time", "parts": ["hour"]}]
    with pytest.raises(ConfigError, match="part 'hour' needs a time of day.*'%Y-%m-%d'"):
        from_dict(_with(hourly, timestamp_format="%Y-%m-%d"))
    assert from_dict(_with(hourly, timestamp_format="unix")).features[0].parts == ("hour",)
    assert from_dict(_with(hourly, timestamp_format="%Y-%m-%d %H:%M")).features[0].parts == ("hour",)


def test_id_frequency_thresholds_must_be_positive():
    with pytest.raises(ConfigError, match="'data.user_min_frequency' and 'data.item_min_frequency' must be >= 1"):
        from_dict(_with(EVERY_KIND, item_min_frequency=0))
