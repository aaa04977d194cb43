"""Several workers: TF_CONFIG parsing, a worker that waits for absent peers, a cluster that loses a worker.

The cluster tests run real MultiWorkerMirroredStrategy processes on localhost (``trainer.cluster``); they
are kept to one short phase because every worker traces its training step under collective ops.
That 2 replicas train the 1-replica loss is tests/trainer/test_replicas.py; the 2-worker vs 1-worker
Recall@50 comparison through the whole pipeline is tests/pipeline/test_trainer_workers.py.
"""

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import tensorflow as tf

from twotower.config import PhaseConfig
from twotower.trainer.cluster import LocalCluster, WorkerFailed, free_ports, tf_config
from twotower.trainer.strategy import Task, WorkersUnreachable, current_task, wait_for_workers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_tf_config_names_the_chief():
    assert current_task({}) == Task({}) and current_task({}).is_chief and not current_task({}).multi_worker
    two = ["localhost:1", "localhost:2"]
    # no chief job: worker 0 writes (TensorFlow's rule, and what `twotower run --trainer-workers` sets)
    assert current_task({"TF_CONFIG": json.dumps(tf_config(two, 0))}).is_chief
    assert not current_task({"TF_CONFIG": json.dumps(tf_config(two, 1))}).is_chief
    # Vertex AI worker pools: pool 0 is "chief", pool 1 "worker"; worker 0 is then not the chief
    vertex = {"cluster": {"chief": ["cmle-training-workerpool0-ab-0:2222"], "worker": ["wp1-0:2222", "wp1-1:2222"]}}
    chief = current_task({"TF_CONFIG": json.dumps({**vertex, "task": {"type": "chief", "index": 0}})})
    worker0 = current_task({"TF_CONFIG": json.dumps({**vertex, "task": {"type": "worker", "index": 0}})})
    assert chief.is_chief and not worker0.is_chief and len(worker0.workers) == 3
    assert worker0.address == "wp1-0:2222"


@pytest.mark.parametrize(
    "raw, message",
    [
        ("{not json", "not a cluster description"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "ps", "index": 0}}', "task 'ps' 0"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "task 'worker' 2"),
    ],
)
def test_bad_tf_config_is_refused(raw, message):
    with pytest.raises(ValueError, match=message):
        current_task({"TF_CONFIG": raw})


def test_waiting_for_a_worker_that_never_starts_gives_up_naming_it():
    ports = free_ports(2)
    task = current_task({"TF_CONFIG": json.dumps(tf_config([f"localhost:{p}" for p in ports], 0))})
    started = time.monotonic()
    with pytest.raises(WorkersUnreachable, match=f"no answer from worker 1 at localhost:{ports[1]}"):
        wait_for_workers(task, timeout_s=1.0, poll_s=0.1)
    assert time.monotonic() - started < 10


def test_two_waiting_workers_see_each_other():
    addresses = [f"localhost:{p}" for p in free_ports(2)]
    tasks = [current_task({"TF_CONFIG": json.dumps(tf_config(addresses, i))}) for i in range(2)]
    errors, servers, formed = [], [], threading.Event()

    def wait(task):
        try:
            wait_for_workers(task, timeout_s=20, poll_s=0.1)
        except WorkersUnreachable as error:
            errors.append(error)
            return
        server = socket.create_server(("", int(task.address.rsplit(":", 1)[1])))  # as TensorFlow's server then does
        servers.append(server)
        formed.wait(30)
        server.close()

    threads = [threading.Thread(target=wait, args=(t,)) for t in tasks]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(servers) + len(errors) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    formed.set()
    for t in threads:
        t.join(30)
    assert errors == [] and len(servers) == 2


def test_a_cluster_needs_two_workers(tmp_path):
    with pytest.raises(ValueError, match="--trainer-workers 1"):
        LocalCluster(["true"], 1, str(tmp_path))


def test_a_worker_that_keeps_failing_stops_the_cluster_with_its_log(tmp_path):
    command = [sys.executable, "-c", "import json, os, sys; t = json.loads(os.environ['TF_CONFIG'])['task'];"
               "print('worker says', t['index']); sys.exit(t['index'] * 7)"]  # fmt: skip
    cluster = LocalCluster(command, 2, str(tmp_path), max_restarts=1, poll_s=0.05)
    with pytest.raises(WorkerFailed, match="worker 1 exited with 7 \\(2 starts\\)(.|\n)*worker says 1"):
        cluster.run()
    assert cluster.starts == 2


def _profile(inputs, tmp_path, **trainer):
    profile = inputs.profile
    profile = dataclasses.replace(profile, trainer=dataclasses.replace(profile.trainer, **trainer))
    path = tmp_path / "profile.json"
    path.write_text(profile.to_json())
    return path


def _child(inputs, out, profile_path, checkpoint_dir):
    return [sys.executable, "-m", "tests.trainer.train_child", inputs.root, str(out), str(profile_path)] + [
        str(checkpoint_dir)
    ]


@pytest.mark.slow
def test_a_worker_named_but_never_started_fails_clearly_in_bounded_time(trainer_inputs, tmp_path):
    profile = _profile(trainer_inputs, tmp_path, worker_start_timeout_s=3.0)
    addresses = [f"localhost:{p}" for p in free_ports(2)]
    env = dict(os.environ, TF_CONFIG=json.dumps(tf_config(addresses, 0)))
    started = time.monotonic()
    done = subprocess.run(
        _child(trainer_inputs, tmp_path, profile, tmp_path / "ckpt"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,  # the bound: without the wait, MultiWorkerMirroredStrategy would block here for good
    )
    assert done.returncode != 0
    assert "WorkersUnreachable: worker 0 waited 3s" in done.stderr and f"worker 1 at {addresses[1]}" in done.stderr
    assert time.monotonic() - started < 120
    assert not (tmp_path / "model").exists()


def _latest_step(checkpoint_dir) -> int:
    state = tf.train.get_checkpoint_state(str(checkpoint_dir))
    return int(state.model_checkpoint_path.rsplit("-", 1)[1]) if state else 0


@pytest.mark.slow
def test_killing_a_worker_restarts_the_cluster_from_the_last_checkpoint(trainer_inputs, tmp_path):
    # 2 epochs of 9 steps at batch 512 (4182 examples), no per-epoch validation: the kill lands at a checkpoint
    # of step >= 4 and the restarted cluster still has steps to run; the time goes to starting workers twice
    phases = (PhaseConfig("softmax", 2),)
    profile = _profile(
        trainer_inputs, tmp_path, batch_size=512, checkpoint_every_steps=2, validation_users=0, phases=phases
    )
    checkpoints = tmp_path / "checkpoints"
    cluster = LocalCluster(_child(trainer_inputs, tmp_path / "out", profile, checkpoints), 2, str(tmp_path / "logs"))
    failure = []

    def run():
        try:
            cluster.run()
        except WorkerFailed as error:
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 600
    while _latest_step(checkpoints) < 4 and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.2)
    killed_at = _latest_step(checkpoints)
    assert thread.is_alive() and killed_at >= 4, "training finished (or failed) before a worker could be killed"
    cluster.processes[1].kill()
    thread.join(900)
    assert not thread.is_alive() and failure == []
    assert cluster.starts == 2
    with open(tmp_path / "logs" / "worker-0.log") as f:
        history = json.loads([line for line in f if line.startswith('{"replicas"')][-1])
    assert history["replicas"] == 2
    assert history["history"]["resumed_from_step"] >= killed_at
    epochs = [e["epoch"] for e in history["history"]["epochs"]]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 1  # epochs before the kill kept, none repeated
    assert tf.saved_model.load(str(tmp_path / "out" / "model")).signatures["serving_default"] is not None
    assert not checkpoints.exists()  # the chief removed them after its export
