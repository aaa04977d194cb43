"""Serving fixtures: ``server`` serves the session's pushed model (``serving_dir``, tests/conftest.py) over
HTTP on 127.0.0.1 for the whole session, with a fake ScaNN index; ``client`` talks to it.
"""

import http.client
import json
from typing import Any, Dict, Optional, Tuple

import numpy as np
import pytest

from tests.conftest import MODEL, push  # noqa: F401  (imported from here by the serving tests)


class FakeIndex:
    """Brute force over fixed random item vectors, standing in for a ScaNN index to test the server's plumbing."""

    def __init__(self, items: int = 120, seed: int = 0):
        self.items, self.seed = items, seed
        self.ids = np.array([f"item-{i}".encode() for i in range(items)], dtype=object)
        self.names = np.array([f"name {i}".encode() for i in range(items)], dtype=object)
        self.vectors: Optional[np.ndarray] = None

    def search(self, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.vectors is None:
            self.vectors = np.random.default_rng(self.seed).normal(size=(self.items, queries.shape[1]))
        scores = (queries @ self.vectors.T).astype(np.float32)
        top = np.argsort(-scores, axis=1)[:, :k]
        return self.ids[top], self.names[top], np.take_along_axis(scores, top, axis=1)


class Client:
    """Tiny HTTP client over http.client: one connection per request, JSON in and out."""

    def __init__(self, port: int):
        self.port = port

    def raw(
        self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None
    ) -> Tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def get(self, path: str) -> Tuple[int, Any]:
        status, body = self.raw("GET", path)
        return status, json.loads(body)

    def post(self, path: str, doc: Any) -> Tuple[int, Any]:
        status, body = self.raw("POST", path, json.dumps(doc).encode(), {"Content-Type": "application/json"})
        return status, json.loads(body)


@pytest.fixture(scope="session")
def server(serving_dir):
    """A server over ``serving_dir`` (version 1, label stable=1, a fake ScaNN index, 64 KiB body limit)."""
    import functools

    from twotower.serving.models import ModelRegistry, load_servable
    from twotower.serving.server import RestServer, ServerConfig

    config = ServerConfig(
        serving_dir, host="127.0.0.1", port=0, poll_seconds=0, labels=(("stable", 1),), max_body_bytes=64 * 1024
    )
    loader = functools.partial(load_servable, index_loader=lambda path: FakeIndex())
    registry = ModelRegistry(serving_dir, labels=dict(config.labels), loader=loader)
    running = RestServer(config, registry).start()
    yield running
    running.stop()


@pytest.fixture()
def client(server) -> Client:
    return Client(server.port)


class FakeModel:
    """A servable without TensorFlow behind it: fast tests of the HTTP layer over real sockets.

    ``serving_default`` answers ``y = 2 * x`` and two item ids per row; ``slow``
    sleeps ``delay`` seconds per call first; ``big`` answers 5,000-character ids;
    ``boom`` raises, as a bug in the server would. Every call's row count is
    recorded in ``calls``.
    """

    def __init__(self, delay: float = 0.5):
        self.delay, self.calls = delay, []

    def _answer(self, arrays):
        x = np.asarray(arrays["x"], dtype=np.float32)
        self.calls.append(len(x))
        ids = np.array([[f"item-{int(v)}".encode(), "é".encode()] for v in x], dtype=object).reshape(len(x), 2)
        return {"y": 2 * x, "ids": ids}

    def _slow(self, arrays):
        import time

        time.sleep(self.delay)
        return self._answer(arrays)

    def _boom(self, arrays):
        raise RuntimeError("secret internal detail /srv/models")

    def _big(self, arrays):  # ~10 KB of JSON per row
        answer = self._answer(arrays)
        answer["ids"] = np.full(answer["ids"].shape, b"x" * 5000, dtype=object)
        return answer

    def load(self, model: str, version: int, path: str):
        import tensorflow as tf

        from twotower.serving.models import Servable, Signature, TensorInfo

        inputs = {"x": TensorInfo(tf.float32, (None,))}
        outputs = {"y": TensorInfo(tf.float32, (None,)), "ids": TensorInfo(tf.string, (None, 2))}
        signatures = {
            name: Signature(name, inputs, outputs, call)
            for name, call in (
                ("serving_default", self._answer),
                ("slow", self._slow),
                ("big", self._big),
                ("boom", self._boom),
            )
        }
        return Servable(model, version, path, signatures, {name: {} for name in signatures})


@pytest.fixture()
def fake_server(tmp_path):
    """Starts RestServers over a FakeModel (model "m", version 1) with the given ServerConfig fields; stops them."""
    from twotower.serving.models import ModelRegistry
    from twotower.serving.server import RestServer, ServerConfig

    started = []

    def start(model: Optional[FakeModel] = None, **config_fields):
        root = tmp_path / "serving"
        (root / "m" / "1").mkdir(parents=True, exist_ok=True)
        (root / "m" / "1" / "saved_model.pb").write_text("fake")
        model = model or FakeModel()
        config = ServerConfig(str(root), host="127.0.0.1", port=0, poll_seconds=0, **config_fields)
        server = RestServer(config, ModelRegistry(str(root), loader=model.load)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def exchange(port: int, data: bytes, timeout: float = 5.0) -> Tuple[bytes, bool]:
    """Sends ``data`` on a new connection and reads until the server closes it or ``timeout`` passes.

    Returns (what was read, whether the server closed the connection).
    """
    import socket
    import time

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                return b"".join(chunks), True
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)
        return b"".join(chunks), False


@pytest.fixture()
def redis_server(tmp_path):
    """A real redis-server on a free loopback port (AOF on, data in a temp dir), stopped after the test."""
    from tests.serving.redis_server import RedisServer

    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(str(directory))
    yield server
    server.stop()
