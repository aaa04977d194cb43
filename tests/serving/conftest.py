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
