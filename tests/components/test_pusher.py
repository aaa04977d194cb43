"""Pusher: the stock push, then models.config for TF Serving; nothing when the model is not blessed."""

import os

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from twotower.components.pusher.executor import Executor, config_base_path
from twotower.serving.tf_serving_config import MODELS_CONFIG


def _push(tmp_path, serving_dir, blessed):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "trainer" / "model")
    serving_model = os.path.join(model.uri, "Format-Serving")
    os.makedirs(os.path.join(serving_model, "variables"))
    with open(os.path.join(serving_model, "saved_model.pb"), "wb") as f:
        f.write(b"not parsed by the Pusher")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=os.path.join(serving_dir, "twotower"))
    )
    Executor().Do(
        {standard_component_specs.MODEL_KEY: [model], standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
        {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
        {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)},
    )
    return pushed


def test_blessed_push_writes_a_tf_serving_config_listing_every_model(tmp_path):
    serving_dir = str(tmp_path / "serving")
    os.makedirs(os.path.join(serving_dir, "retail", "3"))  # another model pushed earlier

    pushed = _push(tmp_path, serving_dir, blessed=True)

    assert pushed.get_int_custom_property("pushed") == 1
    version = pushed.get_string_custom_property("pushed_destination")
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))
    with open(os.path.join(serving_dir, MODELS_CONFIG)) as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    paths = {c.name: c.base_path for c in config.model_config_list.config}
    assert paths == {"retail": "/models/retail", "twotower": "/models/twotower"}


def test_unblessed_model_pushes_nothing_and_leaves_the_config_alone(tmp_path):
    serving_dir = tmp_path / "serving"
    serving_dir.mkdir()
    (serving_dir / MODELS_CONFIG).write_text("earlier config\n")

    pushed = _push(tmp_path, str(serving_dir), blessed=False)

    assert pushed.get_int_custom_property("pushed") == 0
    assert not (serving_dir / "twotower").exists()
    assert (serving_dir / MODELS_CONFIG).read_text() == "earlier config\n"


def test_remote_serving_dirs_are_read_by_tf_serving_in_place():
    assert config_base_path("gs://bucket/serving") == "gs://bucket/serving"
    assert config_base_path("/abs/serving") == "/models"
