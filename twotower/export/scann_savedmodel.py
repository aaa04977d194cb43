"""The ScaNN SavedModel: the model's query signature, then a TFRS ScaNN layer over the catalogue.

Written by ``export.package.build_index`` to ``MODEL_DIR/assets.extra/scann_savedmodel/``
for users who serve with ScaNN's custom ops (the tf-serving-scann image, or
TensorFlow with ``scann`` imported: ``load_scann_savedmodel``). Its
``serving_default`` takes the same raw query features as the model's and returns
``item_ids``/``item_names`` ``[batch, K]`` string and ``scores`` ``[batch, K]``
float32. It saves the query tower, the transform graph, the ids and names and
the ScaNN state (which keeps its own float32 copy of the catalogue for
re-scoring), not the model's candidate tower or its catalogue variable.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from twotower.export import repeats
from twotower.export.assets import SAVEDMODEL_DIR
from twotower.export.scann_index import Index, IndexConfig, import_scann, recall


class ScannRetrievalModule(tf.Module):
    """The ScaNN SavedModel: the model's query_embedding signature, then a TFRS ScaNN layer over the catalogue."""

    def __init__(self, model: Any, layer: tf.keras.layers.Layer, ids: np.ndarray, names: np.ndarray, k: int):
        """``model``: the loaded retrieval SavedModel; ``layer``: an indexed ScaNN layer; ``ids``/``names``: ``[n]``."""
        super().__init__()
        # with a history that scores repeats: the embedding and the history items' served scores
        query_embedding = model.signatures.get("query_with_history") or model.signatures["query_embedding"]
        # Tracked so the query signature's variables and vocabulary assets are saved (the catalogue is not).
        self.tft_layer, self.query_tower = model.tft_layer, model.query_tower
        if "query_with_history" in model.signatures:  # scores the history items: needs their rows and embeddings
            self.history_assets = [model.item_rows, model.item_embeddings, model.item_ids]
        self.scann = layer
        self.item_ids = tf.Variable(ids, trainable=False, name="item_ids")
        self.item_names = tf.Variable(names, trainable=False, name="item_names")
        self.row_of = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(ids), tf.range(len(ids), dtype=tf.int64)), -1
        )
        self._query_embedding, self._k = query_embedding, k
        self.serve = tf.function(self._serve, input_signature=[query_embedding.structured_input_signature[1]])

    def _serve(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        query = self._query_embedding(**features)
        scores, indices = self.scann(query["embedding"], k=self._k)
        if "history_scores" in query:
            history_rows = self.row_of.lookup(query["history_item_ids"])
            indices, scores = repeats.merge_top_k(indices, scores, history_rows, query["history_scores"], self._k)
        return {
            "item_ids": tf.gather(self.item_ids, indices),
            "item_names": tf.gather(self.item_names, indices),
            "scores": scores,
        }


def scann_layer(embeddings: np.ndarray, config: IndexConfig, k: int) -> tf.keras.layers.Layer:
    """Returns a ``tfrs.layers.factorized_top_k.ScaNN`` layer indexed on ``embeddings`` ``[n, dim]`` with ``config``.

    Calling it on query embeddings ``[batch, dim]`` returns (scores ``[batch, k]``,
    catalogue row indices ``[batch, k]`` int32). TFRS builds its own tree, without
    an anisotropic threshold, so its recall can differ a little from ``Index``'s.
    """
    import_scann()
    import tensorflow_recommenders as tfrs

    layer = tfrs.layers.factorized_top_k.ScaNN(
        k=k,
        num_leaves=config.num_leaves,
        num_leaves_to_search=config.leaves_to_search,
        dimensions_per_block=config.dims_per_block,
        num_reordering_candidates=config.reorder,
    )
    return layer.index(tf.constant(embeddings))


def export_scann_savedmodel(model_dir: str, index: Index, embeddings: np.ndarray, path: str) -> Optional[float]:
    """Saves the ScaNN SavedModel of the model at ``model_dir`` over ``embeddings`` ``[n, dim]`` to ``path``.

    ``serving_default`` takes the model's raw query features and returns
    ``item_ids``/``item_names`` ``[batch, K]`` string and ``scores`` ``[batch, K]``
    float32. Returns the layer's Recall@K on the index's validation queries
    (None when the index kept none).
    """
    model = tf.saved_model.load(model_dir)
    k = int(index.info["k"])
    layer = scann_layer(embeddings, index.config, k)
    module = ScannRetrievalModule(model, layer, index.ids, index.names, k)
    options = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])
    tf.saved_model.save(
        module, path, signatures={"serving_default": module.serve.get_concrete_function()}, options=options
    )
    if index.validation is None:
        return None
    queries, exact = index.validation
    return recall(layer(tf.constant(queries), k=k)[1].numpy(), exact)


def load_scann_savedmodel(version_dir: str) -> Any:
    """Returns the ScaNN SavedModel pushed with a version (``tf.saved_model.load`` after loading ScaNN's ops)."""
    import_scann()
    from scann.scann_ops.py import scann_ops  # noqa: F401  (registers the Scann>* ops)

    return tf.saved_model.load(os.path.join(version_dir, SAVEDMODEL_DIR))
