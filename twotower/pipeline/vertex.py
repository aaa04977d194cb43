"""Vertex AI runner: compiles the pipeline for Vertex AI Pipelines (KubeflowV2DagRunner) and submits it.

Every component runs in the pipeline image the repository's Dockerfile builds
(``default_image``; by default ``image_uri(project, region)``, where
``docker build`` and ``docker push`` put it), started by TFX's Kubeflow V2
executor entry point, so the image's own ``ENTRYPOINT`` is not used. Beam stages
(ExampleGen, StatisticsGen, Transform) run in that container with the
DirectRunner, or on Dataflow with ``dataflow=True``, whose workers start from
the Dockerfile's ``dataflow`` target (``--sdk_container_image``).

What changes from the local run:
- data, pipeline root and serving directory are ``gs://`` URIs;
- the profile's contract schema is read inside the image: a schema shipped with
  the package is rewritten to its path there (``IMAGE_PACKAGE_DIR``); for any
  other schema, copy the file to Cloud Storage and pass its URI as ``schema_uri``
  (the local file still gives the row ranges ExampleGen checks, at compile time);
- the drift baseline is a ``--baseline-statistics`` URI (a StatisticsGen output
  of an earlier run), since ML Metadata lives in Vertex, not under the root.

Past one machine: ``trainer_replicas`` N runs the Trainer as a Vertex AI custom job (TFX's Vertex
Trainer extension, ``trainer_job_spec``): worker pool 0 is the chief, pool 1 holds N-1 workers, all
on ``trainer_machine_type`` (with accelerators if asked) and the pipeline image; Vertex AI gives each
replica its ``TF_CONFIG`` (``worker_tf_config``), so the trainer runs MultiWorkerMirroredStrategy, and
restarts every replica when one fails, so training resumes from the chief's last checkpoint.
``endpoint`` also deploys a blessed model to that Vertex AI endpoint (TFX's Vertex Pusher), besides
pushing it to the serving directory.

``compile_pipeline`` needs no network or credentials; ``submit`` needs both.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from typing import Any, Dict, List, Optional

from tfx import v1 as tfx
from tfx.extensions.google_cloud_ai_platform import constants as vertex_constants
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer

import twotower
from twotower.config import Profile
from twotower.pipeline.pipeline import create_pipeline
from twotower.schema.contract import profile_ranges

# The Dockerfile copies the package source here (WORKDIR + COPY twotower ./twotower).
IMAGE_PACKAGE_DIR = "/opt/twotower/twotower"
IMAGE_REPOSITORY = "twotower"
PIPELINE_IMAGE = "twotower"
DATAFLOW_IMAGE = "twotower-dataflow"
DEFAULT_MACHINE_TYPE = "n1-standard-4"
WORKER_PORT = 2222  # the port Vertex AI gives every replica in TF_CONFIG
# The newest TensorFlow of Vertex AI's prebuilt prediction containers that the installed SDK lists
ENDPOINT_TF_VERSION = "2.15"
PACKAGE_DIR = os.path.dirname(os.path.abspath(twotower.__file__))


class VertexConfigError(ValueError):
    """A setting Vertex AI cannot run with: a local path where a gs:// URI is needed, a bad image name."""


def image_uri(project: str, region: str, name: str = PIPELINE_IMAGE, tag: str = twotower.__version__) -> str:
    """Returns the Artifact Registry path ``REGION-docker.pkg.dev/PROJECT/twotower/NAME:TAG``."""
    if not project or not region:
        raise VertexConfigError("--project and --region are needed to name the image (or pass --image)")
    return f"{region}-docker.pkg.dev/{project}/{IMAGE_REPOSITORY}/{name}:{tag}"


def _require_gcs(flag: str, uri: str) -> str:
    if not uri.startswith("gs://"):
        raise VertexConfigError(f"{flag} {uri!r}: Vertex AI components read and write Cloud Storage; use gs://...")
    return uri.rstrip("/")


def image_schema_path(schema: str, schema_uri: str = "") -> str:
    """Returns where the pipeline image finds the contract ``schema``: ``schema_uri``, or its path in the image."""
    if schema_uri:
        return _require_gcs("--schema-uri", schema_uri)
    if not schema:
        return schema
    relative = os.path.relpath(os.path.abspath(schema), PACKAGE_DIR)
    if relative.startswith(os.pardir):
        raise VertexConfigError(
            f"contract.schema {schema}: a file outside the twotower package is not in the image; "
            "copy it to Cloud Storage and pass its gs:// URI with --schema-uri"
        )
    return posixpath.join(IMAGE_PACKAGE_DIR, *relative.split(os.sep))


def dataflow_args(project: str, region: str, temp_location: str, image: str) -> List[str]:
    """Returns Beam flags that run the Beam stages on Dataflow with ``image`` as the worker container."""
    return [
        "--runner=DataflowRunner",
        f"--project={project}",
        f"--region={region}",
        f"--temp_location={temp_location}",
        f"--sdk_container_image={image}",
        "--experiments=use_runner_v2",
    ]


@dataclasses.dataclass(frozen=True)
class VertexSettings:
    """Where the pipeline runs and reads; ``image``/``dataflow_image`` default to ``image_uri``'s names."""

    project: str
    region: str
    data_root: str
    pipeline_root: str
    serving_dir: str = ""  # default <pipeline_root>/serving
    image: str = ""
    dataflow: bool = False
    dataflow_image: str = ""
    baseline_statistics: str = ""
    schema_uri: str = ""
    accept_drift: bool = False
    enable_cache: bool = False
    trainer_replicas: int = 0  # 0: train inside the pipeline step; N >= 1: a Vertex AI custom job of N replicas
    trainer_machine_type: str = ""  # default DEFAULT_MACHINE_TYPE (with trainer_replicas only)
    accelerator_type: str = ""  # e.g. NVIDIA_TESLA_T4 (aiplatform's AcceleratorType names)
    accelerator_count: int = 0
    endpoint: str = ""  # Vertex AI endpoint to deploy a blessed model to ("" = serving directory only)
    endpoint_machine_type: str = DEFAULT_MACHINE_TYPE
    endpoint_image: str = ""  # serving container; default Vertex AI's prebuilt TensorFlow CPU one

    def pipeline_image(self) -> str:
        """Returns the image every step runs: ``image``, else the Dockerfile's default target's name."""
        return self.image or image_uri(self.project, self.region)

    def worker_image(self) -> str:
        """Returns the Dataflow worker image: ``dataflow_image``, else the Dockerfile's ``dataflow`` target's name."""
        return self.dataflow_image or image_uri(self.project, self.region, DATAFLOW_IMAGE)


def _accelerator_types() -> List[str]:
    from google.cloud.aiplatform_v1.types import AcceleratorType

    return [a.name for a in AcceleratorType if a.name != "ACCELERATOR_TYPE_UNSPECIFIED"]


def check_scaling(settings: VertexSettings) -> None:
    """Raises VertexConfigError for trainer and endpoint settings that cannot go together."""
    s = settings
    if s.trainer_replicas < 0:
        raise VertexConfigError(f"--trainer-replicas {s.trainer_replicas}: at least 1 (one chief, N-1 workers)")
    if not s.trainer_replicas and (s.trainer_machine_type or s.accelerator_type or s.accelerator_count):
        raise VertexConfigError(
            "--trainer-machine-type, --accelerator-type and --accelerator-count set the Vertex AI training job; "
            "they need --trainer-replicas N"
        )
    for flag, machine in (
        ("--trainer-machine-type", s.trainer_machine_type),
        ("--endpoint-machine-type", s.endpoint_machine_type),
    ):
        if machine and (any(c.isspace() for c in machine) or machine.count("-") < 1):
            raise VertexConfigError(f"{flag} {machine!r}: expected a Compute Engine machine type, e.g. n1-standard-8")
    if s.accelerator_count < 0 or (s.accelerator_count and not s.accelerator_type):
        raise VertexConfigError(f"--accelerator-count {s.accelerator_count} needs --accelerator-type (and is >= 1)")
    if s.accelerator_type:
        known = _accelerator_types()
        if s.accelerator_type not in known:
            raise VertexConfigError(f"--accelerator-type {s.accelerator_type!r}: not one of {', '.join(known)}")
        if s.accelerator_count < 1:
            raise VertexConfigError(f"--accelerator-type {s.accelerator_type} needs --accelerator-count >= 1")
    if not s.endpoint and s.endpoint_image:
        raise VertexConfigError("--endpoint-image is the serving container of --endpoint NAME; it needs --endpoint")


def trainer_job_spec(settings: VertexSettings) -> Dict[str, Any]:
    """Returns the Vertex AI CustomJob ``job_spec`` of the Trainer: pool 0 the chief, pool 1 the other replicas.

    Every replica runs the pipeline image (TFX sets its command: ``run_executor`` on the Trainer executor).
    """
    check_scaling(settings)
    if settings.trainer_replicas < 1:
        raise VertexConfigError("the Trainer runs as a Vertex AI custom job only with --trainer-replicas N >= 1")
    machine: Dict[str, Any] = {"machine_type": settings.trainer_machine_type or DEFAULT_MACHINE_TYPE}
    if settings.accelerator_type:
        machine.update(accelerator_type=settings.accelerator_type, accelerator_count=settings.accelerator_count)
    pool = {"machine_spec": machine, "container_spec": {"image_uri": settings.pipeline_image()}}
    pools = [dict(pool, replica_count=1)]
    if settings.trainer_replicas > 1:
        pools.append(dict(pool, replica_count=settings.trainer_replicas - 1))
    # MultiWorkerMirroredStrategy cannot go on without a lost worker: restart all, resume from the checkpoint
    return {"worker_pool_specs": pools, "scheduling": {"restart_job_on_worker_restart": settings.trainer_replicas > 1}}


def worker_tf_config(job_spec: Dict[str, Any], pool: int, index: int) -> Dict[str, Any]:
    """Returns the ``TF_CONFIG`` Vertex AI gives replica ``index`` of worker pool ``pool`` of ``job_spec``.

    Vertex AI's documented mapping: pool 0 is the ``chief``, pool 1 the ``worker`` job (pools 2 and 3, parameter
    servers and evaluators, are not used); hosts are named ``workerpool<i>-<j>`` here, Vertex AI's own names differ.
    """
    jobs = ("chief", "worker")
    cluster = {
        jobs[i]: [f"workerpool{i}-{j}:{WORKER_PORT}" for j in range(p["replica_count"])]
        for i, p in enumerate(job_spec["worker_pool_specs"])
    }
    return {"cluster": cluster, "task": {"type": jobs[pool], "index": index}, "environment": "cloud"}


def vertex_training_config(settings: VertexSettings) -> Dict[str, Any]:
    """Returns the Trainer's custom_config entries that make TFX's Vertex Trainer extension run ``trainer_job_spec``."""
    return {
        vertex_constants.ENABLE_VERTEX_KEY: True,
        vertex_constants.VERTEX_REGION_KEY: settings.region,
        vertex_trainer.TRAINING_ARGS_KEY: {"project": settings.project, "job_spec": trainer_job_spec(settings)},
    }


def endpoint_image(settings: VertexSettings) -> str:
    """Returns the endpoint's serving container: ``endpoint_image``, else Vertex AI's prebuilt TensorFlow CPU one."""
    if settings.endpoint_image:
        return settings.endpoint_image
    from google.cloud.aiplatform import helpers

    try:
        return helpers.get_prebuilt_prediction_container_uri("tensorflow", ENDPOINT_TF_VERSION, settings.region)
    except ValueError as error:
        raise VertexConfigError(
            f"--endpoint {settings.endpoint}: no prebuilt container ({error}); pass --endpoint-image"
        ) from None


def vertex_push_config(settings: VertexSettings) -> Dict[str, Any]:
    """Returns the custom_config of TFX's Vertex Pusher: deploy a blessed model to endpoint ``settings.endpoint``."""
    check_scaling(settings)
    if not settings.endpoint or any(c.isspace() for c in settings.endpoint):
        raise VertexConfigError(f"--endpoint {settings.endpoint!r}: expected an endpoint display name without spaces")
    return {
        vertex_constants.ENABLE_VERTEX_KEY: True,
        vertex_constants.VERTEX_REGION_KEY: settings.region,
        vertex_constants.VERTEX_CONTAINER_IMAGE_URI_KEY: endpoint_image(settings),
        vertex_constants.SERVING_ARGS_KEY: {
            "project_id": settings.project,
            "endpoint_name": settings.endpoint,
            "machine_type": settings.endpoint_machine_type or DEFAULT_MACHINE_TYPE,
        },
    }


def build_pipeline(profile: Profile, settings: VertexSettings) -> tfx.dsl.Pipeline:
    """Returns the pipeline of ``create_pipeline`` set up for Vertex AI (module docstring)."""
    check_scaling(settings)
    root = _require_gcs("--pipeline-root", settings.pipeline_root)
    data_root = _require_gcs("--data", settings.data_root)
    serving_dir = _require_gcs("--serving-dir", settings.serving_dir or posixpath.join(root, "serving"))
    baseline = settings.baseline_statistics
    if baseline:
        _require_gcs("--baseline-statistics", baseline)
    ranges = profile_ranges(profile)  # from the local schema file
    schema = image_schema_path(profile.contract.schema, settings.schema_uri)
    profile = dataclasses.replace(profile, contract=dataclasses.replace(profile.contract, schema=schema))
    beam = ["--direct_running_mode=in_memory"]
    if settings.dataflow:
        beam = dataflow_args(settings.project, settings.region, posixpath.join(root, "tmp"), settings.worker_image())
    return create_pipeline(
        pipeline_name=f"twotower-{profile.name}",
        pipeline_root=root,
        data_root=data_root,
        profile=profile,
        serving_dir=serving_dir,
        beam_pipeline_args=beam,
        enable_cache=settings.enable_cache,
        row_ranges=ranges,
        baseline_statistics_uri=baseline,
        accept_drift=settings.accept_drift,
        vertex_training=vertex_training_config(settings) if settings.trainer_replicas else None,
        vertex_push=vertex_push_config(settings) if settings.endpoint else None,
    )


def compile_pipeline(profile: Profile, settings: VertexSettings, output: str) -> str:
    """Writes the Vertex AI pipeline definition (``.json`` or ``.yaml``) to ``output``; returns its path."""
    image = settings.pipeline_image()
    tagged = ":" in image.rsplit("/", 1)[-1] or "@sha256:" in image
    if not tagged or any(c.isspace() for c in image):
        raise VertexConfigError(f"image {image!r}: expected REGISTRY/PATH:TAG or REGISTRY/PATH@sha256:...")
    pipeline = build_pipeline(profile, settings)
    output = os.path.abspath(output)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(output),
        output_filename=os.path.basename(output),
    )
    runner.run(pipeline)
    return output


def pipeline_job(
    definition: str, settings: VertexSettings, credentials: Optional[object] = None, labels: Optional[dict] = None
):
    """Returns an ``aiplatform.PipelineJob`` for a compiled ``definition`` (nothing is sent yet)."""
    from google.cloud import aiplatform

    name = os.path.splitext(os.path.basename(definition))[0]
    return aiplatform.PipelineJob(
        display_name=name,
        template_path=definition,
        pipeline_root=_require_gcs("--pipeline-root", settings.pipeline_root),
        enable_caching=settings.enable_cache,
        project=settings.project,
        location=settings.region,
        credentials=credentials,
        labels=labels,
    )


def submit(definition: str, settings: VertexSettings, service_account: Optional[str] = None) -> str:
    """Submits a compiled ``definition`` to Vertex AI Pipelines; returns the job's resource name.

    Raises VertexConfigError when no Google Cloud credentials are found.
    """
    from google.auth import exceptions as auth_exceptions

    try:
        job = pipeline_job(definition, settings)
        job.submit(service_account=service_account)
    except auth_exceptions.DefaultCredentialsError as error:
        raise VertexConfigError(
            f"--submit: no Google Cloud credentials ({error}); run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a service account key"
        ) from None
    return job.resource_name
