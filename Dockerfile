# Pipeline/trainer image: Vertex AI Pipelines, Vertex custom jobs, Dataflow workers.
# Based on the official TFX image of the pinned TFX version; the rest of the
# stack and the package come from the same constraints.txt the Makefile uses.
# Build context: the repository root. Targets, tagged where `twotower vertex` looks by default
# (twotower/pipeline/vertex.py; VERSION is the package's, 0.1.0):
#   docker build -t REGION-docker.pkg.dev/PROJECT/twotower/twotower:VERSION .
#       entry point `twotower` (custom jobs); Vertex AI Pipelines steps start TFX's executor instead
#   docker build --target dataflow -t REGION-docker.pkg.dev/PROJECT/twotower/twotower-dataflow:VERSION .
#       entry point Beam's worker boot (Dataflow --sdk_container_image; Dataflow cannot override it)
# Not built in this repository's CI (no Docker engine there); tests/test_deploy_files.py
# checks that every path it copies exists and every command it runs is real.
FROM gcr.io/tfx-oss-public/tfx:1.16.0 AS pipeline

# The Vertex runner rewrites built-in contract schemas to /opt/twotower/twotower/schema/ (IMAGE_PACKAGE_DIR).
WORKDIR /opt/twotower
# `python -m pip`: the pip of the interpreter that runs the code (older TFX images had a pip of another Python).
RUN python -c "import sys; assert sys.version_info[:2] == (3, 10), 'twotower needs Python 3.10, the image has ' + sys.version"
COPY constraints.txt setup.py pyproject.toml README.md ./
COPY requirements ./requirements
COPY twotower ./twotower
RUN python -m pip install --no-cache-dir -c constraints.txt . \
 && python -c "import twotower.cli; from twotower.config import builtin_profiles as b, load_profile as l; [l(p) for p in b()]"
# Beam's worker boot of the pinned apache-beam version (constraints.txt), for Dataflow workers.
COPY --from=apache/beam_python3.10_sdk:2.60.0 /opt/apache/beam /opt/apache/beam
ENV TF_USE_LEGACY_KERAS=1
ENTRYPOINT ["twotower"]

FROM pipeline AS dataflow
ENTRYPOINT ["/opt/apache/beam/boot"]

# The default target: the pipeline image.
FROM pipeline
