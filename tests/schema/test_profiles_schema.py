"""Every built-in profile's contract schema loads and types every column the profile names."""

from __future__ import annotations

import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from twotower.config import Profile, builtin_profiles, load_profile

SERVING = "SERVING"


def _expected_types(profile: Profile) -> dict[str, int]:
    """Column -> schema type the ingestion emits: numeric and dense FLOAT, timestamp INT, everything else BYTES.

    Derived features (time, cross) are not columns and have no place in the schema.
    """
    d = profile.data
    types = {d.user_id: schema_pb2.BYTES, d.item_id: schema_pb2.BYTES, d.item_name: schema_pb2.BYTES}
    types[d.timestamp] = schema_pb2.INT
    for f in profile.features:
        if not f.derived:
            types[f.name] = schema_pb2.FLOAT if f.kind in ("numeric", "dense") else schema_pb2.BYTES
    return types


def test_the_new_profiles_are_built_in() -> None:
    assert {"hm", "movielens", "retail"} <= set(builtin_profiles())


@pytest.mark.parametrize("name", builtin_profiles())
def test_schema_types_every_profile_column(name: str) -> None:
    profile = load_profile(name)
    assert profile.contract.schema, f"{name}: profile has no contract.schema"
    schema = tfdv.load_schema_text(profile.contract.schema)
    features = {f.name: f for f in schema.feature}
    for column, want in _expected_types(profile).items():
        assert column in features, f"{name}: column '{column}' is not in {profile.contract.schema}"
        got = features[column].type
        assert got == want, (
            f"{name}: '{column}' is {schema_pb2.FeatureType.Name(got)}, want {schema_pb2.FeatureType.Name(want)}"
        )
    extra = set(features) - set(_expected_types(profile))
    assert not extra, f"{name}: schema features the profile does not name: {sorted(extra)}"


@pytest.mark.parametrize("name", builtin_profiles())
def test_schema_shapes_presence_and_environments(name: str) -> None:
    profile = load_profile(name)
    schema = tfdv.load_schema_text(profile.contract.schema)
    d = profile.data
    assert list(schema.default_environment) == ["TRAINING", SERVING]
    user_side = {d.user_id} | {f.name for f in profile.features_of("user")}
    required = {d.user_id, d.item_id, d.timestamp, d.item_name}
    values = {f.name: f.dim for f in profile.features if f.kind == "dense"}  # a dense vector: dim values
    for feature in schema.feature:
        if feature.name in required:
            assert feature.presence.min_fraction == 1.0 and feature.presence.min_count == 1, feature.name
            assert [dim.size for dim in feature.shape.dim] == [1], feature.name
        else:
            n = values.get(feature.name, 1)
            assert (feature.value_count.min, feature.value_count.max) == (n, n), feature.name
            assert 0 < feature.presence.min_fraction <= 1, feature.name
        # a serving request carries the user's side only
        assert (SERVING in feature.not_in_environment) == (feature.name not in user_side), feature.name
    domains = {d.name for d in schema.string_domain}
    assert all(f.domain in domains for f in schema.feature if f.domain), "a feature names a missing string_domain"


def test_movielens_ranges_and_domains() -> None:
    schema = tfdv.load_schema_text(load_profile("movielens").contract.schema)
    features = {f.name: f for f in schema.feature}
    assert (features["age"].float_domain.min, features["age"].float_domain.max) == (7, 73)
    assert (features["rating"].float_domain.min, features["rating"].float_domain.max) == (1, 5)
    # 1997-01-01 .. 1999-01-01 UTC brackets the ratings (1997-09-20 .. 1998-04-22)
    assert (features["timestamp"].int_domain.min, features["timestamp"].int_domain.max) == (852076800, 915148800)
    domains = {d.name: list(d.value) for d in schema.string_domain}
    assert sorted(domains["gender"]) == ["F", "M"]
    assert len(domains["occupation"]) == 21 and "programmer" in domains["occupation"]


def test_retail_domains_match_the_generator_vocabulary() -> None:
    from twotower.data.retail import CATEGORY_NAMES, CUSTOMER_TYPE_NAMES

    schema = tfdv.load_schema_text(load_profile("retail").contract.schema)
    domains = {d.name: tuple(d.value) for d in schema.string_domain}
    assert domains["customer_type"] == CUSTOMER_TYPE_NAMES == ("HoReCa", "Trader", "Office", "Other")
    assert domains["category"] == CATEGORY_NAMES and len(CATEGORY_NAMES) == 13
    revenue = next(f for f in schema.feature if f.name == "revenue")
    assert revenue.float_domain.HasField("min") and revenue.float_domain.min == 0
    assert not revenue.float_domain.HasField("max")
