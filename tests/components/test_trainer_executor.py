"""Trainer executor: one worker trains in a child process; its errors come back as themselves.

The child runs the real executor through TFX's ``run_executor``; ``run_fn`` is a tiny module file
here instead of the two-tower trainer (the pipeline tests run that one the same way).
"""

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from twotower.components.trainer.executor import (
    ERROR_FILE_ENV,
    PARENT_ENV,
    TRAINER_CHILD_ENV,
    Executor,
    TrainingProcessFailed,
)
from twotower.errors import DataError

RUN_FN = textwrap.dedent(
    """
    import os
    import signal
    import sys
    import time

    from twotower.errors import DataError


    def run_fn(fn_args):
        action = fn_args.custom_config["action"]
        print(f"run_fn says hello on stderr from {os.getpid()}", file=sys.stderr, flush=True)
        if action == "data_error":
            raise DataError("events.csv row 7, field 'price': not a number")
        if action == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "sleep":  # until killed; says where it sleeps first
            with open(fn_args.custom_config["pid_file"], "w") as f:
                f.write(str(os.getpid()))
            time.sleep(600)
        os.makedirs(fn_args.serving_model_dir)
        with open(os.path.join(fn_args.serving_model_dir, "pid"), "w") as f:
            f.write(str(os.getpid()))
    """
)


def _do(tmp_path, action, **config):
    module_file = tmp_path / "run_fn_module.py"
    module_file.write_text(RUN_FN)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval", "catalog"])
    for split in ("train", "eval", "catalog"):
        os.makedirs(tmp_path / "examples" / f"Split-{split}")
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = str(tmp_path / "model"), str(tmp_path / "model_run")
    Executor().Do(
        {standard_component_specs.EXAMPLES_KEY: [examples]},
        {standard_component_specs.MODEL_KEY: [model], standard_component_specs.MODEL_RUN_KEY: [model_run]},
        {
            standard_component_specs.MODULE_FILE_KEY: str(module_file),
            standard_component_specs.TRAIN_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.TrainArgs(num_steps=1)),
            standard_component_specs.EVAL_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.EvalArgs(num_steps=1)),
            standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps({"action": action, **config}),
        },
    )
    return os.path.join(model.uri, "Format-Serving")


@pytest.fixture(autouse=True)
def _not_a_child(monkeypatch):
    for name in (TRAINER_CHILD_ENV, ERROR_FILE_ENV, PARENT_ENV, "TF_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_one_worker_trains_in_a_child_process_whose_log_reaches_this_ones(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        serving_model_dir = _do(tmp_path, "export")
    with open(os.path.join(serving_model_dir, "pid")) as f:
        child_pid = int(f.read())
    assert child_pid != os.getpid()  # the memory training took went back with that process
    assert f"[training process] run_fn says hello on stderr from {child_pid}" in caplog.text


def test_an_error_in_the_child_is_raised_again_as_itself(tmp_path):
    with pytest.raises(DataError, match="events.csv row 7, field 'price'") as raised:
        _do(tmp_path, "data_error")  # so `twotower run` still exits 2 (bad input), not 4
    assert isinstance(raised.value.__cause__, TrainingProcessFailed)
    assert "run_fn says hello" in str(raised.value.__cause__)  # the child's log tail is kept


def test_a_child_killed_without_an_exception_fails_with_its_exit_code_and_log(tmp_path):
    with pytest.raises(TrainingProcessFailed, match=r"exited with -9(.|\n)*run_fn says hello"):
        _do(tmp_path, "killed")


def test_the_environment_marker_trains_in_this_process(tmp_path, monkeypatch):
    monkeypatch.setenv(TRAINER_CHILD_ENV, "1")  # as README says
    with open(os.path.join(_do(tmp_path, "export"), "pid")) as f:
        assert int(f.read()) == os.getpid()


def test_the_training_process_dies_with_the_pipeline_process(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pathlib, sys; from tests.components.test_trainer_executor import _do; "
            f"_do(pathlib.Path({str(tmp_path)!r}), 'sleep', pid_file={str(pid_file)!r})",
        ],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        env={
            k: v for k, v in os.environ.items() if k not in (TRAINER_CHILD_ENV, ERROR_FILE_ENV, PARENT_ENV, "TF_CONFIG")
        },
    )
    child = None
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() or not pid_file.read_text():
            assert parent.poll() is None and time.monotonic() < deadline, "the training child never started"
            time.sleep(0.2)
        child = int(pid_file.read_text())
        os.kill(parent.pid, signal.SIGKILL)  # as the OOM killer or `kill -9` would
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, f"training process {child} outlived its parent"
            time.sleep(0.1)
    finally:
        if parent.poll() is None:
            parent.kill()
        if child is not None and _alive(child):  # the test failed: leave no sleeper behind
            os.kill(child, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
