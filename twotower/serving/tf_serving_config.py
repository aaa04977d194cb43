"""TF Serving's model config file for a serving directory.

After a push, ``write_models_config`` writes ``SERVING_DIR/models.config``: a
``ModelServerConfig`` text proto (``tensorflow_model_server --model_config_file``)
with one ``config`` per model directory that holds a numbered version
(``SERVING_DIR/<model>/<version>/``, the Pusher's layout), each serving its latest
``num_versions`` versions. ``base_path`` is where the directory is mounted in the
container, ``/models`` in deploy/tf-serving/docker-compose.yml; pass the host path
instead to run a ``tensorflow_model_server`` installed on the host. The file is
replaced atomically, so a server polling it (``--model_config_file_poll_wait_seconds``)
never reads half of it. Paths go through ``tf.io.gfile``, so ``SERVING_DIR`` may be
``gs://...`` (the Pusher writes it there on Vertex AI).
"""

from __future__ import annotations

import os
import posixpath
from typing import List, Sequence

import tensorflow as tf

MODELS_CONFIG = "models.config"
CONTAINER_MODELS = "/models"  # where the tensorflow/serving image reads models from


def model_names(serving_dir: str) -> List[str]:
    """Returns the sorted names of the directories of ``serving_dir`` that hold a numbered version directory."""
    if not tf.io.gfile.isdir(serving_dir):
        return []
    names = []
    for name in sorted(n.rstrip("/") for n in tf.io.gfile.listdir(serving_dir)):
        path = os.path.join(serving_dir, name)
        if tf.io.gfile.isdir(path) and any(
            v.rstrip("/").isdigit() and tf.io.gfile.isdir(os.path.join(path, v)) for v in tf.io.gfile.listdir(path)
        ):
            names.append(name)
    return names


def models_config(names: Sequence[str], base_path: str = CONTAINER_MODELS, num_versions: int = 1) -> str:
    """Returns the ModelServerConfig text proto serving ``base_path/<name>`` for each of ``names``."""
    if num_versions < 1:
        raise ValueError(f"num_versions must be >= 1, got {num_versions}")
    for name in names:
        if not name or any(c in name for c in "\"'\\/\n"):
            raise ValueError(f"model name {name!r}: not usable in a TF Serving config")
    configs = "".join(
        "  config {\n"
        f'    name: "{name}"\n'
        f'    base_path: "{posixpath.join(base_path, name)}"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy {\n"
        "      latest {\n"
        f"        num_versions: {num_versions}\n"
        "      }\n"
        "    }\n"
        "  }\n"
        for name in names
    )
    return "model_config_list {\n" + configs + "}\n"


def write_models_config(serving_dir: str, base_path: str = CONTAINER_MODELS, num_versions: int = 1) -> str:
    """Writes ``serving_dir/models.config`` listing every model in ``serving_dir``; returns its path."""
    path = os.path.join(serving_dir, MODELS_CONFIG)
    text = models_config(model_names(serving_dir), base_path, num_versions)
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return path
