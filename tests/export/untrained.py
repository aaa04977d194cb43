"""An untrained export module over the every-feature-kind Transform (tests/transform), for export tests."""

import tensorflow as tf
import tensorflow_transform as tft

from tests.transform import test_feature_kinds as kinds
from twotower.export import signatures
from twotower.trainer import towers
from twotower.transform.features import raw_inputs


def untrained_module(tmp_path_factory, item_names, top_k):
    """Returns (profile, tft_output, module, query_raw, item_raw): Transform on kinds.N rows, random towers.

    The module's catalogue is ``item_names`` with ids a0, a1, ... and random unit embeddings.
    """
    tf.keras.utils.set_random_seed(0)
    profile = kinds.feature_profile()
    out = str(tmp_path_factory.mktemp("tft_out"))
    kinds.analyze_and_transform(profile, str(tmp_path_factory.mktemp("tft")), out)
    tft_output = tft.TFTransformOutput(out)
    query_tower, candidate_tower = towers.build_towers(profile, tft_output)
    query_raw, item_raw = raw_inputs(profile)
    module = signatures.RetrievalModule(
        tft_output,
        query_tower,
        candidate_tower,
        query_raw,
        item_raw,
        item_ids=tf.constant([f"a{i}".encode() for i in range(len(item_names))]),
        item_names=tf.constant(item_names),
        item_embeddings=tf.math.l2_normalize(tf.random.normal([len(item_names), profile.trainer.embedding_dim]), 1),
        top_k=top_k,
    )
    return profile, tft_output, module, query_raw, item_raw
