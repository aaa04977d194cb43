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
    trainer_job_spec,
    worker_tf_config,
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


SCALED = VertexSettings(
    **{
        **SETTINGS.__dict__,
        "trainer_replicas": 3,
        "trainer_machine_type": "n1-highmem-16",
        "accelerator_type": "NVIDIA_TESLA_T4",
        "accelerator_count": 2,
        "endpoint": "twotower-hm",
    }
)


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    path = compile_pipeline(load_profile("hm"), SCALED, str(tmp_path_factory.mktemp("scaled") / "hm.json"))
    with open(path) as f:
        return json.load(f)["pipelineSpec"]


def test_trainer_replicas_run_a_custom_job_of_worker_pools(scaled):
    from tfx.extensions.google_cloud_ai_platform import constants
    from tfx.extensions.google_cloud_ai_platform.trainer.executor import TRAINING_ARGS_KEY

    from twotower.trainer.strategy import current_task

    trainer = scaled["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    assert trainer["args"][1] == "twotower.components.trainer.executor.VertexExecutor"
    config = json.loads(_parameters(scaled, "Trainer")["custom_config"])
    assert config[constants.ENABLE_VERTEX_KEY] is True and config[constants.VERTEX_REGION_KEY] == "europe-west4"
    assert "trainer_workers" not in config  # the replicas come from Vertex AI, not from local processes
    job = config[TRAINING_ARGS_KEY]
    assert job["project"] == "acme"
    pools = job["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]  # the chief, then the other workers
    image = "europe-west4-docker.pkg.dev/acme/twotower/twotower:0.1.0"
    for p in pools:
        assert p["container_spec"] == {"image_uri": image}
        assert p["machine_spec"] == {
            "machine_type": "n1-highmem-16",
            "accelerator_type": "NVIDIA_TESLA_T4",
            "accelerator_count": 2,
        }
    assert job["job_spec"]["scheduling"] == {"restart_job_on_worker_restart": True}
    # what each replica's trainer makes of the TF_CONFIG Vertex AI gives it: one chief among three workers
    tasks = [
        current_task({"TF_CONFIG": json.dumps(worker_tf_config(job["job_spec"], pool, i))})
        for pool, n in enumerate([1, 2])
        for i in range(n)
    ]
    assert [t.is_chief for t in tasks] == [True, False, False]
    assert {len(t.workers) for t in tasks} == {3} and all(t.multi_worker for t in tasks)


def test_the_custom_job_tfx_builds_runs_our_executor_in_every_pool(scaled):
    from tfx.extensions.google_cloud_ai_platform import training_clients
    from tfx.extensions.google_cloud_ai_platform.trainer.executor import TRAINING_ARGS_KEY

    job_spec = json.loads(_parameters(scaled, "Trainer")["custom_config"])[TRAINING_ARGS_KEY]["job_spec"]
    client = training_clients.VertexJobClient.__new__(training_clients.VertexJobClient)  # no API client: offline
    custom_job = client.create_training_job(
        {}, {}, {}, "twotower.components.trainer.executor.Executor", {"job_spec": job_spec}, "tt", None
    )
    for pool in custom_job["job_spec"]["worker_pool_specs"]:
        command = pool["container_spec"]["command"]
        assert command[:3] == ["python", "-m", "tfx.scripts.run_executor"]
        assert command[command.index("--executor_class_path") + 1] == "twotower.components.trainer.executor.Executor"
        assert pool["container_spec"]["image_uri"].endswith("/twotower/twotower:0.1.0")


def test_endpoint_adds_the_vertex_pusher_beside_the_serving_directory(scaled):
    from tfx.extensions.google_cloud_ai_platform import constants

    executors = scaled["deploymentSpec"]["executors"]
    assert executors["Pusher_executor"]["container"]["args"][1] == "twotower.components.pusher.executor.Executor"
    vertex = executors["VertexPusher_executor"]["container"]["args"]
    assert vertex[1] == "tfx.extensions.google_cloud_ai_platform.pusher.executor.Executor"
    config = json.loads(_parameters(scaled, "VertexPusher")["custom_config"])
    assert config[constants.SERVING_ARGS_KEY] == {
        "project_id": "acme",
        "endpoint_name": "twotower-hm",
        "machine_type": "n1-standard-4",
    }
    assert config[constants.VERTEX_REGION_KEY] == "europe-west4" and config[constants.ENABLE_VERTEX_KEY] is True
    image = config[constants.VERTEX_CONTAINER_IMAGE_URI_KEY]
    assert image == "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
    inputs = scaled["root"]["dag"]["tasks"]["VertexPusher"]["inputs"]["artifacts"]
    assert inputs["model_blessing"]["taskOutputArtifact"]["producerTask"] == "RetrievalEvaluator"


def test_one_replica_is_a_chief_alone_and_no_endpoint_means_no_vertex_pusher(compiled):
    settings = VertexSettings(**{**SETTINGS.__dict__, "trainer_replicas": 1})
    spec = trainer_job_spec(settings)
    assert [p["replica_count"] for p in spec["worker_pool_specs"]] == [1]
    assert spec["worker_pool_specs"][0]["machine_spec"] == {"machine_type": "n1-standard-4"}
    assert spec["scheduling"] == {"restart_job_on_worker_restart": False}
    _, job = compiled  # the default: trains in the pipeline step, pushes to the serving directory only
    assert "VertexPusher_executor" not in job["pipelineSpec"]["deploymentSpec"]["executors"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"trainer_replicas": -1}, "--trainer-replicas -1: at least 1"),
        ({"trainer_machine_type": "n1-standard-8"}, "need --trainer-replicas"),
        ({"trainer_replicas": 2, "accelerator_count": 1}, "--accelerator-count 1 needs --accelerator-type"),
        ({"trainer_replicas": 2, "accelerator_type": "NVIDIA_TESLA_T4"}, "needs --accelerator-count >= 1"),
        ({"trainer_replicas": 2, "accelerator_type": "GTX_1080", "accelerator_count": 1}, "'GTX_1080': not one of"),
        ({"trainer_replicas": 2, "trainer_machine_type": "big machine"}, "--trainer-machine-type 'big machine'"),
        ({"endpoint_image": "europe-docker.pkg.dev/x/y:1"}, "--endpoint-image .* needs --endpoint"),
        ({"endpoint": "my endpoint"}, "--endpoint 'my endpoint'"),
        ({"endpoint": "tt", "region": "me-west1"}, "no prebuilt container .*--endpoint-image"),
    ],
)
def test_scaling_settings_that_cannot_go_together_are_refused(tmp_path, change, message):
    settings = VertexSettings(**{**SETTINGS.__dict__, **change})
    with pytest.raises(VertexConfigError, match=message):
        compile_pipeline(load_profile("hm"), settings, str(tmp_path / "p.json"))
    assert not (tmp_path / "p.json").exists()


def test_cli_refuses_zero_trainer_replicas(capsys):
    from twotower.cli import main

    flags = [
        "--data",
        "gs://acme/hm",
        "--pipeline-root",
        "gs://acme/tt",
        "--project",
        "acme",
        "--region",
        "europe-west4",
    ]
    assert main(["vertex", *flags, "--trainer-replicas", "0"]) == 2
    assert "--trainer-replicas 0: at least 1" in capsys.readouterr().err
