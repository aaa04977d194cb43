"""The online history store in a running server (real trained model, real SQLite file, real redis-server):
events change the next recommendations, bad calls apply nothing, concurrent posts and queries lose nothing,
a push keeps the events after its data end, a store down leaves predictions answering, a user can be erased.
"""

import csv
import datetime
import functools
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.serving.conftest import MODEL, Client, push
from tests.serving.redis_server import RedisServer, free_port

pytestmark = pytest.mark.slow

PREDICT = f"/v1/models/{MODEL}:predict"
TODAY = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def start_server(serving_dir: str, store: str = "", poll_seconds: float = 0.0):
    from twotower.serving.models import ModelRegistry, load_servable
    from twotower.serving.server import RestServer, ServerConfig

    config = ServerConfig(serving_dir, host="127.0.0.1", port=0, poll_seconds=poll_seconds, history_store=store)
    registry = ModelRegistry(serving_dir, loader=functools.partial(load_servable, index_loader=None))
    return RestServer(config, registry).start()


@pytest.fixture(scope="module")
def articles(trainer_inputs):
    with open(os.path.join(trainer_inputs.root, "data", "articles.csv"), newline="") as f:
        return {r["article_id"]: r["product_group_name"] for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def sqlite_server(exported_model, tmp_path_factory):
    serving_dir = str(tmp_path_factory.mktemp("online") / "serving")
    push(exported_model, serving_dir, 1)
    server = start_server(serving_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_backed(exported_model, tmp_path_factory):
    """(redis-server, a server whose history store is it)."""
    root = tmp_path_factory.mktemp("online_redis")
    (root / "redis").mkdir()
    redis = RedisServer(str(root / "redis"))
    push(exported_model, str(root / "serving"), 1)
    server = start_server(str(root / "serving"), redis.url)
    yield redis, server
    server.stop()
    redis.stop()


def event(user: str, item: str, day: str = TODAY) -> dict:
    return {"customer_id": user, "article_id": item, "t_dat": day}


def stored(client: Client, user: str) -> list:
    status, body = client.get(f"/v1/users/{user}/history")
    assert status == 200, body
    return [(e["item_id"], e["time"][:10]) for e in body["histories"].get(MODEL, {}).get("recent_items", [])]


def logged(server) -> list:
    return [(r["customer_id"], r["article_id"], r["t_dat"]) for r in server.history.log.rows()]


def test_a_purchase_posted_moves_the_next_recommendations_toward_its_product_group(sqlite_server, customers, articles):
    client = Client(sqlite_server.port)
    groups = sorted(set(articles.values()), key=lambda g: -list(articles.values()).count(g))
    shares = []  # (group, its items in the top 20 before, after)
    for n, group in enumerate(groups[:4]):
        bought = [a for a, g in articles.items() if g == group][:3]
        user, row = f"newcomer-{n}", {**customers[n], "customer_id": f"newcomer-{n}"}
        before = client.post(PREDICT, {"instances": [row]})[1]["predictions"][0]["item_ids"][:20]
        events = [event(user, item) for item in bought] + [event(user, bought[0], "2024-05-01")]
        assert client.post("/v1/events", {"events": events}) == (200, {"stored": 4})
        after = client.post(PREDICT, {"instances": [row]})[1]["predictions"][0]["item_ids"][:20]
        assert after != before  # the very next request reads the store
        shares.append((group, sum(articles[i] == group for i in before), sum(articles[i] == group for i in after)))
        assert stored(client, user)[-1] == (bought[0], "2024-05-01") and len(stored(client, user)) == 4
        explicit = client.post(PREDICT, {"instances": [{**row, "recent_items": []}]})[1]["predictions"][0]
        assert explicit["item_ids"][:20] == before  # a history in the request still wins over the store
    assert sum(a for _, _, a in shares) > sum(b for _, b, _ in shares), f"top-20 share (group, before, after): {shares}"
    metrics = client.raw("GET", "/metrics")[1].decode()
    assert 'twotower_events_total{outcome="accepted"} 16' in metrics
    assert 'twotower_history_store_latency_seconds_count{op="lookup"}' in metrics


def test_a_call_with_bad_events_is_a_400_naming_each_and_applies_nothing(sqlite_server, articles):
    client = Client(sqlite_server.port)
    item = next(iter(articles))
    bad = [event("bad-1", item), event("bad-1", "no-such-item"), event("", item), event("bad-1", item, "2999-01-01")]
    bad.append({"customer_id": "bad-1", "article_id": item, "t_dat": "yesterday"})
    before = logged(sqlite_server)
    status, body = client.post("/v1/events", {"events": bad})
    assert status == 400 and [r["index"] for r in body["rejected"]] == [1, 2, 3, 4]
    assert (
        body["rejected"][0]["reason"]
        == "column 'article_id': unknown item 'no-such-item' (not in the model's catalogue)"
    )
    assert body["error"].startswith("4 of 5 events rejected, none stored")
    assert stored(client, "bad-1") == [] and logged(sqlite_server) == before
    assert client.post("/v1/events", {"events": [event("x", item)] * 1001})[0] == 400
    assert client.post("/v1/events", {"rows": []})[0] == 400


def test_a_user_erased_is_gone_from_the_store_and_the_log_and_stays_gone_after_a_reseed(sqlite_server, customers):
    client = Client(sqlite_server.port)
    model = sqlite_server.registry.get(MODEL)
    exported = model.histories.stores["recent_items"]
    user = next(c["customer_id"] for c in customers if exported.lookup([c["customer_id"].encode()])[0][0])
    item = exported.lookup([user.encode()])[0][0][0].decode()
    assert client.post("/v1/events", {"events": [event(user, item), event("keep-me", item)]})[0] == 200
    assert len(stored(client, user)) == len(exported.lookup([user.encode()])[0][0]) + 1
    status, body = client.raw("DELETE", f"/v1/users/{user}/history")
    assert status == 200 and b'"event_log_rows":1' in body
    assert stored(client, user) == [] and all(u != user for u, _, _ in logged(sqlite_server))
    assert ("keep-me", item, TODAY) in logged(sqlite_server)
    sqlite_server.history.prepare(model)  # a reseed, as a newly loaded version triggers
    assert stored(client, user) == [] and stored(client, "keep-me") == [(item, TODAY)]


def _post_and_query(server, customers, articles, posters=8, queriers=8, calls=6, until=lambda: True):
    """Returns (events accepted, statuses seen): ``posters`` clients post ``calls`` times, and on while ``until()``
    is false (at most 120 s), while ``queriers`` predict."""
    items, accepted, statuses, lock = list(articles), [], [], threading.Lock()
    done = threading.Event()

    def post(w: int) -> None:
        client = Client(server.port)
        c, deadline = 0, time.monotonic() + 120
        while c < calls or (not until() and time.monotonic() < deadline):
            c += 1
            batch = [event(f"load-{w}-{j}", items[(w * 7 + c * 3 + j) % len(items)]) for j in range(5)]
            status, _ = client.post("/v1/events", {"events": batch})
            with lock:
                statuses.append(status)
                accepted.extend(batch if status == 200 else [])

    def query(w: int) -> None:
        client = Client(server.port)
        while not done.is_set():
            row = {**customers[w], "customer_id": f"load-{w}-0"}
            status, _ = client.post(PREDICT, {"instances": [row]})
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=post, args=(w,)) for w in range(posters)]
    readers = [threading.Thread(target=query, args=(w,)) for w in range(queriers)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    for t in readers:
        t.join(60)
    return accepted, statuses


def _all_kept(server, accepted) -> None:
    client, log = Client(server.port), logged(server)
    for user in sorted({e["customer_id"] for e in accepted}):
        want = {(e["article_id"], TODAY) for e in accepted if e["customer_id"] == user}
        assert want <= set(stored(client, user)), user
    assert all((e["customer_id"], e["article_id"], e["t_dat"]) in log for e in accepted)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_eight_clients_posting_while_eight_query_lose_nothing_and_get_no_5xx(
    backend, sqlite_server, redis_backed, customers, articles
):
    server = sqlite_server if backend == "sqlite" else redis_backed[1]
    before = len(logged(server))
    accepted, statuses = _post_and_query(server, customers, articles)
    assert len(accepted) == 8 * 6 * 5 and all(s < 500 for s in statuses), sorted(set(statuses))
    assert len(logged(server)) - before == len(accepted)  # every accepted event logged, once
    _all_kept(server, accepted)


def test_store_down_predictions_still_answer_and_events_get_503(redis_backed, customers, articles):
    redis, server = redis_backed
    client, item = Client(server.port), next(iter(articles))
    row = {**customers[0], "customer_id": "down-1"}
    assert client.post("/v1/events", {"events": [event("down-1", item)]})[0] == 200
    none = client.post(PREDICT, {"instances": [{**row, "recent_items": []}]})[1]["predictions"][0]["item_ids"]
    redis.stop()
    try:
        status, body = client.post(PREDICT, {"instances": [row]})
        assert status == 200 and body["predictions"][0]["item_ids"] == none  # no stored history: none
        sent = client.post(PREDICT, {"instances": [{**row, "recent_items": [item]}]})
        assert sent[0] == 200  # a history in the request needs no store
        before = len(logged(server))
        status, body = client.post("/v1/events", {"events": [event("down-2", item)]})
        assert status == 503 and "history store unavailable" in body["error"]
        assert len(logged(server)) == before  # refused: not logged either
        assert client.get("/v1/users/down-1/history")[0] == 503
        metrics = client.raw("GET", "/metrics")[1].decode()
        assert 'twotower_history_store_errors_total{op="lookup"}' in metrics
        assert "twotower_history_store_fallbacks_total 1" in metrics
        assert 'twotower_events_total{outcome="unavailable"} 1' in metrics
    finally:
        redis.start()
    assert client.post("/v1/events", {"events": [event("down-2", item)]})[0] == 200  # back: accepted again
    assert stored(client, "down-1") == [(item, TODAY)]  # AOF on: kept across the restart


def test_a_version_pushed_while_events_flow_keeps_every_event_after_its_data_end(
    exported_model, customers, articles, tmp_path
):
    serving_dir = str(tmp_path / "serving")
    push(exported_model, serving_dir, 1)
    server = start_server(serving_dir, poll_seconds=0.2)
    try:
        client, result = Client(server.port), {}
        reseeded = lambda: server.history._models[MODEL].version == 2  # noqa: E731
        run = functools.partial(_post_and_query, server, customers, articles, posters=4, queriers=2, until=reseeded)
        load = threading.Thread(target=lambda: result.update(zip(("accepted", "statuses"), run(), strict=True)))
        load.start()
        time.sleep(0.5)
        push(exported_model, serving_dir, 2)  # events go on until version 2 is in, and a few calls after
        load.join(180)
        deadline = time.monotonic() + 60  # the store reseeds as version 2 loads; version 1 unloads just after
        while server.registry.loaded() != {(MODEL, "2"): 1.0} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.registry.loaded() == {(MODEL, "2"): 1.0} and all(s < 500 for s in result["statuses"])
        assert len(result["accepted"]) > 4 * 6 * 5  # reseeded from version 2 with the log replayed, events flowing
        _all_kept(server, result["accepted"])
        assert client.raw("GET", "/metrics")[1].decode().count('op="reseed"') >= 1
    finally:
        server.stop()


def _serve(serving_dir: str, port: int) -> subprocess.Popen:
    """Starts ``twotower serve`` (SQLite store) in a process; returns it once the model answers."""
    args = [sys.executable, "-m", "twotower.cli", "serve", "--serving-dir", serving_dir, "--host", "127.0.0.1"]
    process = subprocess.Popen(args + ["--port", str(port), "--poll-seconds", "0"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None and time.monotonic() < deadline, "twotower serve did not start"
        try:
            if Client(port).get(f"/v1/models/{MODEL}")[0] == 200:
                return process
        except OSError:
            time.sleep(0.2)


def test_kill_9_mid_run_then_restart_loses_no_accepted_event(exported_model, articles, tmp_path):
    serving_dir, port, items = str(tmp_path / "serving"), free_port(), list(articles)
    push(exported_model, serving_dir, 1)
    process = _serve(serving_dir, port)
    accepted, lock = [], threading.Lock()

    def post(w: int) -> None:
        for c in range(1000):
            batch = [event(f"kill-{w}-{c % 5}", items[(w + c) % len(items)], f"2025-01-{1 + c % 28:02d}")]
            try:
                status, _ = Client(port).post("/v1/events", {"events": batch})
            except OSError:  # the server is gone
                return
            with lock:
                accepted.extend(batch if status == 200 else [])

    posters = [threading.Thread(target=post, args=(w,)) for w in range(4)]
    for t in posters:
        t.start()
    while len(accepted) < 100:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)  # mid-run: calls in flight die with it
    for t in posters:
        t.join(30)
    process.wait(10)
    process = _serve(serving_dir, port)  # reseeded from the version and the log
    try:
        client = Client(port)
        for user in sorted({e["customer_id"] for e in accepted}):
            want = {(e["article_id"], e["t_dat"]) for e in accepted if e["customer_id"] == user}
            assert want <= set(stored(client, user)), user
    finally:
        process.terminate()
        process.wait(30)


def test_events_command_sends_a_csv_in_batches_and_names_bad_lines(sqlite_server, articles, tmp_path, capsys):
    from twotower.cli import main

    url, item = f"http://127.0.0.1:{sqlite_server.port}", next(iter(articles))
    path = tmp_path / "events.csv"
    lines = [f"cli-{i},{item},{TODAY},0.01," for i in range(5)]
    path.write_text("customer_id,article_id,t_dat,price,sales_channel_id\n" + "\n".join(lines) + "\n")
    assert main(["events", "--url", url, "--file", str(path), "--batch", "2"]) == 0
    assert "5 events from" in capsys.readouterr().out and stored(Client(sqlite_server.port), "cli-4") == [(item, TODAY)]
    path.write_text(path.read_text() + f"cli-5,{item},{TODAY},,\ncli-6,nope,{TODAY},,\n")
    assert main(["events", "--url", url, "--file", str(path), "--batch", "2", "--from-line", "5"]) == 2
    err = capsys.readouterr().err
    assert "2 events stored, lines 5-6; go on with --from-line 7" in err
    assert f"{path}:8: column 'article_id': unknown item 'nope'" in err
    assert main(["recommend", "--url", url, "--customer-id", "cli-4", "-k", "3"]) == 0
    assert "top-3 for customer cli-4" in capsys.readouterr().out
