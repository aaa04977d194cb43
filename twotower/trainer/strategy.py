"""tf.distribute strategy: the one to train under on this machine or cluster."""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf


def choose_strategy() -> tf.distribute.Strategy:
    """Returns the strategy for the devices present.

    - more than one GPU: MirroredStrategy over the GPUs;
    - no GPU but more than one logical CPU device (configured with
      ``tf.config.set_logical_device_configuration``): MirroredStrategy over them;
    - otherwise the default strategy (one device).

    A ``TF_CONFIG`` naming more than one worker raises NotImplementedError:
    multi-worker training needs chief-only export and checkpoints and equal
    shards per worker, which the trainer does not do yet.
    """
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
        raise NotImplementedError(
            "TF_CONFIG names several workers, but multi-worker training (MultiWorkerMirroredStrategy) "
            "is not supported yet; train on one machine (all its GPUs are used) or unset TF_CONFIG"
        )
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(devices) > 1:
        strategy: tf.distribute.Strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
    else:
        strategy = tf.distribute.get_strategy()
    logging.info("Training under %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy
