"""The REST server over real HTTP on 127.0.0.1, serving a real trained model: every endpoint, both formats, errors."""

import json
import os
import socket

import numpy as np
import pytest

from tests.serving.conftest import MODEL

pytestmark = pytest.mark.slow

PREDICT = f"/v1/models/{MODEL}:predict"


def test_model_status_for_all_versions_one_version_and_a_label(client):
    available = {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    for path in (f"/v1/models/{MODEL}", f"/v1/models/{MODEL}/versions/1", f"/v1/models/{MODEL}/labels/stable"):
        assert client.get(path) == (200, {"model_version_status": [available]})


def test_metadata_lists_the_signature_defs_as_tf_serving_does(client):
    status, body = client.get(f"/v1/models/{MODEL}/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
    defs = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "query_embedding", "candidate_embedding", "scann"} <= set(defs)
    default = defs["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["customer_id"]["dtype"] == "DT_STRING"
    assert default["inputs"]["age"]["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    assert default["outputs"]["scores"]["dtype"] == "DT_FLOAT"
    assert defs["scann"]["inputs"] == default["inputs"] and defs["scann"]["outputs"] == default["outputs"]
    assert client.get(f"/v1/models/{MODEL}/versions/1/metadata") == (status, body)


def test_predict_row_format(client, customers):
    status, body = client.post(PREDICT, {"instances": customers[:3]})
    assert status == 200
    rows = body["predictions"]
    assert len(rows) == 3 and set(rows[0]) == {"item_ids", "item_names", "scores"}
    k = len(rows[0]["item_ids"])
    assert k == 100 and len(rows[0]["item_names"]) == k and len(rows[0]["scores"]) == k
    assert rows[0]["scores"] == sorted(rows[0]["scores"], reverse=True)
    assert all(isinstance(i, str) for i in rows[0]["item_ids"])


def test_columnar_format_answers_the_same_as_the_row_format(client, customers):
    rows = client.post(PREDICT, {"instances": customers[:2]})[1]["predictions"]
    columns = {name: [c[name] for c in customers[:2]] for name in customers[0]}
    status, body = client.post(f"/v1/models/{MODEL}/versions/1:predict", {"inputs": columns})
    assert status == 200
    assert body["outputs"]["item_ids"] == [r["item_ids"] for r in rows]
    np.testing.assert_allclose(body["outputs"]["scores"], [r["scores"] for r in rows], atol=1e-6)


def test_signature_selection_single_output_is_a_bare_list(client, customers):
    doc = {"signature_name": "query_embedding", "instances": customers[:2]}
    status, body = client.post(f"/v1/models/{MODEL}/labels/stable:predict", doc)
    assert status == 200
    assert len(body["predictions"]) == 2 and len(body["predictions"][0]) == 32  # [batch, dim], no output name
    status, body = client.post(PREDICT, {"signature_name": "query_embedding", "inputs": customers[0] | {}})
    assert status == 400  # columnar needs one list per input, not scalars
    columns = {k: [v] for k, v in customers[0].items()}
    status, body = client.post(PREDICT, {"signature_name": "query_embedding", "inputs": columns})
    assert status == 200 and len(body["outputs"]) == 1 and len(body["outputs"][0]) == 32


def test_candidate_embedding_signature(client):
    item = {"article_id": "0108775015", "product_type_name": "Vest top", "product_group_name": "Garment Upper body"}
    item |= {"colour_group_name": "Black", "index_group_name": "Ladieswear", "garment_group_name": "Jersey Basic"}
    status, body = client.post(PREDICT, {"signature_name": "candidate_embedding", "instances": [item]})
    assert status == 200 and len(body["predictions"][0]) == 32


def test_scann_signature_serves_the_index_over_query_embeddings(client, customers):
    status, body = client.post(PREDICT, {"signature_name": "scann", "instances": customers[:2]})
    assert status == 200
    row = body["predictions"][0]
    assert len(row["item_ids"]) == 100 and row["item_ids"][0].startswith("item-")  # the test's fake index
    assert row["item_names"][0].startswith("name ") and row["scores"] == sorted(row["scores"], reverse=True)


def test_unknown_customer_and_all_missing_features_still_get_recommendations(client, customers):
    stranger = {"customer_id": "never-seen-before", "age": float("nan"), "club_member_status": ""}
    stranger["fashion_news_frequency"] = ""
    status, body = client.post(PREDICT, {"instances": [stranger, customers[0]]})
    assert status == 200
    assert len(body["predictions"][0]["item_ids"]) == 100  # the OOV bucket of the id vocabulary


@pytest.mark.parametrize(
    "path, status, message",
    [
        ("/v1/models/nope", 404, "Could not find any versions of model nope"),
        (f"/v1/models/{MODEL}/versions/9", 404, f"Could not find version 9 of model {MODEL}"),
        (f"/v1/models/{MODEL}/versions/9/metadata", 404, f"Servable not found for request: Specific({MODEL}, 9)"),
        ("/v1/models/nope/metadata", 404, "Servable not found for request: Latest(nope)"),
        (f"/v1/models/{MODEL}/labels/canary", 400, "Unrecognized servable version label: canary"),
        (f"/v1/models/{MODEL}/versions/abc", 400, "Malformed request"),
        (f"/v1/models/{MODEL}/versions/99999999999999999999", 400, "Failed to convert version"),
        ("/v1/models", 400, "Missing model name in request."),
        (f"/v1/models/{MODEL}:predict", 400, f"Malformed request: GET /v1/models/{MODEL}:predict"),
        ("/v2/anything", 404, "Not found: GET /v2/anything"),
    ],
)
def test_get_errors(client, path, status, message):
    got, body = client.get(path)
    assert got == status and message in body["error"]


def _instance(customers, **changes):
    return {**customers[0], **changes}


@pytest.mark.parametrize(
    "path, doc, status, message",
    [
        ("/v1/models/nope:predict", {"instances": [{}]}, 404, "Servable not found for request: Latest(nope)"),
        (f"/v1/models/{MODEL}/versions/2:predict", {"instances": [{}]}, 404, f"Specific({MODEL}, 2)"),
        (PREDICT, {"signature_name": "nope", "instances": [{}]}, 400, 'Serving signature name: "nope" not found'),
        (PREDICT, {"signature_name": "__saved_model_init_op", "inputs": {}}, 400, "not found in signature def"),
        (PREDICT, {"instances": [{"customer_id": "c"}]}, 400, "missing ['age', 'club_member_status'"),
        (PREDICT, {"instances": "c"}, 400, '"instances" must be a list of rows'),
        (f"/v1/models/{MODEL}:classify", {"examples": []}, 400, "classify is not supported"),
        (f"/v1/models/{MODEL}:explode", {}, 400, "Malformed request"),
    ],
)
def test_predict_errors(client, path, doc, status, message):
    got, body = client.post(path, doc)
    assert got == status and message in body["error"]


def test_wrong_types_and_shapes_are_400_naming_the_field(client, customers):
    for changes, message in [
        ({"age": "thirty"}, 'instances[0].age: "thirty" (string) is not of expected type: float32'),
        ({"age": [30]}, "instances[0].age: [30] (list) is not of expected type: float32"),
        ({"customer_id": 42}, "instances[0].customer_id: 42 (number) is not of expected type: string"),
        ({"club_member_status": None}, 'null is not a value; send "" for a missing value'),
    ]:
        status, body = client.post(PREDICT, {"instances": [_instance(customers, **changes)]})
        assert (status, body["error"]) == (400, message) or (status == 400 and message in body["error"])


def test_malformed_json_and_oversized_bodies(client):
    status, body = client.raw("POST", PREDICT, b'{"instances": [', {"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["error"].startswith("JSON Parse error")
    status, body = client.raw("POST", PREDICT, b"\xff\xfe{}")
    assert status == 400 and "JSON Parse error" in json.loads(body)["error"]
    status, body = client.raw("POST", PREDICT, b" " * 70_000)  # over the fixture's 64 KiB limit
    assert status == 413 and "exceeds the server's limit of 65536 bytes" in json.loads(body)["error"]


def _raw_exchange(port, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_http_details_keep_alive_chunked_continue_and_oversized_with_expect(server, customers):
    body = json.dumps({"instances": customers[:1]}).encode()
    head = f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    two = (head + "\r\n").encode() + body + (head + "Connection: close\r\n\r\n").encode() + body
    answer = _raw_exchange(server.port, two)
    assert answer.count(b"HTTP/1.1 200 OK") == 2  # two requests on one keep-alive connection
    chunked = f"POST {PREDICT} HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
    chunked += b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
    assert _raw_exchange(server.port, chunked).startswith(b"HTTP/1.1 200 OK")
    expect = (head + "Expect: 100-continue\r\nConnection: close\r\n\r\n").encode() + body
    assert _raw_exchange(server.port, expect).startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
    huge = f"POST {PREDICT} HTTP/1.1\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n".encode()
    answer = _raw_exchange(server.port, huge)  # refused before the client sends the body
    assert answer.startswith(b"HTTP/1.1 413 Payload Too Large") and b"Connection: close" in answer
    assert _raw_exchange(server.port, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")


def test_metrics_count_requests_errors_predictions_and_loaded_versions(client, customers):
    client.post(PREDICT, {"instances": customers[:4]})
    client.get("/v1/models/nope")
    status, text = client.raw("GET", "/metrics")
    assert status == 200
    lines = text.decode().splitlines()
    assert f'twotower_model_version_loaded{{model="{MODEL}",version="1"}} 1' in lines
    assert "twotower_loaded_versions 1" in lines
    assert any(line.startswith('twotower_requests_total{api="predict",code="200"} ') for line in lines)
    assert any(line.startswith('twotower_request_errors_total{api="status",code="404"} ') for line in lines)
    assert any(line.startswith('twotower_request_latency_seconds_bucket{api="predict",le="+Inf"}') for line in lines)
    predicted = f'twotower_predictions_total{{model="{MODEL}",version="1",signature="serving_default"}} '
    assert any(line.startswith(predicted) and float(line.split()[-1]) >= 4 for line in lines)
    assert client.raw("GET", "/monitoring/prometheus/metrics")[0] == 200


def test_query_client_uses_only_the_rest_api(server, capsys):
    from twotower import cli
    from twotower.serving.client import QueryError, query

    recs = query(f"http://127.0.0.1:{server.port}", "someone-new", k=5, features={"age": "40"})
    assert len(recs) == 5 and recs[0].score >= recs[-1].score
    assert cli.main(["query", "--url", f"http://127.0.0.1:{server.port}", "--customer-id", "x", "-k", "3"]) == 0
    assert "top-3 for customer x" in capsys.readouterr().out
    with pytest.raises(QueryError, match="HTTP 404: Servable not found for request: Latest\\(nope\\)"):
        query(f"http://127.0.0.1:{server.port}", "x", model_name="nope")
    with pytest.raises(QueryError, match="--feature \\['zip'\\]: not inputs"):
        query(f"http://127.0.0.1:{server.port}", "x", features={"zip": "1"})


def test_the_pushed_scann_index_answers_the_scann_signature(exported_model, customers):
    from twotower.serving.models import load_servable

    if not os.path.isdir(os.path.join(exported_model, "assets.extra", "scann")):
        pytest.skip("this export has no ScaNN index")
    servable = load_servable(MODEL, 1, exported_model)  # the default loader: twotower.export.scann_index
    columns = {name: [c[name] for c in customers[:8]] for name in customers[0]}
    exact = servable.signatures["serving_default"](columns)
    approximate = servable.signatures["scann"](columns)
    assert approximate["item_ids"].shape == exact["item_ids"].shape == (8, 100)
    overlap = np.mean(
        [len(set(a) & set(e)) / 100 for a, e in zip(approximate["item_ids"], exact["item_ids"], strict=True)]
    )
    assert overlap >= 0.9  # a tiny catalogue is searched exactly; a ScaNN one is tuned for recall >= 0.9
    np.testing.assert_allclose(approximate["scores"][:, 0], exact["scores"][:, 0], atol=1e-4)
