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

``--stage`` picks what the child runs: ``example_gen`` is JoinExampleGen's own Beam graph
(``ingest.graph.build_ingestion`` + ``ingest.write.write_outputs``: the joined, split, gzipped
TFRecords with their histories, the quarantine and the report, as the TFX component writes them);
``validate`` is `twotower validate` (the same ingestion feeding TFDV statistics and the contract
check, without writing examples). The issue-12 bar (20k rows/s, 8 GB at 10M with history) is
JoinExampleGen's; validate also pays for statistics over every history list.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys

import yaml
from proc_tree import run_measured  # bench/proc_tree.py

from twotower.config import PROFILE_DIR

SIZES = (1_000_000, 3_000_000, 10_000_000)
TWOTOWER = [sys.executable, "-m", "twotower.cli"]
STAGES = ("example_gen", "validate")


def example_gen_child(config: str, data: str, out: str, workers: int) -> None:
    """Runs JoinExampleGen's Beam graph into ``out`` and writes ``out/validation.json`` (rows_read, passed)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from twotower.config import load_profile
    from twotower.errors import DataError
    from twotower.ingest.graph import beam_args, build_ingestion
    from twotower.ingest.report import check_report, read_report
    from twotower.ingest.splits import split_names
    from twotower.ingest.write import write_outputs
    from twotower.schema.contract import profile_ranges

    profile = load_profile(config)
    split_dirs = {name: os.path.join(out, f"Split-{name}") for name in split_names(profile)}
    quarantine = os.path.join(out, "quarantine")
    with beam.Pipeline(options=PipelineOptions(beam_args(workers))) as pipeline:
        write_outputs(build_ingestion(pipeline, data, profile, profile_ranges(profile)), split_dirs, quarantine)
    report = read_report(quarantine)
    try:
        check_report(report, profile, quarantine)
        passed = True
    except DataError as e:
        print(e, file=sys.stderr)
        passed = False
    with open(os.path.join(out, "validation.json"), "w", encoding="utf-8") as f:
        json.dump({"rows_read": report["rows_read"], "passed": passed, "splits": report["splits"]}, f, indent=2)


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
    parser.add_argument("--stage", choices=STAGES, nargs="+", default=list(STAGES), help="see the module doc")
    parser.add_argument("--example-gen-child", nargs=4, metavar=("CONFIG", "DATA", "OUT", "WORKERS"), help="internal")
    args = parser.parse_args()
    if args.example_gen_child:
        config, data, out, workers = args.example_gen_child
        return example_gen_child(config, data, out, int(workers))
    configs = {"on": "hm", "off": profile_without_history(args.data_root)}
    histories = ("on", "off") if args.history == "both" else (args.history,)
    results = []
    for size in args.sizes:
        data = os.path.join(args.data_root, f"hm-{size}-{args.customers}-{args.articles}")
        if not os.path.exists(os.path.join(data, "transactions_train.csv")):
            gen = TWOTOWER + ["data", "generate", "--out", data, "--quiet", "--transactions", str(size)]
            subprocess.run(gen + ["--customers", str(args.customers), "--items", str(args.articles)], check=True)
        for stage, workers, history in [(s, w, h) for s in args.stage for w in args.workers for h in histories]:
            out = os.path.join(args.data_root, f"{stage}-{size}-w{workers}-history-{history}")
            if stage == "validate":
                cmd = TWOTOWER + ["validate", "--config", configs[history], "--data", data, "--out", out]
                cmd += ["--beam-workers", str(workers)]
            else:
                shutil.rmtree(out, ignore_errors=True)
                cmd = [sys.executable, os.path.abspath(__file__), "--out", "-", "--example-gen-child"]
                cmd += [configs[history], data, out, str(workers)]
            measured = run_measured(cmd, out + ".log")
            with open(os.path.join(out, "validation.json"), encoding="utf-8") as f:
                summary = json.load(f)
            row = {
                "stage": stage,
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
