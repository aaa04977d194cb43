"""The HTTP layer under abuse, over real sockets on 127.0.0.1 (a FakeModel: no TensorFlow model needed).

Every case is bounded in time by its socket timeouts; none waits for a timing to be fast.
"""

import json
import select
import socket
import time

import pytest

from tests.serving.conftest import FakeModel, exchange

PREDICT = "/v1/models/m:predict"


def _post(path: str, body: bytes, extra: str = "Connection: close\r\n") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _json(answer: bytes):
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def test_more_rows_than_max_rows_get_400_naming_both_counts(fake_server):
    server = fake_server(max_rows=1000)
    doc = {"instances": [1.0] * 1001}
    answer, _ = exchange(server.port, _post(PREDICT, json.dumps(doc).encode()))
    assert _status(answer) == 400
    assert _json(answer)["error"].startswith("request has 1001 rows; the server takes at most 1000 per request")
    answer, _ = exchange(server.port, _post(PREDICT, b'{"inputs": {"x": [' + b"1," * 1000 + b"1]}}"))
    assert _status(answer) == 400 and "request has 1001 rows" in _json(answer)["error"]


def test_a_1_mb_request_of_95000_rows_is_refused_before_its_rows_are_read(fake_server):
    model = FakeModel()
    server = fake_server(model)
    body = b'{"instances": [' + b"1," * 95_000 + b"1]}"
    assert len(body) < 1 << 20
    answer, closed = exchange(server.port, _post(PREDICT, body), timeout=30)
    assert _status(answer) == 400 and len(answer) < 1000, answer[:300]  # not a 500 MB answer
    assert "request has 95001 rows" in _json(answer)["error"] and closed
    assert model.calls == []


def test_a_large_request_reaches_the_model_in_pieces_of_max_batch_size_rows(fake_server):
    model = FakeModel()
    server = fake_server(model, max_batch_size=32)
    values = [float(i) for i in range(1000)]
    answer, _ = exchange(server.port, _post(PREDICT, json.dumps({"instances": values}).encode()), timeout=30)
    assert _status(answer) == 200
    rows = _json(answer)["predictions"]
    assert [r["y"] for r in rows] == [2 * v for v in values]  # in order, every row once
    assert rows[7]["ids"] == ["item-7", "é"]
    assert max(model.calls) <= 32 and sum(model.calls) == 1000
    answer, _ = exchange(server.port, _post(PREDICT, json.dumps({"inputs": {"x": values}}).encode()), timeout=30)
    assert _json(answer)["outputs"]["y"] == [2 * v for v in values]


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\n[1.0]",
        b"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunkedx\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
        "POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nContent-Length: ²\r\n\r\n".encode(),
        b"GET /v1/models/m HTTP/1.1\nHost: t\n\n",
    ],
    ids=["duplicate-length", "length-and-chunked", "xchunkedx", "negative-chunk", "superscript-length", "lf-only"],
)
def test_ambiguous_or_malformed_framing_gets_a_400_answer_and_the_connection_closes(fake_server, raw):
    server = fake_server()
    answer, closed = exchange(server.port, raw)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n") and closed, answer
    assert _json(answer)["error"].startswith("malformed HTTP request: ")


def test_a_lying_length_or_an_unterminated_chunked_body_gets_408_after_the_read_timeout(fake_server):
    server = fake_server(read_timeout=0.5)
    for raw in (
        b"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n[1.0]",
        b"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[1.0]\r\n",
    ):
        started = time.monotonic()
        answer, closed = exchange(server.port, raw, timeout=10)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and closed, answer
        assert "not received within 0.5s (twotower serve --read-timeout)" in _json(answer)["error"]
        assert time.monotonic() - started < 9  # cut by the server, not by this test's timeout


def test_a_partial_head_is_cut_after_the_read_timeout_and_a_silent_connection_after_the_idle_timeout(fake_server):
    server = fake_server(read_timeout=0.5, idle_timeout=1.0)
    answer, closed = exchange(server.port, b"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\n", timeout=10)
    assert closed and answer == b""
    answer, closed = exchange(server.port, b"", timeout=10)  # connects, sends nothing
    assert closed and answer == b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:  # idle after an answer
        s.sendall(b"GET /v1/models/m HTTP/1.1\r\nHost: t\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
        assert s.recv(65536) == b""  # closed by the server after 1 s idle, before this test's 10 s


def _open_idle(port: int, n: int):
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]


def test_past_max_connections_an_idle_connection_makes_room_else_the_newcomer_gets_503(fake_server):
    server = fake_server(FakeModel(delay=1.5), max_connections=4)
    idle = _open_idle(server.port, 4)
    try:
        time.sleep(0.2)
        answer, _ = exchange(server.port, b"GET /v1/models/m HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK")  # a fifth connection is served: an idle one was closed
        readable, _, _ = select.select(idle, [], [], 5.0)  # the closed one reads EOF
        assert len(readable) == 1 and readable[0].recv(1) == b""
    finally:
        for s in idle:
            s.close()
    slow = json.dumps({"signature_name": "slow", "instances": [1.0]}).encode()
    busy = _open_idle(server.port, 4)
    try:
        for s in busy:
            s.sendall(_post(PREDICT, slow))
        time.sleep(0.3)  # all four requests are being answered
        answer, closed = exchange(server.port, _post(PREDICT, slow))
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable") and closed
        assert "connection limit (--max-connections 4)" in _json(answer)["error"]
        for s in busy:  # the four busy ones are answered in full
            assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
    finally:
        for s in busy:
            s.close()
