"""Benchmark: what the online history store costs a prediction, and how many events/s it takes.

    .venv/bin/python bench/history_store.py --out bench/results/history_store.json --repeat 3

The model and the requests are ``bench/serve_load.py``'s (demo data, hm profile, one softmax epoch,
top-10 export; one customer's row-format predict per request, cycling over 2,000 customers), served
by ``twotower serve`` as its own process with ``--history-store`` SQLite (a file in the serving
dir) and then Redis (a ``redis-server`` this script starts on a free loopback port, AOF on,
``appendfsync everysec``). For each store and 1, 8 and 32 closed-loop clients (``serving.loadgen``):

- ``store lookup``: the request has no ``recent_items``; the server reads the customer's history
  from the store (what a client sends by default);
- ``history in request``: the same customers, each request carrying the history the store holds
  for them (the version's exported histories) in ``recent_items`` and ``recent_items_age_days``:
  no store read. The difference is what the lookup adds.

Then events: 8 clients posting ``POST /v1/events`` calls of 1 and of 100 events (today's date,
catalogue items, the same customers) back to back; events/s is accepted events per second (each
call is stored, then appended to the event log and fsynced before its answer).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.serving.redis_server

from serve_load import (  # noqa: E402
    MODEL,
    build_models,
    instances,
    load_arguments,
    measure,
    median_run,
    scrape,
    start_server,
    stop_server,
)

from tests.serving.redis_server import RedisServer  # noqa: E402
from twotower.export.histories import load_histories  # noqa: E402
from twotower.serving.loadgen import post_request  # noqa: E402


def predict_requests(customers_csv: str, version_dir: str, port: int, with_history: bool) -> List[bytes]:
    """Returns raw predict requests, one customer each; ``with_history``: carrying the customer's history."""
    rows = instances(customers_csv)
    if with_history:
        store = load_histories(version_dir)["recent_items"]
        ids, ages = store.lookup([r["customer_id"].encode() for r in rows])
        for row, items, item_ages in zip(rows, ids, ages, strict=True):
            row.update(recent_items=[i.decode() for i in items], recent_items_age_days=item_ages)
    path = f"/v1/models/{MODEL}:predict"
    return [post_request("127.0.0.1", port, path, json.dumps({"instances": [r]}).encode()) for r in rows]


def event_requests(customers_csv: str, version_dir: str, port: int, per_call: int) -> List[bytes]:
    """Returns raw ``POST /v1/events`` requests of ``per_call`` events (catalogue items, today's date) each."""
    with open(os.path.join(version_dir, "assets.extra", "vocab", "item_id"), encoding="utf-8") as f:
        items = [line.rstrip("\n") for line in f]
    users = [r["customer_id"] for r in instances(customers_csv)]
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    requests = []
    for start in range(0, 200 * per_call, per_call):
        events = [
            {"customer_id": users[i % len(users)], "article_id": items[(i * 7) % len(items)], "t_dat": today}
            for i in range(start, start + per_call)
        ]
        requests.append(post_request("127.0.0.1", port, "/v1/events", json.dumps({"events": events}).encode()))
    return requests


def lookup_seconds(before: Dict[str, float], after: Dict[str, float]) -> float:
    """Returns the mean store lookup time (ms) between two scrapes of /metrics."""
    key = 'twotower_history_store_latency_seconds_{}{{op="lookup"}}'
    calls = after.get(key.format("count"), 0) - before.get(key.format("count"), 0)
    total = after.get(key.format("sum"), 0) - before.get(key.format("sum"), 0)
    return round(1000 * total / calls, 3) if calls else float("nan")


def run_store(
    name: str, url: str, serving_dir: str, customers: str, work: str, args: argparse.Namespace
) -> Dict[str, Any]:
    """Every mode x clients row (``args.repeat`` turns each) and the events rows, for one store."""
    version_dir = os.path.join(serving_dir, MODEL, "1")
    flags = ["--history-store", url, "--event-log", os.path.join(work, f"events-{name}")]
    server, port = start_server(serving_dir, flags)
    rows: List[Dict[str, Any]] = []
    try:
        modes = {m: predict_requests(customers, version_dir, port, m == "history in request") for m in MODES}
        for c in [int(c) for c in args.clients.split(",")]:
            turns: Dict[str, List[Dict[str, Any]]] = {mode: [] for mode in modes}
            for _ in range(args.repeat):  # the two modes take turns: a noisy minute hits both
                for mode, requests in modes.items():
                    before = scrape(port)
                    summary = {"store": name, "mode": mode, **measure(port, server.pid, requests, c, args.seconds)}
                    summary["lookup_ms_mean"] = lookup_seconds(before, scrape(port))
                    print(json.dumps(summary), file=sys.stderr)
                    turns[mode].append(summary)
            rows += [median_run(runs, lambda r: r["p99_ms"]) for runs in turns.values()]
        events = []
        for per_call in (1, 100):
            summary = measure(port, server.pid, event_requests(customers, version_dir, port, per_call), 8, args.seconds)
            summary.update(store=name, events_per_call=per_call, events_per_second=round(summary["qps"] * per_call))
            print(json.dumps(summary), file=sys.stderr)
            events.append(summary)
    finally:
        stop_server(server)
    return {"predict": rows, "events": events}


MODES = ("store lookup", "history in request")


def print_tables(results: Dict[str, Dict[str, Any]]) -> None:
    """Prints the markdown rows of bench/RESULTS.md."""
    print("| store | clients | p50 ms lookup / in request | p99 ms lookup / in request | added p99 ms | lookup ms |")
    print("|---|---|---|---|---|---|")
    for name, result in results.items():
        by = {(r["mode"], r["clients"]): r for r in result["predict"]}
        for c in sorted({r["clients"] for r in result["predict"]}):
            look, sent = by[("store lookup", c)], by[("history in request", c)]
            added = round(look["p99_ms"] - sent["p99_ms"], 2)
            print(
                f"| {name} | {c} | {look['p50_ms']} / {sent['p50_ms']} | {look['p99_ms']} / {sent['p99_ms']} "
                f"| {added} | {look['lookup_ms_mean']} |"
            )
    print("\n| store | events per call | calls/s | events/s | p50 ms | p99 ms | failed |")
    print("|---|---|---|---|---|---|---|")
    for name, result in results.items():
        for e in result["events"]:
            print(
                f"| {name} | {e['events_per_call']} | {e['qps']:,.0f} | {e['events_per_second']:,} | {e['p50_ms']} "
                f"| {e['p99_ms']} | {e['failed']} |"
            )


def main() -> None:
    args = load_arguments(
        __doc__,
        serving_dir="serve this push (model 'twotower', hm profile) instead of training",
        repeat="turns per row; the median p99 is reported (default 1)",
        work_dir="where the data, models and stores go (default: a temp dir, removed)",
    )
    scratch = tempfile.TemporaryDirectory(prefix="history-store-", dir=args.work_dir)
    started = time.monotonic()
    if args.serving_dir:
        serving_dir, customers = args.serving_dir, args.customers
    else:
        print("building the demo data and the model ...", file=sys.stderr)
        serving_dirs, customers = build_models(scratch.name)
        serving_dir = serving_dirs["top-10"]
    redis_dir = os.path.join(scratch.name, "redis")
    os.makedirs(redis_dir)
    redis = RedisServer(redis_dir)
    try:
        stores = {"sqlite": f"sqlite:///{os.path.join(scratch.name, 'history.sqlite')}", "redis": redis.url}
        results = {n: run_store(n, url, serving_dir, customers, scratch.name, args) for n, url in stores.items()}
    finally:
        redis.stop()
    report = {
        "command": " ".join(["bench/history_store.py", *sys.argv[1:]]),
        "model": "hm profile, demo data (5,000 customers, 1,200 articles), 1 softmax epoch, serving.top_k 10",
        "request": "POST /v1/models/twotower:predict, row format, 1 customer; history from the store or in the request",
        "events": "POST /v1/events, 8 clients, 1 or 100 events per call",
        "seconds_per_run": args.seconds,
        "repeat": args.repeat,
        "results": results,
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()},
    }
    scratch.cleanup()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print_tables(results)


if __name__ == "__main__":
    main()
