"""ONNX towers: the conversion pieces on tiny graphs, then parity of the exported towers with TensorFlow.

The parity tests read the model the trainer exported (``exported_model``) and
real examples of the session's tiny data set: interactions of the eval split
for the query tower, items of the catalog split for the candidate tower. The
TensorFlow side is always the SavedModel's raw-feature signature, so a tower
exported over transformed features is checked through Transform as well.
"""

import json
import os

import numpy as np
import onnx
import pytest
import tensorflow as tf
from onnx import TensorProto, helper, numpy_helper

from twotower.export import onnx_convert
from twotower.export.onnx_export import (
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    MANIFEST,
    ONNX_DIR,
    RAW,
    TRANSFORMED,
    raw_examples,
    run_onnx,
)
from twotower.transform.features import raw_inputs

SIGNATURES = {"query": "query_embedding", "candidate": "candidate_embedding"}
SPLITS = {"query": "eval", "candidate": "catalog"}


def _run(model, feed):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def test_float16_keeps_float32_interface_and_halves_the_weights():
    w = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], np.float32)
    b = np.array([0.1, 0.2, -0.3], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y0"]),
            helper.make_node("Relu", ["y0"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", onnx_convert.OPSET)])
    half = onnx_convert.float16(model)

    assert {t.data_type for t in half.graph.initializer} == {TensorProto.FLOAT16}
    assert [v.name for v in half.graph.input] == ["x"] and [v.name for v in half.graph.output] == ["y"]
    x = np.array([[1.0, 2.0], [-3.0, 0.5]], np.float32)
    (y,) = _run(half, {"x": x})
    assert y.dtype == np.float32
    # relu(x @ w + b) = relu([[3.6, -0.3, 0.2], [-0.65, 3.325, -6.675]])
    np.testing.assert_allclose(y, [[3.6, 0.0, 0.2], [0.0, 3.325, 0.0]], atol=1e-2)


def test_handlers_map_buckets_missing_strings_and_the_oov_hash_exactly():
    def transform(features):
        boundaries = tf.constant([[18.0, 25.0, 40.0]])
        age = tf.reshape(features["age"], [1, -1])
        return {
            "bucket": tf.reshape(tf.searchsorted(boundaries, age, side="right"), [-1]),  # UpperBound
            "present": tf.cast(tf.not_equal(features["status"], ""), tf.int64),
            "oov": tf.strings.to_hash_bucket_fast(features["status"], 1),
        }

    signature = {"age": tf.TensorSpec([None], tf.float32, "age"), "status": tf.TensorSpec([None], tf.string, "status")}
    model = onnx_convert.from_function(tf.function(transform), signature)
    assert onnx_convert.unsupported_ops(model) == []
    age = np.array([10.0, 18.0, 30.0, 40.0, 99.0], np.float32)
    status = np.array(["ACTIVE", "", "PRE-CREATE", "", "x"], dtype=object)
    got = dict(zip([o.name for o in model.graph.output], _run(model, {"age": age, "status": status}), strict=True))
    assert got["bucket"].tolist() == [0, 1, 2, 3, 3]  # boundaries <= age
    assert got["present"].tolist() == [1, 0, 1, 0, 1]
    assert got["oov"].tolist() == [0, 0, 0, 0, 0]


def test_a_hashed_cross_is_reported_unsupported():
    def cross(features):
        return {"cross": tf.strings.to_hash_bucket_fast(tf.strings.join([features["a"], features["b"]], "\x1f"), 50)}

    signature = {name: tf.TensorSpec([None], tf.string, name) for name in ("a", "b")}
    model = onnx_convert.from_function(tf.function(cross), signature)
    assert onnx_convert.unsupported_ops(model) == ["StringJoin", "StringToHashBucketFast"]


def test_every_tower_input_kind_converts_fp32_and_fp16():
    from twotower.trainer.towers import BAG, EMBEDDING, FLOATS, PROJECTION, Tower, TowerInput

    inputs = [
        TowerInput("colour", EMBEDDING, size=5, width=4),
        TowerInput("tokens", BAG, size=7, width=4),
        TowerInput("vector", PROJECTION, width=3),
        TowerInput("zscore", FLOATS),
        TowerInput("time", FLOATS),
    ]
    tower = Tower("user_id", 10, inputs, embedding_dim=8, hidden_units=(16,))
    rng = np.random.default_rng(0)
    n = 64
    features = {
        "user_id": rng.integers(0, 10, n),
        "colour": rng.integers(0, 5, n),
        "tokens": np.where(rng.random((n, 3)) < 0.4, -1, rng.integers(0, 7, (n, 3))),  # -1: padding
        "vector": rng.normal(size=(n, 6)).astype(np.float32),
        "zscore": rng.normal(size=n).astype(np.float32),
        "time": rng.uniform(-1, 1, (n, 3)).astype(np.float32),
    }
    features["tokens"][0] = -1  # no token at all: a zero mean embedding
    expected = tower({k: tf.constant(v) for k, v in features.items()}).numpy()
    signature = {k: tf.TensorSpec([None] + list(v.shape[1:]), tf.as_dtype(v.dtype), k) for k, v in features.items()}
    model = onnx_convert.from_function(tf.function(lambda f: {"embedding": tower(f)}, autograph=False), signature)

    assert onnx_convert.unsupported_ops(model) == []
    assert np.max(np.abs(run_onnx(model, features) - expected)) < FP32_TOLERANCE
    assert np.max(np.abs(run_onnx(onnx_convert.float16(model), features) - expected)) < FP16_TOLERANCE


def _request_arrays(rows, names, vector_dims):
    """Request arrays of raw rows (lists of values; [] = missing): '' / NaN / NaN vector where missing."""
    arrays = {}
    for name in names:
        values = [row[name] for row in rows]
        if name in vector_dims:
            arrays[name] = np.array([v or [np.nan] * vector_dims[name] for v in values], np.float32)
        elif isinstance(next(v[0] for v in values if v), str):
            arrays[name] = np.array([v[0].encode() if v else b"" for v in values], dtype=object)
        elif isinstance(next(v[0] for v in values if v), int):
            arrays[name] = np.array([v[0] for v in values], np.int64)
        else:
            arrays[name] = np.array([v[0] if v else np.nan for v in values], np.float32)
    return arrays


ZSCORE_AND_VECTORS = [
    {"name": "age", "source": "user", "kind": "numeric", "transform": "zscore"},
    {"name": "club", "source": "user", "kind": "categorical", "min_frequency": 5},
    {"name": "vec", "source": "item", "kind": "dense", "dim": 3},
    {"name": "type", "source": "item", "kind": "categorical"},
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "features,candidate_inputs",
    [
        # quantiles, categoricals, time parts and recency on the query side; text and a cross on the candidate side
        (None, TRANSFORMED),
        # z-scores and dense vectors, both with missing values
        (ZSCORE_AND_VECTORS, RAW),
    ],
    ids=["every_kind", "zscore_and_vectors"],
)
def test_feature_kinds_export_raw_where_they_convert(tmp_path_factory, monkeypatch, features, candidate_inputs):
    """Transform on 300 rows of every feature kind (tests/transform), untrained towers, the real export."""
    from tests.export.untrained import untrained_module
    from tests.transform import test_feature_kinds as kinds
    from twotower.export import signatures
    from twotower.export.onnx_export import export_onnx

    if features:
        monkeypatch.setattr(kinds, "FEATURES", features)
    _, tft_output, module, query_raw, item_raw = untrained_module(tmp_path_factory, [b"zero"], top_k=1)
    rows = [kinds.raw_row(i) for i in range(kinds.N)] + [dict(kinds.raw_row(0), customer_id=["new"], type=["Hat"])]
    dims = signatures.vector_dims(tft_output, item_raw)
    model_dir = str(tmp_path_factory.mktemp("model"))
    manifest = export_onnx(
        module, model_dir, _request_arrays(rows, query_raw, dims), _request_arrays(rows, item_raw, dims)
    )

    query, candidate = manifest["towers"]["query"], manifest["towers"]["candidate"]
    assert query["inputs"] == RAW, query
    assert sorted(f["name"] for f in query["features"]) == sorted(query_raw)
    assert candidate["inputs"] == candidate_inputs, candidate
    if candidate_inputs == RAW:
        assert {"name": "vec", "dtype": "float32", "shape": [-1, 3]} in candidate["features"]
    else:
        assert {"StringSplitV2", "StringToHashBucketFast"} <= set(candidate["raw_unsupported_ops"])
    for entry in (query, candidate):
        assert entry["examples"] == kinds.N + 1
        assert entry["max_abs_diff"]["fp32"] < FP32_TOLERANCE and entry["max_abs_diff"]["fp16"] < FP16_TOLERANCE


@pytest.fixture(scope="module")
def manifest(exported_model):
    with open(os.path.join(exported_model, ONNX_DIR, MANIFEST)) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def signatures(exported_model):
    return tf.saved_model.load(exported_model).signatures


def _examples(trainer_inputs, tower):
    """Real raw examples of the tower's split (all of them), with some values blanked or unseen."""
    import tensorflow_transform as tft

    query_raw, item_raw = raw_inputs(trainer_inputs.profile)
    names = query_raw if tower == "query" else item_raw
    tft_output = tft.TFTransformOutput(trainer_inputs.transform_graph)
    histories = [f for f in trainer_inputs.profile.model_features if f.kind == "history"]
    lists = [n for f in histories for n in (f.name, f.name + "_age_days")]  # [n, width]: whole rows blanked below
    examples = raw_examples(trainer_inputs.split(SPLITS[tower]), tft_output, names, limit=4096, lists=lists)
    for values in examples.values():
        if values.dtype.kind == "O":
            values[1::7] = b""  # missing
            values[3::11] = b"never-seen-in-training"
        elif values.dtype.kind == "f":
            values[2::5] = np.nan
    return examples, tft_output


def _onnx_inputs(entry, examples, tft_output):
    """The raw examples, or for a transformed-input tower what the Transform graph makes of them."""
    if entry["inputs"] == RAW:
        return examples
    from twotower.export.signatures import to_raw

    raw_spec = tft_output.raw_feature_spec()
    layer = tft_output.transform_features_layer()
    transformed = layer(to_raw({n: tf.constant(v) for n, v in examples.items()}, raw_spec))
    return {f["name"]: transformed[f["name"]].numpy() for f in entry["features"]}


@pytest.mark.slow
def test_both_towers_exported_fp32_and_fp16_with_their_inputs_described(exported_model, manifest, signatures):
    assert manifest["opset"] == onnx_convert.OPSET
    assert set(manifest["towers"]) == {"query", "candidate"}
    for tower, entry in manifest["towers"].items():
        for file in (f"{tower}.onnx", f"{tower}_fp16.onnx"):
            model = onnx.load(os.path.join(exported_model, ONNX_DIR, file))
            onnx.checker.check_model(model)
            assert [i.name for i in model.graph.input] == [f["name"] for f in entry["features"]]
            assert [o.name for o in model.graph.output] == ["embedding"]
        assert entry["max_abs_diff"]["fp32"] < FP32_TOLERANCE and entry["max_abs_diff"]["fp16"] < FP16_TOLERANCE
        if entry["inputs"] == RAW:
            _, inputs = signatures[SIGNATURES[tower]].structured_input_signature
            assert sorted(f["name"] for f in entry["features"]) == sorted(inputs)
    # hm: the query side converts with its Transform; the candidate side has a hashed cross, which does not
    assert manifest["towers"]["query"]["inputs"] == RAW
    candidate = manifest["towers"]["candidate"]
    assert candidate["inputs"] == TRANSFORMED
    assert "StringToHashBucketFast" in candidate["raw_unsupported_ops"]
    assert {f["name"] for f in candidate["features"]} >= {"item_id", "group_x_colour"}


@pytest.mark.slow
@pytest.mark.parametrize("tower", ["query", "candidate"])
@pytest.mark.parametrize("precision,tolerance", [("fp32", FP32_TOLERANCE), ("fp16", FP16_TOLERANCE)])
def test_onnxruntime_matches_tensorflow_on_real_examples(
    exported_model, manifest, signatures, trainer_inputs, tower, precision, tolerance
):
    entry = manifest["towers"][tower]
    examples, tft_output = _examples(trainer_inputs, tower)
    expected = signatures[SIGNATURES[tower]](**{n: tf.constant(v) for n, v in examples.items()})["embedding"].numpy()
    path = os.path.join(exported_model, ONNX_DIR, entry["files"][precision])
    got = run_onnx(path, _onnx_inputs(entry, examples, tft_output))

    assert got.shape == expected.shape and len(got) > 100
    diff = float(np.max(np.abs(got - expected)))
    print(f"{tower} {precision}: max abs diff {diff:.3g} over {len(got)} examples ({entry['inputs']} inputs)")
    assert diff < tolerance


@pytest.mark.slow
def test_client_side_transformed_inputs_from_the_exported_vocabularies(exported_model, manifest, trainer_inputs):
    """README's recipe for a transformed-input tower: vocabulary indices and FarmHash crosses, no TensorFlow."""
    farmhash = pytest.importorskip("farmhash")
    from twotower.vocab.vocabularies import load_vocabularies

    entry = manifest["towers"]["candidate"]
    examples, tft_output = _examples(trainer_inputs, "candidate")
    vocabularies = load_vocabularies(exported_model)
    feed = {}
    for feature in entry["features"]:
        meta = vocabularies.features[feature["name"]]
        columns = [[v.decode() for v in examples[c]] for c in meta["columns"]]
        if meta["kind"] in ("id", "categorical"):
            feed[feature["name"]] = np.array([vocabularies.index(feature["name"], v) for v in columns[0]], np.int64)
        elif meta["kind"] == "cross":
            joined = ["\x1f".join(values) for values in zip(*columns, strict=True)]
            feed[feature["name"]] = np.array(
                [farmhash.fingerprint64(s) % meta["hash_buckets"] for s in joined], np.int64
            )
        else:
            pytest.skip(f"no client recipe here for kind {meta['kind']}")
    expected = run_onnx(
        os.path.join(exported_model, ONNX_DIR, entry["files"]["fp32"]), _onnx_inputs(entry, examples, tft_output)
    )
    np.testing.assert_allclose(
        run_onnx(os.path.join(exported_model, ONNX_DIR, entry["files"]["fp32"]), feed), expected, atol=1e-6
    )
