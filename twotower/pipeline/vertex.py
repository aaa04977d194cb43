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

``compile_pipeline`` needs no network or credentials; ``submit`` needs both.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from typing import List, Optional

from tfx import v1 as tfx

import twotower
from twotower.config import Profile
from twotower.pipeline.pipeline import create_pipeline
from twotower.schema.contract import profile_ranges

# The Dockerfile copies the package source here (WORKDIR + COPY twotower ./twotower).
IMAGE_PACKAGE_DIR = "/opt/twotower/twotower"
IMAGE_REPOSITORY = "twotower"
PIPELINE_IMAGE = "twotower"
DATAFLOW_IMAGE = "twotower-dataflow"
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

    def pipeline_image(self) -> str:
        """Returns the image every step runs: ``image``, else the Dockerfile's default target's name."""
        return self.image or image_uri(self.project, self.region)

    def worker_image(self) -> str:
        """Returns the Dataflow worker image: ``dataflow_image``, else the Dockerfile's ``dataflow`` target's name."""
        return self.dataflow_image or image_uri(self.project, self.region, DATAFLOW_IMAGE)


def build_pipeline(profile: Profile, settings: VertexSettings) -> tfx.dsl.Pipeline:
    """Returns the pipeline of ``create_pipeline`` set up for Vertex AI (module docstring)."""
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
