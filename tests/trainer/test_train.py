"""The trainer for real on tiny ingested data: phases, TensorBoard, export, resume after a kill, two devices."""

import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from twotower.config import PhaseConfig
from twotower.export.assets import HISTORY_ASSET
from twotower.export.package import train_and_export
from twotower.trainer.train import fit

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _profile(inputs, **trainer):
    return dataclasses.replace(inputs.profile, trainer=dataclasses.replace(inputs.profile.trainer, **trainer))


def _tensorboard_tags(log_dir: str) -> set:
    tags = set()
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_default_plan_runs_four_phases_and_exports(trainer_inputs, tmp_path):
    profile = _profile(trainer_inputs, epochs=1, batch_size=256)
    history = train_and_export(profile, trainer_inputs.paths(str(tmp_path)))

    phases = [p["name"] for p in history["phases"]]
    assert phases == ["warmup", "softmax", "hard_negatives", "stabilise"]
    assert [e["phase"] for e in history["epochs"]] == phases  # one epoch each, in order
    assert [e["epoch"] for e in history["epochs"]] == [0, 1, 2, 3]
    assert all(np.isfinite(e["loss"]) and np.isfinite(e["val_loss"]) for e in history["epochs"])
    # validation recall every epoch; training ended on the best weights seen (the averaged ones count too)
    recalls = [e["val_recall@50"] for e in history["epochs"]]
    v = history["validation"]
    assert v["metric"] == "val_recall@50" and v["restored"] and v["stopped_early"] == []
    assert v["best"] == pytest.approx(max(recalls + [a["val_recall@50"] for a in v["weight_averages"]]))
    assert [a["phase"] for a in v["weight_averages"]] == ["stabilise"]
    # the rate at each phase's end: warm-up has risen to its peak, cosine has decayed to 0, the others are flat
    rates = [e["learning_rate"] for e in history["epochs"]]
    lr = profile.trainer.learning_rate
    assert rates == pytest.approx([lr / 10, 0.0, lr / 20, lr / 10], abs=1e-7)
    assert {p["batch_size"] for p in history["phases"]} == {256}
    assert history["temperature"] == pytest.approx(profile.trainer.temperature)
    assert history["examples_per_s"] > 0

    model_dir = str(tmp_path / "model")
    loaded = tf.saved_model.load(model_dir)
    # the hm profile has a history feature, so the query tower also has a signature taking one explicitly
    assert set(loaded.signatures) == {"serving_default", "query_embedding", "candidate_embedding", "query_with_history"}
    with open(os.path.join(model_dir, HISTORY_ASSET)) as f:
        assert json.load(f)["phases"] == history["phases"]
    assert os.path.isfile(os.path.join(model_dir, "assets.extra", "vocabularies.json"))
    # Keras writes val_* logs to the validation writer without the prefix: epoch_recall@50 is val_recall@50
    assert {"phase", "learning_rate", "temperature", "epoch_loss", "epoch_recall@50"} <= _tensorboard_tags(
        str(tmp_path / "logs")
    )
    assert not os.path.exists(tmp_path / "logs" / "checkpoints")  # a finished run leaves nothing to resume


def test_learnable_temperature_moves(trainer_inputs, tmp_path):
    phases = (PhaseConfig("softmax", 2, learning_rate=0.1),)
    history = train_and_export(
        _profile(trainer_inputs, learn_temperature=True, phases=phases), trainer_inputs.paths(str(tmp_path))
    )
    assert abs(history["temperature"] - trainer_inputs.profile.trainer.temperature) > 1e-3


def _child(inputs, out, profile_path, checkpoint_dir, *extra):
    cmd = [
        sys.executable,
        "-m",
        "tests.trainer.train_child",
        inputs.root,
        str(out),
        str(profile_path),
        str(checkpoint_dir),
    ]
    return cmd + [str(a) for a in extra]


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _latest_step(checkpoint_dir) -> int:
    state = tf.train.get_checkpoint_state(str(checkpoint_dir))
    return int(state.model_checkpoint_path.rsplit("-", 1)[1]) if state else 0


def test_killed_training_resumes_from_the_last_checkpoint(trainer_inputs, tmp_path):
    phases = (PhaseConfig("warmup", 1, loss="bpr", schedule="warmup"), PhaseConfig("softmax", 3, schedule="cosine"))
    profile = _profile(trainer_inputs, batch_size=32, checkpoint_every_steps=25, phases=phases)
    profile_path = tmp_path / "profile.json"
    profile_path.write_text(profile.to_json())
    checkpoints = tmp_path / "checkpoints"

    child = subprocess.Popen(_child(trainer_inputs, tmp_path / "a", profile_path, checkpoints), cwd=REPO)
    deadline = time.monotonic() + 300
    while _latest_step(checkpoints) < 50 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)
    assert child.poll() is None, "training finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = _latest_step(checkpoints)
    assert killed_at >= 50

    done = subprocess.run(
        _child(trainer_inputs, tmp_path / "b", profile_path, checkpoints), cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    history = _last_json(done.stdout)["history"]
    assert history["resumed_from_step"] == killed_at
    total = history["phases"][-1]["last_step"]
    assert killed_at < total
    epochs = [e["epoch"] for e in history["epochs"]]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 3  # epochs before the kill kept, none repeated
    # the best is over every epoch, those before the kill included (their best weights were kept on disk)
    assert history["validation"]["best"] == pytest.approx(max(e["val_recall@50"] for e in history["epochs"]))
    assert not checkpoints.exists()
    assert tf.saved_model.load(str(tmp_path / "b" / "model")).signatures["serving_default"] is not None


def test_a_run_cut_after_training_resumes_to_its_best_weights(trainer_inputs, tmp_path):
    """Cut after its last phase (while exporting): the resumed run trains nothing and ends on the best weights."""
    phases = (PhaseConfig("softmax", 2, learning_rate=0.5),)
    profile = _profile(trainer_inputs, batch_size=64, phases=phases)
    paths = trainer_inputs.paths(str(tmp_path), str(tmp_path / "checkpoints"))
    first = fit(profile, paths)  # trained; not exported, so its checkpoints stay as a cut-off run leaves them
    best = first.history["validation"]
    weights = [w.numpy() for w in first.model.weights]

    again = fit(profile, paths)
    assert again.history["resumed_from_step"] == again.history["phases"][-1]["last_step"]
    assert again.history["epochs"] == first.history["epochs"]  # no epoch run again
    v = again.history["validation"]
    assert v["restored"] and v["best"] == pytest.approx(best["best"]) and v["best_epoch"] == best["best_epoch"]
    for resumed, trained in zip(again.model.weights, weights, strict=True):
        np.testing.assert_array_equal(resumed.numpy(), trained)


def test_mirrored_strategy_on_two_logical_cpus(trainer_inputs, tmp_path):
    phases = (
        PhaseConfig("warmup", 1, loss="bpr"),
        PhaseConfig("negatives", 1, negatives=64, hard_negatives=8),
        PhaseConfig("stabilise", 1, ema=0.9),
    )
    profile_path = tmp_path / "profile.json"
    profile_path.write_text(_profile(trainer_inputs, batch_size=128, phases=phases).to_json())
    done = subprocess.run(
        _child(trainer_inputs, tmp_path, profile_path, tmp_path / "checkpoints", 2),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = _last_json(done.stdout)
    assert result["replicas"] == 2
    assert [e["phase"] for e in result["history"]["epochs"]] == ["warmup", "negatives", "stabilise"]
    assert all(np.isfinite(e["loss"]) for e in result["history"]["epochs"])
