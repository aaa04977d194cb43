"""Benchmark: ingestion + statistics + contract validation at 1M, 3M and 10M H&M-shaped transactions.

    .venv/bin/python bench/ingest_scale.py --out bench/results/ingest_scale.json

The hm profile has a 50-item history feature (``recent_items``): ingestion then also groups each
customer's transactions by time and attaches their earlier items to every row. ``--history both``
(the default) runs every size and mode twice, with the profile as it is and with the history
feature left out (a copy of the profile YAML without it), side by side; ``on`` / ``off`` runs one.

For each size it generates the data once (cached under --data-root), then runs
`twotower validate` in a child process per Beam mode (in-memory, and
multi-processing with 2 workers) while sampling the resident memory of every
process in the child's tree twice a second. The catalogue is the same at every
size (--customers, --articles), so memory growth would come from the rows.
Records rows/s (rows read / wall time) and peak RSS per process and summed.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from typing import Dict, List

import psutil
import yaml

from twotower.config import PROFILE_DIR

SIZES = (1_000_000, 3_000_000, 10_000_000)
TWOTOWER = [sys.executable, "-m", "twotower.cli"]


def sample_tree(pid: int, stop: threading.Event, peaks: Dict[str, float]) -> None:
    """Records the peak RSS (MB) of the largest process and of the tree's sum until ``stop`` is set."""
    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            procs = [root] + root.children(recursive=True)
            rss = []
            for p in procs:
                try:
                    rss.append(p.memory_info().rss / 2**20)
                except psutil.NoSuchProcess:
                    continue
            peaks["max_process_mb"] = max(peaks.get("max_process_mb", 0.0), max(rss, default=0.0))
            peaks["tree_sum_mb"] = max(peaks.get("tree_sum_mb", 0.0), sum(rss))
            peaks["processes"] = max(peaks.get("processes", 0), len(rss))
        except psutil.NoSuchProcess:
            return
        stop.wait(0.5)


def run_measured(cmd: List[str], log_path: str) -> Dict[str, float]:
    """Runs ``cmd`` with its output in ``log_path``; returns wall seconds, exit code and memory peaks."""
    peaks: Dict[str, float] = {}
    stop = threading.Event()
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        sampler = threading.Thread(target=sample_tree, args=(child.pid, stop, peaks), daemon=True)
        sampler.start()
        code = child.wait()
    stop.set()
    sampler.join()
    return {"seconds": time.monotonic() - started, "exit_code": code, **peaks}


def profile_without_history(directory: str) -> str:
    """Writes the hm profile without its history feature to ``directory``; returns the YAML's path."""
    with open(os.path.join(PROFILE_DIR, "hm.yaml"), encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    raw["features"] = [f for f in raw["features"] if f.get("kind") != "history"]
    raw["contract"]["schema"] = os.path.normpath(os.path.join(PROFILE_DIR, raw["contract"]["schema"]))
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "hm_no_history.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(raw, f, sort_keys=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--data-root", default="/tmp/twotower-bench", help="generated data is cached here")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="transaction counts")
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="0 = in-memory DirectRunner")
    parser.add_argument("--history", choices=("both", "on", "off"), default="both", help="see the module doc")
    args = parser.parse_args()
    configs = {"on": "hm", "off": profile_without_history(args.data_root)}
    histories = ("on", "off") if args.history == "both" else (args.history,)
    results = []
    for size in args.sizes:
        data = os.path.join(args.data_root, f"hm-{size}-{args.customers}-{args.articles}")
        if not os.path.exists(os.path.join(data, "transactions_train.csv")):
            gen = TWOTOWER + ["data", "generate", "--out", data, "--quiet", "--transactions", str(size)]
            subprocess.run(gen + ["--customers", str(args.customers), "--items", str(args.articles)], check=True)
        for workers, history in [(w, h) for w in args.workers for h in histories]:
            out = os.path.join(args.data_root, f"validate-{size}-w{workers}-history-{history}")
            cmd = TWOTOWER + ["validate", "--config", configs[history], "--data", data, "--out", out]
            measured = run_measured(cmd + ["--beam-workers", str(workers)], out + ".log")
            with open(os.path.join(out, "validation.json"), encoding="utf-8") as f:
                summary = json.load(f)
            row = {
                "transactions": size,
                "workers": workers,
                "history": history == "on",
                "rows_read": summary["rows_read"],
                "rows_per_second": round(summary["rows_read"] / measured["seconds"]),
                "seconds": round(measured["seconds"], 1),
                "peak_rss_max_process_mb": round(measured["max_process_mb"]),
                "peak_rss_tree_sum_mb": round(measured["tree_sum_mb"]),
                "processes": measured["processes"],
                "exit_code": measured["exit_code"],
                "passed": summary["passed"],
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    report = {
        "catalogue": {"customers": args.customers, "articles": args.articles},
        "runs": results,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
