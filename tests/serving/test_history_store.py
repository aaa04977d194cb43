"""The history store on both backends (a real SQLite file, a real redis-server), the event log, the event checks."""

import os
import threading

import pytest

from twotower.config import load_profile
from twotower.serving.event_log import EventLog
from twotower.serving.events import BadEvents, EventChecker
from twotower.serving.history_store import merge, open_store


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path}/h.sqlite", str(tmp_path))
    else:
        s = open_store(request.getfixturevalue("redis_server").url, str(tmp_path))
    yield s
    s.close()


def test_merge_keeps_the_newest_by_time_then_arrival_once_per_item_and_time():
    old = [("a", 20.0, 2), ("b", 10.0, 1)]
    new = [("c", 20.0, 5), ("a", 20.0, 9), ("d", 5.0, 6)]  # ("a", 20) again: already there
    assert merge(old, new, 3) == [("c", 20.0, 5), ("a", 20.0, 2), ("b", 10.0, 1)]  # d is the oldest: cut


def test_add_lookup_reseed_and_forget(store):
    store.reseed("m/h", 3, iter([("u1", [("a", 10.0, 2), ("b", 5.0, 1)]), ("u2", [("c", 7.0, 1)])]))
    store.add({"m/h": 3, "m2/h": 2}, {"u1": [("x", 30.0, 100), ("y", 30.0, 101)], "u3": [("z", 1.0, 102)]})
    store.add({"m/h": 3}, {"u1": [("x", 30.0, 103)]})  # a retried event: stored once
    assert store.lookup("m/h", ["u1", "u2", "u3", "nobody"]) == {
        "u1": [("y", 30.0, 101), ("x", 30.0, 100), ("a", 10.0, 2)],  # newest 3; same time: later arrival first
        "u2": [("c", 7.0, 1)],
        "u3": [("z", 1.0, 102)],
    }
    assert store.lookup("m2/h", ["u1"]) == {"u1": [("y", 30.0, 101), ("x", 30.0, 100)]}
    assert store.forget("u1") == 5 and store.lookup("m/h", ["u1"]) == {} and store.lookup("m2/h", ["u1"]) == {}
    assert set(store.forgotten()) == {"u1"}
    users = store.reseed("m/h", 3, iter([("u1", [("a", 10.0, 1)]), ("u2", [("c", 7.0, 1)])]))
    assert users == 1 and store.lookup("m/h", ["u1", "u2", "u3"]) == {"u2": [("c", 7.0, 1)]}  # u1's stay erased


def test_concurrent_adds_lose_nothing(store):
    def post(worker):
        for i in range(20):
            store.add({"m/h": 1000}, {"u": [(f"i{worker}-{i}", float(i), worker * 100 + i)]})

    threads = [threading.Thread(target=post, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.lookup("m/h", ["u"])["u"]) == 80


def test_open_store_refuses_other_urls(tmp_path):
    with pytest.raises(ValueError, match="expected sqlite:///PATH or redis://HOST:PORT/DB"):
        open_store("mysql://x", str(tmp_path))
    assert open_store("", str(tmp_path)).url == f"sqlite:///{tmp_path}/history.sqlite"


def test_event_log_appends_by_day_cuts_a_torn_line_and_erases_a_user(tmp_path):
    clock = [86400.0 * 3]
    log = EventLog(str(tmp_path), ("u", "i", "t"), clock=lambda: clock[0])
    log.append([{"u": "a", "i": "1", "t": "x"}, {"u": "b", "i": "2"}])
    clock[0] += 86400
    path = log.append([{"u": "a", "i": "3", "t": "y"}])
    assert log.days() == ["1970-01-04", "1970-01-05"]
    with open(path, "a") as f:
        f.write("b,4")  # a crash mid-write: never acknowledged
    fresh = EventLog(str(tmp_path), ("u", "i", "t"), clock=lambda: clock[0])
    fresh.append([{"u": "b", "i": "5", "t": "z"}])
    assert [r["i"] for r in fresh.rows()] == ["1", "2", "3", "5"]
    assert [r["i"] for r in fresh.rows("1970-01-05")] == ["3", "5"]
    assert fresh.erase("u", "a") == 2 and [r["i"] for r in fresh.rows()] == ["2", "5"]
    assert open(fresh.path_of("1970-01-04")).read() == "u,i,t\nb,2,\n"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_events_are_checked_like_interaction_rows():
    checker = EventChecker(load_profile("hm"), {"0108775015"})
    now = 1_700_000_000.0
    good = {"customer_id": "c1", "article_id": "0108775015", "t_dat": "2023-11-14", "price": 0.05}
    events = checker.parse(b'{"events": [%s]}' % str(good).replace("'", '"').encode(), now)
    assert events[0].user == "c1" and events[0].timestamp == 1699920000.0
    assert events[0].row == {"customer_id": "c1", "article_id": "0108775015", "t_dat": "2023-11-14", "price": "0.05"}
    bad = [
        good,
        {**good, "customer_id": ""},
        {**good, "article_id": "nope"},
        {**good, "t_dat": "14/11/2023"},
        {**good, "t_dat": "2023-11-16"},
        {**good, "colour": "red"},
        {**good, "price": "cheap"},
        {"article_id": "0108775015", "t_dat": "2023-11-14"},
    ]
    import json

    with pytest.raises(BadEvents) as e:
        checker.parse(json.dumps({"events": bad}).encode(), now)
    reasons = {r["index"]: r["reason"] for r in e.value.rejected}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7]
    assert reasons[1] == "column 'customer_id' is empty"
    assert reasons[2] == "column 'article_id': unknown item 'nope' (not in the model's catalogue)"
    assert reasons[3] == "column 't_dat': cannot parse '14/11/2023' as '%Y-%m-%d'"
    assert "is in the future" in reasons[4] and "unknown field(s) ['colour']" in reasons[5]
    assert reasons[6] == "column 'price': 'cheap' is not a number" and reasons[7] == "column 'customer_id' is missing"
    assert str(e.value).startswith("7 of 8 events rejected, none stored: events[1]: column 'customer_id' is empty")


def test_history_endpoints_without_a_history_model_or_with_the_store_off(fake_server):
    from tests.serving.conftest import Client

    client = Client(fake_server().port)  # a model without a history feature: nothing to check events against
    status, body = client.post("/v1/events", {"events": [{"customer_id": "c"}]})
    assert status == 503 and "no model with a history feature" in body["error"]
    assert client.get("/v1/users/c/history") == (200, {"user": "c", "histories": {}})
    off = Client(fake_server(history_store="none").port)
    status, body = off.post("/v1/events", {"events": []})
    assert status == 404 and "the history store is off (--history-store none)" in body["error"]
