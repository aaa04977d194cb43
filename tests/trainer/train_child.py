"""Runs twotower.trainer.train.train in a fresh process (for the kill/resume and multi-device tests).

usage: python -m tests.trainer.train_child ROOT OUT PROFILE_JSON CHECKPOINT_DIR [LOGICAL_CPUS]
Prints one JSON line: {"replicas": n, "history": {...}}.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402

import tensorflow as tf  # noqa: E402


def main(root: str, out: str, profile_json: str, checkpoint_dir: str, cpus: int = 1) -> None:
    if cpus > 1:  # before anything touches a device
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpus)
    from twotower.config import from_dict
    from twotower.export.package import train_and_export
    from twotower.trainer.prepare import TrainerInputs
    from twotower.trainer.strategy import choose_strategy

    with open(profile_json) as f:
        profile = from_dict(json.load(f))
    inputs = TrainerInputs(profile, root, os.path.join(root, "transform_graph"))
    history = train_and_export(profile, inputs.paths(out, checkpoint_dir))
    print(json.dumps({"replicas": choose_strategy().num_replicas_in_sync, "history": history}))


if __name__ == "__main__":
    main(*sys.argv[1:5], *(int(a) for a in sys.argv[5:]))
