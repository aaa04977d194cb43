"""Request checking and response shaping of the TF Serving REST bodies, on hand-made signatures (no model)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from twotower.serving import rest
from twotower.serving.models import InvalidArgument, Servable, Signature, TensorInfo


def _signature(name, inputs, outputs):
    return Signature(name, inputs, outputs, call=lambda arrays: {})


QUERY = _signature(
    "serving_default",
    {
        "user": TensorInfo(tf.string, (None,)),
        "age": TensorInfo(tf.float32, (None,)),
        "t": TensorInfo(tf.int64, (None,)),
        "vec": TensorInfo(tf.float32, (None, 2)),
    },
    {"ids": TensorInfo(tf.string, (None, 2)), "scores": TensorInfo(tf.float32, (None, 2))},
)
ONE = _signature("one", {"x": TensorInfo(tf.float32, (None,))}, {"y": TensorInfo(tf.float32, (None,))})
SERVABLE = Servable("m", 1, "/nowhere", {"serving_default": QUERY, "one": ONE}, {})
NaN = float("nan")
ROW = {"user": "u1", "age": 30, "t": 1600000000, "vec": [0.5, NaN]}


def _parse(doc):
    return rest.parse_predict(json.dumps(doc).encode(), SERVABLE)


def _error(doc_or_bytes):
    body = doc_or_bytes if isinstance(doc_or_bytes, bytes) else json.dumps(doc_or_bytes).encode()
    with pytest.raises(InvalidArgument) as e:
        rest.parse_predict(body, SERVABLE)
    return str(e.value)


def test_row_and_columnar_formats_give_the_same_columns():
    rows = _parse({"instances": [ROW, {**ROW, "user": {"b64": "dTI="}, "age": NaN}]})
    assert rows.format == rest.ROW and rows.rows == 2 and rows.signature is QUERY
    assert rows.columns["user"] == [b"u1", b"u2"]  # base64 "dTI=" is b"u2"
    assert rows.columns["t"] == [1600000000, 1600000000]
    assert rows.columns["vec"][0][0] == 0.5 and np.isnan(rows.columns["vec"][0][1])
    cols = _parse({"inputs": {k: [v, v] for k, v in ROW.items()}})
    assert cols.format == rest.COLUMNAR and cols.rows == 2
    assert cols.columns["user"] == [b"u1", b"u1"] and cols.columns["age"] == [30.0, 30.0]


def test_single_input_signature_takes_bare_values_in_both_formats():
    assert _parse({"signature_name": "one", "instances": [1, 2.5]}).columns == {"x": [1.0, 2.5]}
    assert _parse({"signature_name": "one", "inputs": [1, 2]}).columns == {"x": [1.0, 2.0]}
    assert _parse({"signature_name": "one", "inputs": {"x": [3]}}).columns == {"x": [3.0]}


@pytest.mark.parametrize(
    "doc, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"instances = [1, 2]", "JSON Parse error: Expecting value"),
        (b"[" * 100_000, "JSON Parse error: nested too deeply"),
        ([1, 2], 'request body must be a JSON object with "instances" or "inputs", got list'),
        ({"instances": [ROW], "inputs": {}}, 'exactly one of "instances" (row format) or "inputs"'),
        ({"signature_name": "nope", "instances": [ROW]}, 'Serving signature name: "nope" not found in signature def'),
        ({"signature_name": 7, "instances": [ROW]}, '"signature_name" must be a string, got number 7'),
        ({"instances": []}, '"instances" is empty'),
        ({"instances": {"user": "u"}}, '"instances" must be a list of rows, got object'),
        ({"instances": [[1, 2]]}, "instances[0]: expected an object with inputs ['age', 't', 'user', 'vec'], got list"),
        (
            {"instances": [{"user": "u"}]},
            "instances[0]: inputs do not match signature 'serving_default': missing ['age', 't', 'vec'], unexpected []",
        ),
        ({"instances": [{**ROW, "zip": "x"}]}, "unexpected ['zip']"),
        ({"instances": [{**ROW, "age": "old"}]}, 'instances[0].age: "old" (string) is not of expected type: float32'),
        ({"instances": [{**ROW, "age": True}]}, "instances[0].age: true (boolean) is not of expected type: float32"),
        ({"instances": [{**ROW, "age": None}]}, "instances[0].age: null is not a value; send NaN for a missing value"),
        ({"instances": [{**ROW, "user": None}]}, 'instances[0].user: null is not a value; send "" for a missing'),
        ({"instances": [{**ROW, "user": 5}]}, "instances[0].user: 5 (number) is not of expected type: string"),
        ({"instances": [{**ROW, "user": {"b64": "***"}}]}, "instances[0].user: invalid base64"),
        ({"instances": [{**ROW, "t": 1.5}]}, "instances[0].t: 1.5 (number) is not of expected type: int64"),
        ({"instances": [{**ROW, "t": 2**63}]}, "instances[0].t: 9223372036854775808 is out of range for int64"),
        ({"instances": [{**ROW, "age": 10**400}]}, "is out of range for float32"),
        ({"instances": [{**ROW, "vec": 1.0}]}, "instances[0].vec: expected a list of shape [2], got number 1.0"),
        ({"instances": [{**ROW, "vec": [1.0]}]}, "instances[0].vec: expected 2 values, got 1"),
        ({"instances": [{**ROW, "age": [1.0]}]}, "instances[0].age: [1.0] (list) is not of expected type: float32"),
        ({"inputs": {k: [v] for k, v in ROW.items() if k != "t"}}, '"inputs": inputs do not match'),
        ({"inputs": {**{k: [v] for k, v in ROW.items()}, "age": 3.0}}, "inputs.age: expected a list with one value"),
        ({"inputs": {**{k: [v] for k, v in ROW.items()}, "age": [1.0, 2.0]}}, "0th-dimension sizes differ"),
        ({"inputs": {k: [] for k in ROW}}, "inputs: no rows"),
        ({"inputs": [1, 2]}, '"inputs" must be an object with inputs'),
    ],
)
def test_bad_requests_name_what_is_wrong(doc, message):
    assert message in _error(doc)


def test_ragged_rows_of_an_input_with_unknown_dims_are_refused():
    ragged = _signature("r", {"v": TensorInfo(tf.float32, (None, None))}, {"y": TensorInfo(tf.float32, (None,))})
    servable = Servable("m", 1, "/", {"r": ragged}, {})
    ok = rest.parse_predict(b'{"signature_name": "r", "instances": [[1, 2], [3, 4]]}', servable)
    assert ok.columns == {"v": [[1.0, 2.0], [3.0, 4.0]]}
    with pytest.raises(InvalidArgument, match="ragged"):
        rest.parse_predict(b'{"signature_name": "r", "instances": [[1, 2], [3]]}', servable)


def test_responses_are_shaped_as_tf_serving_shapes_them():
    outputs = {"ids": np.array([[b"a", b"b"], [b"c", b"d"]], dtype=object), "scores": np.array([[2, 1], [4, 3.5]])}
    request = _parse({"instances": [ROW, ROW]})
    assert json.loads(rest.format_predict(request, outputs)) == {
        "predictions": [{"ids": ["a", "b"], "scores": [2, 1]}, {"ids": ["c", "d"], "scores": [4, 3.5]}]
    }
    request = _parse({"inputs": {k: [v, v] for k, v in ROW.items()}})
    assert json.loads(rest.format_predict(request, outputs)) == {
        "outputs": {"ids": [["a", "b"], ["c", "d"]], "scores": [[2, 1], [4, 3.5]]}
    }
    one = np.array([0.5, 1.5], dtype=np.float32)
    assert json.loads(rest.format_predict(_parse({"signature_name": "one", "instances": [1, 2]}), {"y": one})) == {
        "predictions": [0.5, 1.5]
    }
    assert json.loads(rest.format_predict(_parse({"signature_name": "one", "inputs": [1, 2]}), {"y": one})) == {
        "outputs": [0.5, 1.5]
    }
    request = _parse({"signature_name": "one", "instances": [1]})
    blob = {"image_bytes": np.array([b"\xff\x00"], dtype=object)}
    assert json.loads(rest.format_predict(request, blob)) == {"predictions": [{"b64": "/wA="}]}


def test_status_and_metadata_bodies():
    from twotower.serving.models import VersionState

    assert rest.status_body([VersionState(2, "AVAILABLE"), VersionState(1, "END", "UNKNOWN", "bad")]) == {
        "model_version_status": [
            {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
            {"version": "1", "state": "END", "status": {"error_code": "UNKNOWN", "error_message": "bad"}},
        ]
    }
    servable = Servable("m", 3, "/", {}, {"serving_default": {"method_name": "tensorflow/serving/predict"}})
    assert rest.metadata_body(servable) == {
        "model_spec": {"name": "m", "signature_name": "", "version": "3"},
        "metadata": {
            "signature_def": {"signature_def": {"serving_default": {"method_name": "tensorflow/serving/predict"}}}
        },
    }
