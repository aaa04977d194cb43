"""Where the build-time files sit inside an exported model directory (no TensorFlow here).

``MODEL_DIR/assets.extra/`` is ignored by TF Serving and copied by the Pusher with the model, so
everything a serving process or a client needs besides the signatures lives there:

- ``profile.json``: the profile the model was trained with (feature names, the data contract);
- ``history.json``: the trainer's phases, per-epoch losses and examples/s;
- ``vocabularies.json`` and ``vocab/``: the feature vocabularies (``twotower.vocab``);
- ``onnx/``: the ONNX towers and ``onnx.json``;
- ``scann/``: the catalogue index; ``scann_savedmodel/``: the TFRS ScaNN SavedModel;
- ``histories/``: every known user's history as of the end of the data (``export.histories``).
"""

from __future__ import annotations

import os

EXTRA_DIR = "assets.extra"
PROFILE_ASSET = os.path.join(EXTRA_DIR, "profile.json")
HISTORY_ASSET = os.path.join(EXTRA_DIR, "history.json")  # written by export.package, plotted by the evaluator
ONNX_DIR = os.path.join(EXTRA_DIR, "onnx")
INDEX_DIR = os.path.join(EXTRA_DIR, "scann")
SAVEDMODEL_DIR = os.path.join(EXTRA_DIR, "scann_savedmodel")
HISTORIES_DIR = os.path.join(EXTRA_DIR, "histories")
