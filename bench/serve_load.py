"""Benchmark: closed-loop load on `twotower serve` over loopback, and a hot reload under load.

    .venv/bin/python bench/serve_load.py --out bench/results/serve_load.json

The model: the demo data (`twotower data generate` defaults: 5,000 customers, 1,200
articles, 200,000 transactions, seed 0), the hm profile trained for one softmax epoch
and exported with ``serving.top_k = 10``, so every answer is a top-10 over the whole
catalogue (serving_default: exact dot product + top-k). ``--serving-dir`` serves an
existing push instead.

The server runs as its own process (``twotower serve``, the CLI a user runs); the
load generator (``twotower.serving.loadgen``, asyncio) runs in this process. Each
request is one customer's row-format predict with the features of the customers CSV,
cycling over 2,000 customers. For each server setting and 1, 8 and 32 concurrent
clients: a warm-up, then ``--seconds`` of measurement; latency is from the request's
first byte written to the answer's last byte read. The CPU seconds of the server and
of the load generator are recorded too: they share the machine's cores (with whatever
else runs on it; the 1-minute load average before each run is in the JSON).

Last, the reload run: 8 clients while version 2 is copied in next to version 1; it
counts failed requests until version 2 serves and version 1 is unloaded.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any, Dict, List, Sequence, Tuple  # noqa: E402

from twotower.serving.loadgen import post_request, run_load  # noqa: E402

MODEL = "twotower"
SETTINGS = {
    "batching on (defaults: --max-batch-size 32 --batch-timeout-ms 0)": [],
    "batching on, 1 ms wait (--batch-timeout-ms 1)": ["--batch-timeout-ms", "1"],
    "batching off (--max-batch-size 1)": ["--max-batch-size", "1"],
}


def build_model(work: str) -> Tuple[str, str]:
    """Generates the demo data, trains and exports a top-10 model; returns (serving dir, customers CSV)."""
    from twotower.config import PhaseConfig, load_profile
    from twotower.data.synthetic import DEMO_ARTICLES, DEMO_CUSTOMERS, DEMO_TRANSACTIONS, generate_hm
    from twotower.export.package import train_and_export
    from twotower.trainer.prepare import prepare

    data = os.path.join(work, "data")
    generate_hm(data, DEMO_CUSTOMERS, DEMO_ARTICLES, DEMO_TRANSACTIONS, seed=0, progress=False)
    profile = load_profile("hm")
    profile = dataclasses.replace(
        profile,
        trainer=dataclasses.replace(profile.trainer, phases=(PhaseConfig("softmax", 1),)),
        serving=dataclasses.replace(profile.serving, top_k=10),
        evaluator=dataclasses.replace(profile.evaluator, ks=(10,), blessing_k=10),  # keeps the profile valid
    )
    inputs = prepare(profile, data, os.path.join(work, "prepared"))
    train_and_export(profile, inputs.paths(os.path.join(work, "trained")))
    serving = os.path.join(work, "serving")
    shutil.copytree(os.path.join(work, "trained", "model"), os.path.join(serving, MODEL, "1"))
    return serving, os.path.join(data, "customers.csv")


def requests_for(customers_csv: str, port: int, n: int = 2000) -> List[bytes]:
    """Returns raw HTTP predict requests, one customer each, with the customer's features."""
    with open(customers_csv, newline="", encoding="utf-8") as f:
        rows = list(itertools.islice(csv.DictReader(f), n))
    out = []
    for r in rows:
        instance = {
            "customer_id": r["customer_id"],
            "age": float(r["age"]) if r["age"] else float("nan"),
            "club_member_status": r["club_member_status"],
            "fashion_news_frequency": r["fashion_news_frequency"],
        }
        body = json.dumps({"instances": [instance]}).encode()
        out.append(post_request("127.0.0.1", port, f"/v1/models/{MODEL}:predict", body))
    return out


def start_server(serving_dir: str, flags: Sequence[str]) -> Tuple[subprocess.Popen, int]:
    """Starts `twotower serve` on a free loopback port; returns the process and the port once it serves."""
    command = [sys.executable, "-m", "twotower.cli", "serve", "--serving-dir", serving_dir, "--host", "127.0.0.1"]
    command += ["--port", "0", "--poll-seconds", "0.5", *flags]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    match = re.search(r"on http://127\.0\.0\.1:(\d+)$", line.strip())
    if not match:
        server.kill()
        raise RuntimeError(f"twotower serve did not start: {line!r}")
    return server, int(match[1])


def cpu_seconds(pid: int) -> float:
    """Returns user + system CPU seconds of process ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(port: int) -> Dict[str, float]:
    """Returns {metric line name: value} of the server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))}


def batch_rows(before: Dict[str, float], after: Dict[str, float]) -> float:
    """Returns the mean rows per model call between two scrapes."""
    key = f'{{model="{MODEL}",signature="serving_default"}}'
    rows = after.get(f"twotower_batch_size_rows_sum{key}", 0) - before.get(f"twotower_batch_size_rows_sum{key}", 0)
    calls = after.get(f"twotower_batch_size_rows_count{key}", 0) - before.get(f"twotower_batch_size_rows_count{key}", 0)
    return round(rows / calls, 2) if calls else float("nan")


def measure(port: int, pid: int, requests: List[bytes], clients: int, seconds: float) -> Dict[str, Any]:
    """Runs one closed-loop measurement; returns the load summary with CPU use and mean batch size."""
    load_average = os.getloadavg()[0]
    before = scrape(port)
    server_cpu, own_cpu, wall = cpu_seconds(pid), time.process_time(), time.monotonic()
    result = run_load("127.0.0.1", port, requests, clients, seconds, warmup_seconds=2.0)
    wall = time.monotonic() - wall
    summary = result.summary()
    summary.update(
        server_cpu_cores=round((cpu_seconds(pid) - server_cpu) / wall, 2),
        loadgen_cpu_cores=round((time.process_time() - own_cpu) / wall, 2),
        mean_batch_rows=batch_rows(before, scrape(port)),
        load_average_1m_before=round(load_average, 2),
    )
    return summary


def reload_under_load(serving_dir: str, port: int, requests: List[bytes], clients: int = 8) -> Dict[str, Any]:
    """Copies version 2 in while ``clients`` run; returns failures, latency and how long the switch took."""
    stop, out = threading.Event(), {}
    load = threading.Thread(target=lambda: out.update(r=run_load("127.0.0.1", port, requests, clients, 600, 0, stop)))
    load.start()
    time.sleep(2.0)
    pushed = time.monotonic()
    src = os.path.join(serving_dir, MODEL, "1")
    shutil.copytree(src, os.path.join(serving_dir, MODEL, "2"))
    states: Dict[str, str] = {}
    while states != {"2": "AVAILABLE", "1": "END"}:
        if time.monotonic() - pushed > 300:
            raise RuntimeError(f"version 2 not served after 300 s: {states}")
        time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{MODEL}", timeout=10) as r:
            states = {s["version"]: s["state"] for s in json.load(r)["model_version_status"]}
    switched = time.monotonic() - pushed
    time.sleep(2.0)
    stop.set()
    load.join()
    summary = out["r"].summary()
    summary.update(seconds_from_push_to_serving=round(switched, 1), failures=out["r"].failures[:5])
    shutil.rmtree(os.path.join(serving_dir, MODEL, "2"))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--serving-dir", help="serve this push (model 'twotower') instead of training one")
    parser.add_argument("--customers", help="customers CSV for the requests (with --serving-dir)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run (default 10)")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients per run (default 1,8,32)")
    parser.add_argument("--work-dir", help="where the data and model go (default: a temp dir, removed)")
    args = parser.parse_args()
    if args.serving_dir and not args.customers:
        parser.error("--serving-dir needs --customers")

    scratch = tempfile.TemporaryDirectory(prefix="serve-load-", dir=args.work_dir)
    started = time.monotonic()
    if args.serving_dir:
        serving_dir, customers_csv = args.serving_dir, args.customers
    else:
        print("building the demo data and a top-10 model ...", file=sys.stderr)
        serving_dir, customers_csv = build_model(scratch.name)
    runs = []
    reload_run: Dict[str, Any] = {}
    for name, flags in SETTINGS.items():
        server, port = start_server(serving_dir, flags)
        try:
            requests = requests_for(customers_csv, port)
            for clients in (int(c) for c in args.clients.split(",")):
                summary = {"server": name, **measure(port, server.pid, requests, clients, args.seconds)}
                print(json.dumps(summary), file=sys.stderr)
                runs.append(summary)
            if not flags and not args.serving_dir:
                reload_run = {"server": name, **reload_under_load(serving_dir, port, requests)}
                print(json.dumps(reload_run), file=sys.stderr)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    import tensorflow as tf

    report = {
        "command": "bench/serve_load.py --out " + args.out,
        "model": "hm profile, demo data, 1 softmax epoch, serving.top_k=10, 1,200-item catalogue, 32-dim embeddings",
        "request": "POST /v1/models/twotower:predict, row format, 1 instance (one customer's features), top-10",
        "seconds_per_run": args.seconds,
        "runs": runs,
        "reload_under_load": reload_run,
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__},
    }
    scratch.cleanup()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print("| server | clients | QPS | p50 ms | p95 ms | p99 ms | failed | rows/batch | server CPU | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['server']} | {r['clients']} | {r['qps']:,.0f} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} "
            f"| {r['failed']} | {r['mean_batch_rows']} | {r['server_cpu_cores']} | {r['load_average_1m_before']} |"
        )
    if reload_run:
        print(f"reload under load: {json.dumps(reload_run)}")


if __name__ == "__main__":
    main()
