"""models.config: TF Serving's ModelServerConfig text proto for every pushed model of a serving directory."""

import os

import pytest

from twotower.serving.tf_serving_config import MODELS_CONFIG, models_config, write_models_config


def _serving_dir(root):
    for path in ("twotower/1/variables", "twotower/3", "retail/7", "not-a-model/tmp"):
        os.makedirs(os.path.join(root, path))
    with open(os.path.join(root, "README"), "w") as f:
        f.write("a file, not a model")
    return str(root)


def test_lists_every_model_with_a_numbered_version_and_parses_as_tf_serving_config(tmp_path):
    model_server_config_pb2 = pytest.importorskip("tensorflow_serving.config.model_server_config_pb2")
    from google.protobuf import text_format

    path = write_models_config(_serving_dir(tmp_path), num_versions=2)

    assert path == os.path.join(tmp_path, MODELS_CONFIG)
    with open(path) as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    models = {c.name: c for c in config.model_config_list.config}
    assert sorted(models) == ["retail", "twotower"]  # not-a-model has no numbered version
    assert models["twotower"].base_path == "/models/twotower"
    assert models["twotower"].model_platform == "tensorflow"
    assert models["twotower"].model_version_policy.latest.num_versions == 2


def test_host_base_path_and_rewrites(tmp_path):
    serving_dir = _serving_dir(tmp_path)
    write_models_config(serving_dir, base_path="/srv/serving")
    os.makedirs(os.path.join(serving_dir, "movielens", "1"))
    path = write_models_config(serving_dir, base_path="/srv/serving")
    with open(path) as f:
        text = f.read()
    assert text.count("config {") == 3 and 'base_path: "/srv/serving/movielens"' in text
    assert not os.path.exists(path + ".tmp")


def test_rejects_names_and_policies_tf_serving_would_misread():
    assert models_config([]) == "model_config_list {\n}\n"
    with pytest.raises(ValueError, match="num_versions"):
        models_config(["m"], num_versions=0)
    with pytest.raises(ValueError, match="model name"):
        models_config(['we"ird'])
