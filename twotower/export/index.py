"""The retrieval index of a packaged model: the index our server searches and, for ScaNN, its SavedModel.

Two modules do the work: ``scann_index`` builds, tunes, saves and loads the index (what the
server reads), ``scann_savedmodel`` writes the TFRS ScaNN layer's SavedModel for users of
ScaNN's TensorFlow ops. This module runs both, once, after training.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Optional

import numpy as np

from twotower.export.assets import INDEX_DIR, SAVEDMODEL_DIR
from twotower.export.scann_index import build_index, save_index
from twotower.export.scann_savedmodel import export_scann_savedmodel


def build_and_save(
    ids: np.ndarray,
    names: np.ndarray,
    embeddings: np.ndarray,
    model_dir: str,
    k: int = 100,
    queries: Optional[np.ndarray] = None,
    export_savedmodel: bool = True,
) -> Dict[str, Any]:
    """Builds the catalogue index, saves it under ``model_dir`` (see ``scann_index``); returns its ``index.json``.

    ``ids``/``names``: ``[n]`` bytes, ``embeddings``: ``[n, dim]`` float32 (the
    candidate tower's, as exported); ``queries``: ``[m, dim]`` float32 query
    embeddings to tune on. With ``export_savedmodel`` and a ScaNN index, the
    ScaNN SavedModel of ``model_dir``'s model is written too.
    """
    index = build_index(ids, names, embeddings, k=k, queries=queries)
    if export_savedmodel and index.config.kind == "scann":
        started = time.monotonic()
        layer_recall = export_scann_savedmodel(model_dir, index, embeddings, os.path.join(model_dir, SAVEDMODEL_DIR))
        index.info["savedmodel"] = {"seconds": round(time.monotonic() - started, 3), "recall_at_k": layer_recall}
    save_index(index, os.path.join(model_dir, INDEX_DIR))
    return index.info
