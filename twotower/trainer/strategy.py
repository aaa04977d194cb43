"""tf.distribute strategy: the one to train under on this machine or cluster."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402
import logging  # noqa: E402

import tensorflow as tf  # noqa: E402


def choose_strategy() -> tf.distribute.Strategy:
    """Returns the strategy for the devices present.

    - ``TF_CONFIG`` naming more than one worker: MultiWorkerMirroredStrategy;
    - more than one GPU: MirroredStrategy over the GPUs;
    - no GPU but more than one logical CPU device (configured with
      ``tf.config.set_logical_device_configuration``): MirroredStrategy over them;
    - otherwise the default strategy (one device).
    """
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
        strategy: tf.distribute.Strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        if len(devices) > 1:
            strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        else:
            strategy = tf.distribute.get_strategy()
    logging.info("Training under %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy
