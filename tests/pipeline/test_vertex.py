"""Vertex AI runner: the compiled pipeline definition (no network here), and the settings it refuses."""

import json
import os

import pytest

from twotower.config import load_profile
from twotower.pipeline.vertex import (
    IMAGE_PACKAGE_DIR,
    PACKAGE_DIR,
    VertexConfigError,
    VertexSettings,
    compile_pipeline,
    image_schema_path,
    pipeline_job,
)

SETTINGS = VertexSettings(project="acme", region="europe-west4", data_root="gs://acme/hm", pipeline_root="gs://acme/tt")
COMPONENTS = {"JoinExampleGen", "StatisticsGen", "ContractSchemaGen", "DataGate", "Transform", "Trainer"}
COMPONENTS |= {"RetrievalEvaluator", "Pusher"}


def _parameters(spec, task):
    values = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"]
    return {k: next(iter(v["runtimeValue"]["constantValue"].values())) for k, v in values.items()}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = compile_pipeline(load_profile("hm"), SETTINGS, str(tmp_path_factory.mktemp("vertex") / "hm.json"))
    with open(path) as f:
        return path, json.load(f)


def test_every_component_runs_our_image_with_the_tfx_v2_entry_point(compiled):
    _, job = compiled
    spec = job["pipelineSpec"]
    containers = {
        name.removesuffix("_executor"): e["container"]
        for name, e in spec["deploymentSpec"]["executors"].items()
        if "container" in e
    }
    assert set(containers) == COMPONENTS
    image = "europe-west4-docker.pkg.dev/acme/twotower/twotower:0.1.0"  # where the README's docker push puts it
    assert {c["image"] for c in containers.values()} == {image}
    assert {tuple(c["command"]) for c in containers.values()} == {
        ("python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor")
    }
    assert containers["Pusher"]["args"][1] == "twotower.components.pusher.executor.Executor"
    assert containers["Trainer"]["args"][1] == "twotower.components.trainer.executor.Executor"
    assert "--direct_running_mode=in_memory" in containers["Transform"]["args"]
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://acme/tt"


def test_paths_point_at_cloud_storage_and_the_schema_inside_the_image(compiled):
    _, job = compiled
    spec = job["pipelineSpec"]
    schema = _parameters(spec, "ContractSchemaGen")["schema_file"]
    assert schema == f"{IMAGE_PACKAGE_DIR}/schema/hm.pbtxt"
    assert os.path.isfile(os.path.join(PACKAGE_DIR, "schema", "hm.pbtxt"))  # the file the Dockerfile copies there
    assert _parameters(spec, "JoinExampleGen")["input_base"] == "gs://acme/hm"
    destination = json.loads(_parameters(spec, "Pusher")["push_destination"])
    assert destination["filesystem"]["base_directory"] == "gs://acme/tt/serving/twotower"
    trainer = json.loads(_parameters(spec, "Trainer")["custom_config"])
    assert trainer["checkpoint_root"] == "gs://acme/tt/checkpoints"
    assert json.loads(trainer["profile"])["contract"]["schema"] == schema
    # the previous run's blessed model is found in Vertex ML Metadata by the compiled resolver
    resolvers = [name for name in spec["root"]["dag"]["tasks"] if name.startswith("latest_blessed_model_resolver")]
    assert len(resolvers) == 2


def test_compiled_definition_makes_a_pipeline_job(compiled):
    from google.auth.credentials import AnonymousCredentials

    path, _ = compiled
    job = pipeline_job(path, SETTINGS, credentials=AnonymousCredentials())  # built locally; submit() would send it
    assert job.project == "acme" and job.location == "europe-west4"
    assert job.runtime_config.gcs_output_directory == "gs://acme/tt"


def test_dataflow_runs_beam_stages_on_the_dataflow_image(tmp_path):
    settings = VertexSettings(**{**SETTINGS.__dict__, "dataflow": True})
    with open(compile_pipeline(load_profile("hm"), settings, str(tmp_path / "p.json"))) as f:
        executors = json.load(f)["pipelineSpec"]["deploymentSpec"]["executors"]
    args = executors["Transform_executor"]["container"]["args"]
    assert "--runner=DataflowRunner" in args
    assert "--sdk_container_image=europe-west4-docker.pkg.dev/acme/twotower/twotower-dataflow:0.1.0" in args
    assert "--temp_location=gs://acme/tt/tmp" in args


@pytest.mark.parametrize(
    "change, message",
    [
        ({"data_root": "/home/me/hm"}, "--data '/home/me/hm': .*gs://"),
        ({"pipeline_root": "runs/demo"}, "--pipeline-root 'runs/demo'"),
        ({"serving_dir": "/srv/serving"}, "--serving-dir"),
        ({"baseline_statistics": "/tmp/stats"}, "--baseline-statistics"),
        ({"image": "twotower"}, "image 'twotower': expected REGISTRY/PATH:TAG"),
        ({"project": ""}, "--project and --region"),
    ],
)
def test_settings_vertex_cannot_run_with_are_refused_before_compiling(tmp_path, change, message):
    settings = VertexSettings(**{**SETTINGS.__dict__, **change})
    with pytest.raises(VertexConfigError, match=message):
        compile_pipeline(load_profile("hm"), settings, str(tmp_path / "p.json"))
    assert not (tmp_path / "p.json").exists()


def test_a_schema_outside_the_package_must_be_given_as_a_gcs_uri(tmp_path):
    schema = tmp_path / "mine.pbtxt"
    with pytest.raises(VertexConfigError, match="--schema-uri"):
        image_schema_path(str(schema))
    assert image_schema_path(str(schema), "gs://acme/mine.pbtxt") == "gs://acme/mine.pbtxt"
    assert image_schema_path("") == ""


def test_submit_without_credentials_says_how_to_get_them(compiled, monkeypatch, capsys):
    from twotower.cli import main

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")  # fails before any network call
    path, _ = compiled
    flags = ["--data", "gs://acme/hm", "--pipeline-root", "gs://acme/tt", "--project", "acme"]
    code = main(["vertex", *flags, "--region", "europe-west4", "--output", path + ".cli.json", "--submit"])
    assert code == 2
    out, err = capsys.readouterr()
    assert "compiled the pipeline for Vertex AI" in out
    assert "--submit: no Google Cloud credentials" in err and "gcloud auth application-default login" in err
