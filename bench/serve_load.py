"""Benchmark: closed-loop load on `twotower serve` over loopback: two models, three batching settings, a large
request in flight, and a hot reload under load.

    .venv/bin/python bench/serve_load.py --out bench/results/serve_load.json --repeat 3

The models: the demo data (`twotower data generate` defaults: 5,000 customers, 1,200
articles, 200,000 transactions, seed 0), the hm profile trained for one softmax epoch
and exported twice from the same weights: with ``serving.top_k = 10`` (the benchmark
model since issue 5) and with the profile's own ``top_k = 100`` (what a user's push
answers). Every answer is an exact top-K over the whole catalogue (serving_default:
dot product + top-k). ``--serving-dir`` serves an existing push instead.

The server runs as its own process (``twotower serve``, the CLI a user runs); the
load generator (``twotower.serving.loadgen``, asyncio) runs in this process. Each
request is one customer's row-format predict with the features of the customers CSV,
cycling over 2,000 customers. For each model, server setting and 1, 8 and 32
concurrent clients: a warm-up, then ``--seconds`` of measurement; latency is from the
request's first byte written to the answer's last byte read. ``--repeat N`` measures
each row N times, taking turns with the other rows, and reports the run with the
median predictions/s. The CPU seconds of the server and of the load generator are
recorded: they share the machine's 2 cores with whatever else runs on it (the
1-minute load average before each run is in the JSON).

The large-request run: with default settings, 8 single-row clients while one more
client sends 1,000-row requests of ~1 MB (the customers' ids padded to ~1 KB: unknown
ids, answered from the out-of-vocabulary bucket) back to back; it reports the single
rows' p50/p99 and the large requests' latency.

Last, the reload run (top-10 model): 8 clients while version 2 is copied in next to
version 1; it counts failed requests until version 2 serves and version 1 is unloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import itertools
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any, Dict, List, Sequence, Tuple

from twotower.serving.loadgen import closed_loop, post_request, run_load

MODEL = "twotower"
SETTINGS = {
    "batching on (defaults: --max-batch-size 32 --batch-timeout-ms 0)": [],
    "batching on, 1 ms wait (--batch-timeout-ms 1)": ["--batch-timeout-ms", "1"],
    "batching off (--max-batch-size 1)": ["--max-batch-size", "1"],
}
DEFAULTS = next(iter(SETTINGS))


def build_models(work: str) -> Tuple[Dict[str, str], str]:
    """Generates the demo data, trains once, exports top-10 and top-100; returns ({model: serving dir}, customers)."""
    from twotower.config import PhaseConfig, load_profile
    from twotower.data.synthetic import DEMO_ARTICLES, DEMO_CUSTOMERS, DEMO_TRANSACTIONS, generate_hm
    from twotower.export.package import package
    from twotower.trainer.prepare import prepare
    from twotower.trainer.train import fit

    data = os.path.join(work, "data")
    generate_hm(data, DEMO_CUSTOMERS, DEMO_ARTICLES, DEMO_TRANSACTIONS, seed=0, progress=False)
    profile = load_profile("hm")
    profile = dataclasses.replace(
        profile, trainer=dataclasses.replace(profile.trainer, phases=(PhaseConfig("softmax", 1),))
    )
    inputs = prepare(profile, data, os.path.join(work, "prepared"))
    paths = inputs.paths(os.path.join(work, "trained"))
    fitted = fit(profile, paths)
    serving_dirs = {}
    for k in (10, 100):
        p = dataclasses.replace(
            profile,
            serving=dataclasses.replace(profile.serving, top_k=k),
            evaluator=dataclasses.replace(profile.evaluator, ks=(10,), blessing_k=10),  # keeps the profile valid
        )
        model_dir = os.path.join(work, f"model-top{k}")
        package(p, dataclasses.replace(paths, serving_model_dir=model_dir), fitted, with_onnx=False)
        serving_dirs[f"top-{k}"] = os.path.join(work, f"serving-top{k}")
        shutil.copytree(model_dir, os.path.join(serving_dirs[f"top-{k}"], MODEL, "1"))
    return serving_dirs, os.path.join(data, "customers.csv")


def instances(customers_csv: str, n: int = 2000, pad_to: int = 0) -> List[Dict[str, Any]]:
    """Returns serving_default instances of the first ``n`` customers; ids padded to ``pad_to`` characters."""
    with open(customers_csv, newline="", encoding="utf-8") as f:
        rows = list(itertools.islice(csv.DictReader(f), n))
    return [
        {
            "customer_id": r["customer_id"].ljust(pad_to, "x"),
            "age": float(r["age"]) if r["age"] else float("nan"),
            "club_member_status": r["club_member_status"],
            "fashion_news_frequency": r["fashion_news_frequency"],
        }
        for r in rows
    ]


def single_requests(customers_csv: str, port: int) -> List[bytes]:
    """Returns raw HTTP predict requests, one customer each, with the customer's features."""
    path = f"/v1/models/{MODEL}:predict"
    return [
        post_request("127.0.0.1", port, path, json.dumps({"instances": [i]}).encode()) for i in instances(customers_csv)
    ]


def large_request(customers_csv: str, port: int, rows: int = 1000, size: int = 1_000_000) -> bytes:
    """Returns one raw HTTP predict request of ``rows`` rows and about ``size`` bytes."""
    base = instances(customers_csv, rows)
    pad = max(64, (size - len(json.dumps({"instances": base}))) // rows + 64)
    body = json.dumps({"instances": instances(customers_csv, rows, pad)}).encode()
    return post_request("127.0.0.1", port, f"/v1/models/{MODEL}:predict", body)


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


def stop_server(server: subprocess.Popen) -> None:
    """Stops a server with SIGTERM (it drains) and waits for it."""
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)


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


def measure_mixed(port: int, singles: List[bytes], large: bytes, clients: int, seconds: float) -> Dict[str, Any]:
    """Runs ``clients`` single-row clients and one client of large requests at once; returns both summaries."""
    load_average = os.getloadavg()[0]

    async def both() -> Tuple[Any, Any]:
        small = closed_loop("127.0.0.1", port, singles, clients, seconds, warmup_seconds=2.0)
        big = closed_loop("127.0.0.1", port, [large], 1, seconds, warmup_seconds=2.0)
        return await asyncio.gather(small, big)

    small, big = asyncio.run(both())
    return {
        "single_rows": small.summary(),
        "large_requests": big.summary(),
        "large_request_bytes": len(large),
        "load_average_1m_before": round(load_average, 2),
    }


def reload_under_load(serving_dir: str, port: int, requests: List[bytes], clients: int = 8) -> Dict[str, Any]:
    """Copies version 2 in while ``clients`` run; returns failures, latency and how long the switch took."""
    stop, out = threading.Event(), {}
    load = threading.Thread(target=lambda: out.update(r=run_load("127.0.0.1", port, requests, clients, 600, 0, stop)))
    load.start()
    time.sleep(2.0)
    pushed = time.monotonic()
    shutil.copytree(os.path.join(serving_dir, MODEL, "1"), os.path.join(serving_dir, MODEL, "2"))
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


def median_run(runs: List[Dict[str, Any]], key: Any) -> Dict[str, Any]:
    """Returns the run whose ``key(run)`` is the median (the lower middle one for an even count), with all values."""
    ordered = sorted(runs, key=key)
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["repeats"] = [key(r) for r in runs]
    return chosen


def run_model(name: str, serving_dir: str, customers: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Every setting x clients row (``args.repeat`` turns each), then the large-request run, for one model."""
    clients = [int(c) for c in args.clients.split(",")]
    turns: Dict[Tuple[str, int], List[Dict[str, Any]]] = {(s, c): [] for s in SETTINGS for c in clients}
    mixed: List[Dict[str, Any]] = []
    for _ in range(args.repeat):
        for setting, flags in SETTINGS.items():
            server, port = start_server(serving_dir, flags)
            try:
                requests = single_requests(customers, port)
                for c in clients:
                    summary = {"model": name, "server": setting, **measure(port, server.pid, requests, c, args.seconds)}
                    print(json.dumps(summary), file=sys.stderr)
                    turns[(setting, c)].append(summary)
                if setting == DEFAULTS:
                    mixed.append(
                        {
                            "model": name,
                            **measure_mixed(port, requests, large_request(customers, port), 8, args.seconds),
                        }
                    )
                    print(json.dumps(mixed[-1]), file=sys.stderr)
            finally:
                stop_server(server)
    rows = [median_run(runs, lambda r: r["qps"]) for runs in turns.values()]
    return {"runs": rows, "large_request": median_run(mixed, lambda r: r["single_rows"]["p99_ms"])}


def print_tables(models: Dict[str, Dict[str, Any]], reload_run: Dict[str, Any]) -> None:
    """Prints the markdown rows of bench/RESULTS.md."""
    print("| model | server | clients | predictions/s | p50 ms | p95 ms | p99 ms | failed | rows/batch | server CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, result in models.items():
        for r in result["runs"]:
            print(
                f"| {name} | {r['server']} | {r['clients']} | {r['qps']:,.0f} | {r['p50_ms']} | {r['p95_ms']} "
                f"| {r['p99_ms']} | {r['failed']} | {r['mean_batch_rows']} | {r['server_cpu_cores']} |"
            )
    print("\n| model | single rows/s (8 clients) | single p50 ms | single p99 ms | large requests/s | large p50 ms |")
    print("|---|---|---|---|---|---|")
    for name, result in models.items():
        small, big = result["large_request"]["single_rows"], result["large_request"]["large_requests"]
        print(
            f"| {name} | {small['qps']:,.0f} | {small['p50_ms']} | {small['p99_ms']} | {big['qps']} | {big['p50_ms']} |"
        )
    if reload_run:
        print(f"\nreload under load: {json.dumps(reload_run)}")


def load_arguments(doc: str, serving_dir: str, repeat: str, work_dir: str) -> argparse.Namespace:
    """Parses the flags a load bench shares (this one and history_store.py); the strings are their helps."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--serving-dir", help=serving_dir)
    parser.add_argument("--customers", help="customers CSV for the requests (with --serving-dir)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run (default 10)")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients per run (default 1,8,32)")
    parser.add_argument("--repeat", type=int, default=1, help=repeat)
    parser.add_argument("--work-dir", help=work_dir)
    args = parser.parse_args()
    if args.serving_dir and not args.customers:
        parser.error("--serving-dir needs --customers")
    return args


def main() -> None:
    args = load_arguments(
        __doc__,
        serving_dir="serve this push (model 'twotower') instead of training two",
        repeat="turns per row; the median is reported (default 1)",
        work_dir="where the data and models go (default: a temp dir, removed)",
    )

    scratch = tempfile.TemporaryDirectory(prefix="serve-load-", dir=args.work_dir)
    started = time.monotonic()
    if args.serving_dir:
        serving_dirs, customers = {"push": args.serving_dir}, args.customers
    else:
        print("building the demo data and the top-10 and top-100 models ...", file=sys.stderr)
        serving_dirs, customers = build_models(scratch.name)
    models = {name: run_model(name, d, customers, args) for name, d in serving_dirs.items()}
    reload_run: Dict[str, Any] = {}
    if not args.serving_dir:
        server, port = start_server(serving_dirs["top-10"], [])
        try:
            reload_run = reload_under_load(serving_dirs["top-10"], port, single_requests(customers, port))
        finally:
            stop_server(server)
    import tensorflow as tf

    report = {
        "command": " ".join(["bench/serve_load.py", *sys.argv[1:]]),
        "models": "hm profile, demo data, 1 softmax epoch, exported with serving.top_k 10 and 100; "
        "1,200-item catalogue, 32-dim embeddings",
        "request": "POST /v1/models/twotower:predict, row format, 1 instance (one customer's features)",
        "large_request": "1,000 instances, ~1 MB, while 8 single-row clients run (default settings)",
        "seconds_per_run": args.seconds,
        "repeat": args.repeat,
        "results": models,
        "reload_under_load": reload_run,
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__},
    }
    scratch.cleanup()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print_tables(models, reload_run)


if __name__ == "__main__":
    main()
