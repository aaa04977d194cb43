"""Deployment files, checked without a Docker engine: every path they copy exists, every command they run is real.

Each Dockerfile (the pipeline image at the root, deploy/*/Dockerfile) and each
deploy/*/docker-compose.yml is parsed: COPY/ADD sources exist in the build
context (the repository root) and are not excluded by .dockerignore; what
ENTRYPOINT + CMD or a service's entrypoint + command runs is a console script of
setup.py or a binary the image is known to have, and a ``twotower`` command line
parses with the CLI's own parser; modules a ``python -c`` smoke check imports exist.
"""

import ast
import fnmatch
import glob
import importlib.util
import json
import os
import shlex

import pytest
import yaml

from twotower.cli import build_parser
from twotower.serving.tf_serving_config import CONTAINER_MODELS, MODELS_CONFIG

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILES = ["Dockerfile"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(f"{REPO}/deploy/*/Dockerfile"))
COMPOSE_FILES = sorted(os.path.relpath(p, REPO) for p in glob.glob(f"{REPO}/deploy/*/docker-compose.yml"))
BEAM_BOOT = "/opt/apache/beam/boot"
# Binaries an image has without a console script: TF Serving's server in tensorflow/serving; Beam's worker boot,
# which a Dockerfile must copy in itself (checked below).
KNOWN_BINARIES = {"tensorflow_model_server", BEAM_BOOT}
TF_SERVING_FLAGS = {"port", "rest_api_port", "model_config_file", "model_config_file_poll_wait_seconds"}


def _console_scripts():
    """Returns the console script names declared in setup.py's entry_points."""
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            scripts = ast.literal_eval(node.value)["console_scripts"]
            return {s.split("=")[0].strip() for s in scripts}
    raise AssertionError("setup.py declares no entry_points")


def _instructions(path):
    """Returns [(INSTRUCTION, arguments)] of a Dockerfile, continuation lines joined, comments dropped."""
    result, pending = [], ""
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            word, _, rest = (pending + line).partition(" ")
            result.append((word.upper(), rest.strip()))
            pending = ""
    assert not pending, f"{path}: ends inside a continued line"
    return result


def _exec_form(path, instruction, text):
    argv = json.loads(text) if text.startswith("[") else None
    assert isinstance(argv, list) and argv, f"{path}: {instruction} {text} is not exec form (a JSON list)"
    return argv


def _stages(path):
    """Returns {stage: {"entrypoint", "cmd", "copied"}} of a Dockerfile, in order; the last one is the default."""
    stages, current = {}, None
    for i, (word, rest) in enumerate(_instructions(path)):
        if word == "FROM":
            parts = rest.split()
            base = parts[0]
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else f"<stage {i}>"
            inherited = stages.get(base, {"entrypoint": None, "cmd": None, "copied": set()})
            current = stages[name] = {**inherited, "copied": set(inherited["copied"])}
        elif word == "ENTRYPOINT":
            current["entrypoint"], current["cmd"] = _exec_form(path, word, rest), None
        elif word == "CMD":
            current["cmd"] = _exec_form(path, word, rest)
        elif word in ("COPY", "ADD"):
            current["copied"].add(shlex.split(rest)[-1])
    return stages


def _ignored(path):
    """Returns the .dockerignore pattern that excludes ``path`` from the build context, or None."""
    with open(os.path.join(REPO, ".dockerignore"), encoding="utf-8") as f:
        patterns = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    parts = os.path.normpath(path).split(os.sep)
    prefixes = [os.path.join(*parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if any(fnmatch.fnmatch(p, pattern.removeprefix("**/")) or fnmatch.fnmatch(p, pattern) for p in prefixes):
            return pattern
    return None


def _check_command(argv, where, copied=frozenset()):
    """Asserts ``argv`` runs a console script or a known binary, and parses when it is a ``twotower`` command."""
    executable = argv[0]
    assert executable in _console_scripts() | KNOWN_BINARIES, f"{where}: runs {executable!r}, not a known entry point"
    if executable == BEAM_BOOT:
        assert "/opt/apache/beam" in copied, f"{where}: runs {BEAM_BOOT} without copying /opt/apache/beam in"
    if executable == "twotower" and len(argv) > 1:
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as e:
            raise AssertionError(f"{where}: `{shlex.join(argv)}` does not parse with twotower's CLI") from e


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_copied_path_exists_in_the_build_context(dockerfile):
    copies = [shlex.split(rest) for word, rest in _instructions(dockerfile) if word in ("COPY", "ADD")]
    assert copies, f"{dockerfile}: copies nothing"
    for args in copies:
        if any(a.startswith("--from=") for a in args):
            continue  # from another image, not the context
        sources = [a for a in args if not a.startswith("--")][:-1]
        for source in sources:
            assert glob.glob(os.path.join(REPO, source)), f"{dockerfile}: COPY {source}: no such path in the repo"
            assert not _ignored(source), f"{dockerfile}: COPY {source} is excluded by .dockerignore {_ignored(source)}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_stage_runs_a_real_entry_point(dockerfile):
    stages = _stages(dockerfile)
    for name, stage in stages.items():
        if stage["entrypoint"] or stage["cmd"]:
            argv = (stage["entrypoint"] or []) + (stage["cmd"] or [])
            _check_command(argv, f"{dockerfile} stage {name}", stage["copied"])
    default = list(stages.values())[-1]
    assert default["entrypoint"] == ["twotower"], f"{dockerfile}: the default image's entry point is not twotower"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_smoke_checks_import_modules_that_exist(dockerfile):
    snippets = []
    for word, rest in _instructions(dockerfile):
        if word == "RUN":
            args = shlex.split(rest)
            snippets += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-c" and args[i - 1] == "python"]
    for code in snippets:
        for node in ast.walk(ast.parse(code)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for module in names:
                assert importlib.util.find_spec(module), f"{dockerfile}: `python -c` imports missing {module}"


def test_pipeline_image_is_the_pinned_tfx_image_and_installs_with_the_constraints():
    instructions = _instructions("Dockerfile")
    assert ("FROM", "gcr.io/tfx-oss-public/tfx:1.16.0 AS pipeline") in instructions
    with open(os.path.join(REPO, "constraints.txt"), encoding="utf-8") as f:
        pins = dict(line.strip().split("==") for line in f if "==" in line and not line.startswith("#"))
    assert pins["tfx"] == "1.16.0"
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "pip install --no-cache-dir -c constraints.txt ." in runs
    beam = [rest for word, rest in instructions if word == "COPY" and "beam_python" in rest]
    assert beam == [f"--from=apache/beam_python3.10_sdk:{pins['apache-beam']} /opt/apache/beam /opt/apache/beam"]


def test_vertex_runner_finds_the_package_where_the_pipeline_image_copies_it():
    from twotower.pipeline.vertex import IMAGE_PACKAGE_DIR

    stages = _stages("Dockerfile")
    workdirs = [rest for word, rest in _instructions("Dockerfile") if word == "WORKDIR"]
    assert workdirs == [os.path.dirname(IMAGE_PACKAGE_DIR)]  # relative COPY targets land under it
    assert "./twotower" in stages["pipeline"]["copied"]
    # Vertex AI starts components with TFX's Kubeflow V2 entry point, which needs kfp: installed from the pins
    with open(os.path.join(REPO, "requirements", "direct.in"), encoding="utf-8") as f:
        assert "kfp" in {line.strip() for line in f}
    assert importlib.util.find_spec("tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor")


def _compose(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return yaml.safe_load(f)["services"]


def test_deploy_has_tf_serving_and_twotower_serve():
    services = {name for path in COMPOSE_FILES for name in _compose(path)}
    assert {"tf-serving", "twotower-serve"} <= services


@pytest.mark.parametrize("compose", COMPOSE_FILES)
def test_compose_services_build_real_dockerfiles_and_run_real_commands(compose):
    here = os.path.dirname(os.path.join(REPO, compose))
    for name, service in _compose(compose).items():
        where = f"{compose} service {name}"
        entrypoint, copied = service.get("entrypoint"), frozenset()
        if "build" in service:
            context = os.path.normpath(os.path.join(here, service["build"]["context"]))
            assert context == REPO, f"{where}: build context {context} is not the repository root"
            dockerfile = service["build"]["dockerfile"]
            assert dockerfile in DOCKERFILES, f"{where}: builds {dockerfile}, not one of {DOCKERFILES}"
            stage = list(_stages(dockerfile).values())[-1]
            entrypoint, copied = entrypoint or stage["entrypoint"], stage["copied"]
        command = service.get("command") or []
        command = shlex.split(command) if isinstance(command, str) else command
        entrypoint = shlex.split(entrypoint) if isinstance(entrypoint, str) else entrypoint
        assert entrypoint, f"{where}: no entry point known (set entrypoint: or build from a Dockerfile here)"
        _check_command(list(entrypoint) + list(command), where, copied)


def test_tf_serving_reads_the_config_the_pusher_writes():
    (service,) = _compose("deploy/tf-serving/docker-compose.yml").values()
    assert service["image"].startswith("tensorflow/serving:")
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in service["command"])
    assert set(flags) <= TF_SERVING_FLAGS, f"unknown tensorflow_model_server flags {set(flags) - TF_SERVING_FLAGS}"
    assert flags["model_config_file"] == f"{CONTAINER_MODELS}/{MODELS_CONFIG}"
    targets = [volume.split(":")[-2] for volume in service["volumes"]]
    assert CONTAINER_MODELS in targets  # where models.config's base_paths point
