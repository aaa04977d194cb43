# Pipeline/trainer image (Vertex AI Pipelines, custom jobs, Dataflow workers).
# Based on the official TFX image of the pinned TFX version; the rest of the
# stack comes from the same constraints.txt the Makefile uses.
# Not built in this repository's CI (no Docker engine there).
FROM gcr.io/tfx-oss-public/tfx:1.16.0

WORKDIR /opt/twotower
COPY constraints.txt setup.py pyproject.toml README.md ./
COPY requirements ./requirements
COPY twotower ./twotower
RUN pip install --no-cache-dir -c constraints.txt . \
 && python -c "import twotower.cli; from twotower.config import builtin_profiles as b, load_profile as l; [l(p) for p in b()]"
ENV TF_USE_LEGACY_KERAS=1
ENTRYPOINT ["twotower"]
