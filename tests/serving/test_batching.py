"""The batcher: concurrent requests to one signature share a model call; results and failures stay per request."""

import threading
import time

import numpy as np
import pytest

from twotower.serving.batching import Batcher


class Model:
    """Doubles ``x``; records the rows of every call; refuses negative values."""

    def __init__(self, delay: float = 0.0):
        self.calls = []
        self.seen = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, columns):
        with self.lock:
            self.calls.append(len(columns["x"]))
            self.seen.append(list(columns["x"]))
        time.sleep(self.delay)
        x = np.asarray(columns["x"], dtype=np.float32)
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": 2 * x, "rows": np.arange(len(x))}


def test_concurrent_requests_share_a_call_and_get_their_own_rows():
    model = Model()
    batcher = Batcher(max_batch_size=64, timeout_s=0.2)
    futures = [batcher.submit("k", model, {"x": [i, i + 0.5]}, 2) for i in range(10)]
    results = [f.result(timeout=5) for f in futures]
    batcher.close()
    assert model.calls == [20]  # all ten arrived within the 200 ms window: one call of 20 rows
    for i, r in enumerate(results):
        np.testing.assert_allclose(r["y"], [2 * i, 2 * i + 1])
        np.testing.assert_array_equal(r["rows"], [2 * i, 2 * i + 1])  # rows 2i, 2i+1 of the batch


def test_batches_stop_at_max_size_and_keys_never_mix():
    odd, even = Model(delay=0.05), Model(delay=0.05)
    batcher = Batcher(max_batch_size=4, timeout_s=0.05)
    futures = [batcher.submit(i % 2, odd if i % 2 else even, {"x": [i]}, 1) for i in range(12)]
    assert [f.result(timeout=5)["y"].tolist() for f in futures] == [[2.0 * i] for i in range(12)]
    batcher.close()
    assert max(odd.calls + even.calls) <= 4 and sum(odd.calls) == sum(even.calls) == 6
    assert all(x % 2 == 1 for call in odd.seen for x in call) and all(x % 2 == 0 for call in even.seen for x in call)


def test_a_request_larger_than_the_batch_runs_alone_and_size_one_is_no_batching():
    model = Model()
    batcher = Batcher(max_batch_size=1, timeout_s=0.01)
    big = batcher.submit("k", model, {"x": [1, 2, 3]}, 3)
    small = [batcher.submit("k", model, {"x": [i]}, 1) for i in range(3)]
    assert big.result(timeout=5)["y"].tolist() == [2, 4, 6]
    assert [f.result(timeout=5)["y"].tolist() for f in small] == [[0], [2], [4]]
    batcher.close()
    assert model.calls == [3, 1, 1, 1]


def test_a_bad_request_fails_alone():
    model = Model()
    batcher = Batcher(max_batch_size=64, timeout_s=0.2)
    good = [batcher.submit("k", model, {"x": [i]}, 1) for i in range(3)]
    bad = batcher.submit("k", model, {"x": [-1]}, 1)
    assert [f.result(timeout=5)["y"].tolist() for f in good] == [[0], [2], [4]]
    with pytest.raises(ValueError, match="negative input"):
        bad.result(timeout=5)
    batcher.close()
    assert model.calls[0] == 4 and sorted(model.calls[1:]) == [1, 1, 1, 1]  # the batch failed, then one by one


def test_on_batch_sees_every_call_and_bad_settings_are_refused():
    seen = []
    batcher = Batcher(max_batch_size=8, timeout_s=0.0, on_batch=lambda key, rows: seen.append((key, rows)))
    batcher.submit("k", Model(), {"x": [1, 2]}, 2).result(timeout=5)
    batcher.close()
    assert seen == [("k", 2)]
    with pytest.raises(ValueError, match="max batch size"):
        Batcher(max_batch_size=0, timeout_s=0.001)
