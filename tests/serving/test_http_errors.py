"""Errors a client can provoke: version names in URLs, faults of the server (500 + request id), the drain."""

import json
import logging
import socket
import threading
import time

import pytest

from tests.serving.conftest import FakeModel, exchange


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()


def _body(answer: bytes):
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


@pytest.mark.parametrize(
    "version, message",
    [
        ("%C2%B2", "a version is a number"),  # superscript two: int() raised, a 500 before
        ("%D9%A1", "a version is a number"),  # Arabic-Indic one: int() read it as 1, an alias of version 1
        ("²", "malformed HTTP request"),  # raw non-ASCII bytes in the target: refused by the HTTP parser
    ],
)
def test_a_version_in_a_url_is_ascii_digits_else_400(fake_server, version, message):
    server = fake_server()
    answer, _ = exchange(server.port, _get(f"/v1/models/m/versions/{version}"))
    assert answer.startswith(b"HTTP/1.1 400 Bad Request"), answer
    assert message in _body(answer)["error"]


def test_a_fault_of_the_server_is_500_internal_error_with_a_request_id_the_log_has(fake_server, caplog):
    server = fake_server()
    doc = json.dumps({"signature_name": "boom", "instances": [1.0]}).encode()
    raw = f"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nContent-Length: {len(doc)}\r\nConnection: close\r\n\r\n"
    with caplog.at_level(logging.ERROR):
        answer, _ = exchange(server.port, raw.encode() + doc)
    assert answer.startswith(b"HTTP/1.1 500 Internal Server Error")
    error = _body(answer)["error"]
    assert error.startswith("internal error (request id ") and "secret" not in error and "/srv" not in answer.decode()
    request_id = error.split("request id ")[1].rstrip(")")
    (record,) = [r for r in caplog.records if request_id in r.getMessage()]
    assert record.exc_info and "secret internal detail" in str(record.exc_info[1])  # the traceback is in the log


def _slow_predict(port: int, out: dict, key: str) -> None:
    doc = json.dumps({"signature_name": "slow", "instances": [1.0]}).encode()
    raw = f"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nContent-Length: {len(doc)}\r\n\r\n".encode() + doc
    out[key] = exchange(port, raw, timeout=10)


def test_stopping_answers_every_request_read_closes_idle_connections_and_refuses_new_ones(fake_server):
    server = fake_server(FakeModel(delay=1.0), drain_seconds=10)
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    idle.sendall(b"GET /v1/models/m HTTP/1.1\r\nHost: t\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200 OK")  # now an idle keep-alive connection
    answers: dict = {}
    clients = [threading.Thread(target=_slow_predict, args=(server.port, answers, f"c{i}")) for i in range(3)]
    for c in clients:
        c.start()
    time.sleep(0.3)  # the three requests are read and waiting on the model
    stopping = threading.Thread(target=server.stop)
    started = time.monotonic()
    stopping.start()
    assert idle.recv(65536) == b""  # the idle connection is closed at once ...
    assert time.monotonic() - started < 0.9  # ... not when the slow answers are done
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5)
    for c in clients:
        c.join()
    stopping.join()
    for answer, closed in answers.values():  # every request read was answered in full, and told the end
        assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in answer and closed
        assert _body(answer)["predictions"] == [{"y": 2.0, "ids": ["item-1", "é"]}]
    assert server.received == server.answered == 4


def test_stopping_while_a_large_answer_is_being_read_writes_all_of_it_first(fake_server):
    server = fake_server(drain_seconds=30)
    doc = json.dumps({"signature_name": "big", "instances": [1.0] * 1000}).encode()  # a ~10 MB answer
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.sendall(f"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nContent-Length: {len(doc)}\r\n\r\n".encode())
        sock.sendall(doc)
        data = sock.recv(16384)
        stopping = threading.Thread(target=server.stop)
        stopping.start()  # while most of the answer is still to be sent
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        assert length > 8_000_000
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, f"answer cut at {len(body)} of {length} bytes"
            body += chunk
            time.sleep(0.002)
        assert len(json.loads(body)["predictions"]) == 1000
    stopping.join(timeout=30)
    assert not stopping.is_alive()
