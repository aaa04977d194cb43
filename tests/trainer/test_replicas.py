"""The loss on several replicas is the single-replica loss on the global batch, to float rounding.

In a fresh process (logical CPUs are set before TensorFlow starts: ``tests/trainer/replicas_child.py``),
one batch of 8 rows with trainable towers, a learned temperature, logQ, accidental hits across the
replicas' halves and a history repeat bias goes through ``TwoTowerModel.compute_loss`` on one device
and through MirroredStrategy over 2 logical CPUs, split evenly, unevenly and with one replica empty.
The summed per-replica losses and gradients (what the optimizer all-reduces) must equal the
one-device ones; one Keras ``train_step`` must move the weights alike. This is the strong check of
the issue's 2-worker vs 1-worker bar (same global batch, same model); the end-to-end comparison in
tests/pipeline/test_trainer_workers.py only adds that the cluster trains and pushes such a model.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def compared():
    done = subprocess.run(
        [sys.executable, "-m", "tests.trainer.replicas_child"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,  # a collective that one replica skips would hang instead of failing
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "case",
    ["softmax", "softmax_uneven", "softmax_empty_replica", "bpr", "hard_negatives", "sampled_negatives", "alignment"],
)
def test_two_replicas_compute_the_one_replica_loss_and_gradients(compared, case):
    result = compared[case]
    assert result["two"] == pytest.approx(result["one"], rel=1e-5, abs=1e-5)
    assert result["gradient_scale"] > 0.1  # the gradients are not trivially zero
    assert result["gradient_error"] <= 1e-5 * max(1.0, result["gradient_scale"])


def test_a_train_step_on_two_replicas_moves_the_weights_as_on_one(compared):
    result = compared["train_step"]
    # what Keras logs, the sum over replicas, is the one-replica loss
    assert result["two"] == pytest.approx(result["one"], rel=1e-5)
    assert result["gradient_scale"] > 0.1  # the step moved the weights
    assert result["gradient_error"] <= 1e-5
