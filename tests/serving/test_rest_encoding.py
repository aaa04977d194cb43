"""Row limits and answer encoding of the REST bodies (hand-made signatures, no model)."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from twotower.serving import rest
from twotower.serving.models import InvalidArgument, Servable, Signature, TensorInfo

ONE = Signature("one", {"x": TensorInfo(tf.float32, (None,))}, {"y": TensorInfo(tf.float32, (None,))}, dict)
TWO = Signature(
    "serving_default",
    {"x": TensorInfo(tf.float32, (None,))},
    {"ids": TensorInfo(tf.string, (None, 2)), "scores": TensorInfo(tf.float32, (None, 2))},
    dict,
)
SERVABLE = Servable("m", 1, "/", {"one": ONE, "serving_default": TWO}, {})


def test_a_request_over_max_rows_is_refused_before_any_row_is_checked():
    bad_third_row = b'{"signature_name": "one", "instances": [1, 2, "not a number"]}'
    with pytest.raises(InvalidArgument, match=r"^request has 3 rows; the server takes at most 2 per request"):
        rest.parse_predict(bad_third_row, SERVABLE, max_rows=2)
    with pytest.raises(InvalidArgument, match="request has 3 rows"):
        rest.parse_predict(b'{"signature_name": "one", "inputs": [1, 2, 3]}', SERVABLE, max_rows=2)
    assert rest.parse_predict(b'{"signature_name": "one", "instances": [1, 2]}', SERVABLE, max_rows=2).rows == 2


def _request(doc):
    return rest.parse_predict(json.dumps(doc).encode(), SERVABLE)


def test_answers_keep_nan_and_infinity_as_tf_serving_writes_them_and_decode_names():
    outputs = {
        "ids": np.array([[b"a", "Café ☕".encode()], [b"a", b"\xff"]], dtype=object),
        "scores": np.array([[math.nan, 1.5], [math.inf, -math.inf]], dtype=np.float32),
    }
    body = rest.format_predict(_request({"instances": [1, 2]}), outputs)
    assert b"NaN" in body and b"Infinity" in body  # orjson would have written null
    rows = json.loads(body)["predictions"]
    assert rows[0]["ids"] == ["a", "Café ☕"] and rows[1]["ids"] == ["a", "\ufffd"]
    assert math.isnan(rows[0]["scores"][0]) and rows[1]["scores"] == [math.inf, -math.inf]
    finite = {"ids": outputs["ids"], "scores": np.array([[0.1, 1.5], [2.0, 3.0]], dtype=np.float32)}
    scores = json.loads(rest.format_predict(_request({"instances": [1, 2]}), finite))["predictions"][0]["scores"]
    assert scores == [float(np.float32(0.1)), 1.5]  # float32 values written as the doubles they are, as before


def test_an_answer_joined_from_pieces_equals_the_answer_encoded_whole():
    ids = np.array([[f"i{r}".encode(), f"j{r}".encode()] for r in range(5)], dtype=object)
    scores = np.arange(10, dtype=np.float32).reshape(5, 2)
    for doc in ({"instances": [1, 2, 3, 4, 5]}, {"inputs": [1, 2, 3, 4, 5]}):
        request = _request(doc)
        whole = rest.format_predict(request, {"ids": ids, "scores": scores})
        pieces = [rest.encode_piece(request, {"ids": ids[a:b], "scores": scores[a:b]}) for a, b in ((0, 2), (2, 5))]
        assert rest.join_pieces(request, pieces) == whole
    one = _request({"signature_name": "one", "inputs": [1, 2, 3]})
    y = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    pieces = [rest.encode_piece(one, {"y": y[:1]}), rest.encode_piece(one, {"y": y[1:]})]
    assert json.loads(rest.join_pieces(one, pieces)) == {"outputs": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize(
    "values",
    [
        [[b"a", "Café ☕".encode()], [b"b", b"c"]],  # verbatim UTF-8: joined as bytes
        [[b'say "hi"', b"back\\slash"], [b"tab\there", b"\x00"]],  # must be escaped
        [[b"\xc3", b"\xa9"], [b"\xff", b"ok"]],  # not UTF-8, even when two halves would make one
    ],
)
def test_string_rows_read_back_as_the_standard_library_writes_them(values):
    ids = np.array(values, dtype=object)
    scores = np.zeros((2, 2), dtype=np.float32)
    got = json.loads(rest.format_predict(_request({"instances": [1, 2]}), {"ids": ids, "scores": scores}))
    want = [[v.decode("utf-8", "replace") for v in row] for row in values]
    assert [r["ids"] for r in got["predictions"]] == want


def test_string_outputs_of_any_rank_and_an_empty_top_k():
    request = _request({"inputs": [1, 2]})
    cube = np.array([[[b"a", b"b"], [b"c", b"d"]], [[b"e", b"f"], [b"g", b"h"]]], dtype=object)
    empty = np.zeros((2, 0), dtype=object)
    answer = json.loads(rest.format_predict(request, {"ids": cube, "scores": empty}))["outputs"]
    assert answer == {"ids": [[["a", "b"], ["c", "d"]], [["e", "f"], ["g", "h"]]], "scores": [[], []]}
    empty_ids = json.loads(rest.format_predict(request, {"ids": empty, "scores": np.zeros((2, 0), np.float32)}))
    assert empty_ids["outputs"]["ids"] == [[], []]
