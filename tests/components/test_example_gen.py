"""JoinExampleGen, the component: its custom config round trip and its outputs (the graph: tests/ingest)."""

from tfx.utils import proto_utils

from twotower.components.example_gen.component import JoinExampleGen, profile_to_custom_config
from twotower.components.example_gen.executor import unpack_config
from twotower.config import load_profile


def test_config_survives_the_custom_config_round_trip():
    profile = load_profile("hm")
    ranges = {"age": (16.0, 99.0), "price": (0.0, None)}
    exec_properties = {"custom_config": proto_utils.proto_to_json(profile_to_custom_config(profile, ranges, 1024))}
    assert unpack_config(exec_properties) == {"profile": profile, "ranges": ranges, "chunk_bytes": 1024}
    component = JoinExampleGen(input_base="/data", profile=profile)
    assert component.exec_properties["input_base"] == "/data"
    assert set(component.outputs) == {"examples", "quarantine"}
