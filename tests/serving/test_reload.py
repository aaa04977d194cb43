"""Hot reload under load: a version pushed while clients hammer the server is picked up with zero failed requests."""

import json
import os
import threading
import time

import pytest

from tests.serving.conftest import MODEL, Client, push
from twotower.serving.loadgen import post_request, run_load
from twotower.serving.server import RestServer, ServerConfig

pytestmark = pytest.mark.slow


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _states(client: Client) -> dict:
    status, body = client.get(f"/v1/models/{MODEL}")
    assert status == 200
    return {s["version"]: (s["state"], s["status"]["error_code"]) for s in body["model_version_status"]}


def test_new_version_picked_up_under_load_with_zero_failures(exported_model, customers, tmp_path):
    serving_dir = str(tmp_path / "serving")
    push(exported_model, serving_dir, 1)
    config = ServerConfig(serving_dir, host="127.0.0.1", port=0, poll_seconds=0.2, keep_versions=1)
    server = RestServer(config).start()
    client = Client(server.port)
    try:
        requests = [
            post_request(
                "127.0.0.1", server.port, f"/v1/models/{MODEL}:predict", json.dumps({"instances": [c]}).encode()
            )
            for c in customers
        ]
        stop = threading.Event()
        result = {}
        load = threading.Thread(
            target=lambda: result.update(run=run_load("127.0.0.1", server.port, requests, 4, 600, stop=stop))
        )
        load.start()
        time.sleep(1.0)
        push(exported_model, serving_dir, 2)  # copied file by file, as a plain copy would: loaded once settled
        _wait_for(lambda: _states(client) == {"2": ("AVAILABLE", "OK"), "1": ("END", "OK")})
        broken = os.path.join(serving_dir, MODEL, "3")
        os.makedirs(broken)
        with open(os.path.join(broken, "saved_model.pb"), "wb") as f:
            f.write(b"not a SavedModel")
        _wait_for(lambda: _states(client).get("3", ("", ""))[0] == "END")
        time.sleep(1.0)  # and still serving version 2
        stop.set()
        load.join()
        run = result["run"]
        assert run.failures == [] and len(run.latencies) > 50, run.summary()
        assert _states(client)["3"] == ("END", "UNKNOWN")
        assert _states(client)["2"] == ("AVAILABLE", "OK")
        instance = {"instances": customers[:1]}
        assert client.post(f"/v1/models/{MODEL}/versions/2:predict", instance)[0] == 200
        assert client.post(f"/v1/models/{MODEL}/versions/1:predict", instance)[0] == 404  # unloaded (latest 1)
        metrics = client.raw("GET", "/metrics")[1].decode()
        for version in ("1", "2"):  # both versions answered part of the load
            assert (
                f'twotower_predictions_total{{model="{MODEL}",version="{version}",signature="serving_default"}}'
                in metrics
            )
        assert f'twotower_model_loads_total{{model="{MODEL}",outcome="error"}} 1' in metrics
    finally:
        server.stop()
