"""The served model with every feature kind: a timestamp in the query, a dense vector per item."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.export.untrained import untrained_module
from tests.transform.test_feature_kinds import START
from twotower.export import signatures


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    profile, _, module, _, _ = untrained_module(tmp_path_factory, [b"zero", b"one", b"two"], top_k=2)
    path = str(tmp_path_factory.mktemp("model"))
    signatures.export(module, path, profile.to_json())
    return profile, tf.saved_model.load(path).signatures


def test_query_signature_takes_the_timestamp_as_int64_seconds(served):
    profile, signatures = served
    spec = signatures["serving_default"].structured_input_signature[1]
    assert {n: (s.dtype, s.shape.as_list()) for n, s in spec.items()} == {
        "customer_id": (tf.string, [None]),
        "age": (tf.float32, [None]),
        "club": (tf.string, [None]),
        "ts": (tf.int64, [None]),
    }
    out = signatures["serving_default"](
        customer_id=tf.constant(["u1", "stranger"]),
        age=tf.constant([31.0, math.nan]),
        club=tf.constant(["ACTIVE", ""]),
        ts=tf.constant([START, START + 86400 * 365], tf.int64),
    )
    assert out["item_ids"].shape == (2, 2) and out["scores"].shape == (2, 2)


def test_candidate_signature_takes_vectors_and_nan_means_missing(served):
    _, signatures = served
    candidate = signatures["candidate_embedding"]
    spec = candidate.structured_input_signature[1]
    assert (spec["vec"].dtype, spec["vec"].shape.as_list()) == (tf.float32, [None, 3])
    items = {
        "article_id": tf.constant(["a1", "a1", "a1"]),
        "desc": tf.constant(["Soft cotton T-shirt", "Soft cotton T-shirt", "Soft cotton T-shirt"]),
        "genres": tf.constant(["Comedy"] * 3),
        "type": tf.constant(["Top"] * 3),
        "colour": tf.constant(["Black"] * 3),
        "vec": tf.constant([[1.0, 2.0, 3.0], [math.nan] * 3, [0.0, 0.0, 0.0]]),
    }
    embeddings = candidate(**items)["embedding"].numpy()
    assert np.linalg.norm(embeddings, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    assert embeddings[1] == pytest.approx(embeddings[2], abs=1e-6)  # a missing vector is the zero vector
    assert np.abs(embeddings[0] - embeddings[2]).max() > 1e-4
