"""The contract schema of a profile with a history feature gets the history columns without listing them."""

import dataclasses

from tensorflow_metadata.proto.v0 import schema_pb2

from twotower.config import Feature, load_profile
from twotower.schema.contract import contract_schema, load_schema, with_derived_columns


def _without_history(profile):
    return dataclasses.replace(profile, features=tuple(f for f in profile.features if f.kind != "history"))


def _with_history(profile, max_length=50):
    """``profile`` with one history feature ``recent_items`` (the built-in profiles' own one replaced)."""
    history = Feature("recent_items", "interaction", "history", max_length=max_length)
    return dataclasses.replace(profile, features=_without_history(profile).features + (history,))


def test_history_columns_are_added_as_lists_of_up_to_max_length():
    profile = _with_history(load_profile("hm"), max_length=7)
    schema = contract_schema(profile)
    by_name = {f.name: f for f in schema.feature}
    ids, ages = by_name["recent_items"], by_name["recent_items_age_days"]
    assert ids.type == schema_pb2.BYTES and ages.type == schema_pb2.FLOAT
    assert (ids.value_count.min, ids.value_count.max) == (0, 7) and (ages.value_count.min, ages.value_count.max) == (
        0,
        7,
    )
    assert ages.float_domain.min == 0.0
    assert not ids.not_in_environment  # a serving request may carry a history too
    curated = load_schema(profile.contract.schema)
    assert len(schema.feature) == len(curated.feature) + 2  # the file itself is not changed


def test_columns_the_contract_lists_are_kept_as_curated():
    profile = _with_history(load_profile("hm"))
    curated = load_schema(profile.contract.schema)
    curated.feature.add(name="recent_items", type=schema_pb2.BYTES).value_count.max = 3
    schema = with_derived_columns(curated, profile)
    assert [f.value_count.max for f in schema.feature if f.name == "recent_items"] == [3]
    assert with_derived_columns(schema, profile) == schema


def test_profiles_without_history_or_contract():
    hm = _without_history(load_profile("hm"))
    assert contract_schema(hm) == load_schema(hm.contract.schema)
    assert contract_schema(dataclasses.replace(hm, contract=dataclasses.replace(hm.contract, schema=""))) is None
