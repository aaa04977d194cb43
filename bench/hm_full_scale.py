"""Benchmark: the whole pipeline at the Kaggle H&M sizes on this machine, per component.

    .venv/bin/python bench/hm_full_scale.py --out bench/results/hm_full_scale.json

Generates synthetic H&M data at the sizes of the Kaggle competition's files (31,788,324
transactions, 1,371,980 customers, 105,542 articles) over 104 weeks, with the streaming generator
(cached under --work-dir: its memory grows with customers and articles, not rows), then runs
`twotower run --config hm --beam-workers 2` as a child process and samples the resident memory of
the child and every process it starts twice a second. The child's progress lines
("[i/n] Component ...") say which component the samples belong to.

Per component: wall time, peak RSS (the whole process tree while it ran), and a rate:
JoinExampleGen rows read (all three files) per second, StatisticsGen examples (every split) per
second, Transform train examples analysed per second, Trainer examples per second over its phase
loop (the trainer's own measure; the component also reads, embeds the catalogue and exports), the
evaluator's held-out users per second. ``--scale`` shrinks all three sizes for a trial run.
"""

import argparse
import json
import os
import re
import shutil
import sys
import time
from typing import Any, Dict, Optional

from bench_report import write_report  # bench/bench_report.py
from proc_tree import TreeSampler, run_measured  # bench/proc_tree.py

TRANSACTIONS, CUSTOMERS, ARTICLES = 31_788_324, 1_371_980, 105_542
START_DATE, DAYS = "2018-09-20", 7 * 104
# the pipeline's "[i/n] Component ..." and "[i/n] Component done in Xs" lines: (name, state, seconds when done)
PROGRESS = re.compile(r"^\[\d+/\d+\] (\S+) (\.\.\.|done in ([0-9.]+)s)$", re.M)


def sizes(scale: float) -> Dict[str, int]:
    """Returns the transaction, customer and article counts at ``scale`` of the Kaggle sizes."""
    return {
        "transactions": round(TRANSACTIONS * scale),
        "customers": round(CUSTOMERS * scale),
        "articles": round(ARTICLES * scale),
    }


def generate_child(out: str, transactions: int, customers: int, articles: int) -> None:
    """Writes the three CSV files into ``out`` (104 weeks from START_DATE) and ``out/done.json`` last."""
    from twotower.data.synthetic import generate_hm

    data = generate_hm(out, customers, articles, transactions, seed=0, start_date=START_DATE, days=DAYS)
    with open(os.path.join(out, "done.json"), "w", encoding="utf-8") as f:
        json.dump({"first_date": data.first_date, "last_date": data.last_date}, f)


def generate(data: str, n: Dict[str, int]) -> Dict[str, Any]:
    """Generates the data into ``data`` unless it is there; returns the generation's wall time, RSS and rate."""
    measures = os.path.join(data, "generate.json")
    if not os.path.exists(os.path.join(data, "done.json")):
        cmd = [sys.executable, os.path.abspath(__file__), "--out", "-", "--generate-child", data]
        cmd += [str(n["transactions"]), str(n["customers"]), str(n["articles"])]
        measured = run_measured(cmd, data + ".generate.log")
        if measured["exit_code"] != 0:
            sys.exit(f"generating {data} failed; see {data}.generate.log")
        with open(measures, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "wall_s": round(measured["seconds"], 1),
                    "peak_rss_mb": round(measured["tree_sum_mb"]),
                    "rows_per_s": rate(n["transactions"], measured["seconds"]),
                },
                f,
            )
    if not os.path.exists(measures):
        return {}
    with open(measures, encoding="utf-8") as f:
        return json.load(f)


def follow_components(line: str, sampler: TreeSampler) -> None:
    """Switches the sampler to the component a progress line starts, and back to none when it is done."""
    match = PROGRESS.match(line.strip())
    if match:
        name, state, _ = match.groups()
        sampler.phase(name if state == "..." else None)
        print(line.rstrip(), flush=True)


def rate(count: Optional[float], seconds: float) -> Optional[float]:
    return None if count is None or seconds <= 0 else round(count / seconds, 1)


def component_rows(root: str, measured: Dict[str, Any]) -> Dict[str, Any]:
    """Returns {components: {NAME: {wall_s, peak_rss_mb, per_s, ...}}, metrics: {model: metrics}, evaluation: {...}}."""
    from twotower.cli.bench import training_history
    from twotower.pipeline.local import METADATA_FILE, read_result

    result = read_result(os.path.join(root, METADATA_FILE), measured["seconds"], {})
    with open(root + ".log", encoding="utf-8") as f:
        log = f.read()
    walls = {name: float(seconds) for name, _, seconds in PROGRESS.findall(log) if seconds}
    splits = result.ingestion["splits"]
    history = training_history(root)
    counts = {
        "JoinExampleGen": (result.ingestion["rows_read"], "rows read (all files)"),
        "StatisticsGen": (sum(s["examples"] for s in splits.values()), "examples, every split"),
        "Transform": (splits["train"]["examples"], "train examples analysed"),
        "RetrievalEvaluator": (result.metrics.get("eval_users"), "held-out users"),
    }
    components = {}
    for name, peaks in measured["phases"].items():
        wall = walls.get(name, float("nan"))
        count, of = counts.get(name, (None, None))
        row = {
            "wall_s": round(wall, 1),
            "peak_rss_mb": round(peaks.get("tree_sum_mb", 0)),  # 0: done before the first sample
            "peak_rss_max_process_mb": round(peaks.get("max_process_mb", 0)),
            "processes": peaks.get("processes", 0),
            "per_s": rate(count, wall),
            "per_s_of": of,
        }
        if name == "Trainer":
            trained = sum((p["last_step"] - p["first_step"]) * p["batch_size"] for p in history["phases"])
            row.update(per_s=round(history["examples_per_s"], 1), per_s_of="training examples, phase loop")
            row["examples_trained"] = trained
            row["component_examples_per_s"] = rate(trained, wall)
            row["epochs"] = [
                {k: e.get(k) for k in ("epoch", "phase", "loss", "val_recall@50", "learning_rate")}
                for e in history["epochs"]
            ]
        components[name] = row
    evaluation = {
        "blessing": result.metrics.get("blessing"),
        "eval_users": result.metrics.get("eval_users"),
        "eval_interactions": result.metrics.get("eval_interactions"),
        "catalogue_size": result.metrics.get("catalogue_size"),
        "baselines": result.metrics.get("baselines"),
        "splits": splits,
        "pushed": result.pushed_model is not None,
    }
    return {"components": components, "metrics": result.metrics.get("models"), "evaluation": evaluation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--work-dir", default="/tmp/twotower-full-scale", help="data (cached) and pipeline root")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the Kaggle sizes (trial runs)")
    parser.add_argument("--beam-workers", type=int, default=2)
    parser.add_argument("--generate-only", action="store_true", help="generate (and cache) the data, then stop")
    parser.add_argument("--generate-child", nargs=4, metavar=("OUT", "TX", "CUSTOMERS", "ARTICLES"), help="internal")
    args = parser.parse_args()
    if args.generate_child:
        out, tx, customers, articles = args.generate_child
        return generate_child(out, int(tx), int(customers), int(articles))
    n = sizes(args.scale)
    os.makedirs(args.work_dir, exist_ok=True)
    data = os.path.join(args.work_dir, f"hm-{n['transactions']}-{n['customers']}-{n['articles']}")
    generated = generate(data, n)
    if args.generate_only:
        print(json.dumps(generated, indent=2))
        return
    root = os.path.join(args.work_dir, f"pipeline-{n['transactions']}")
    shutil.rmtree(root, ignore_errors=True)  # no cache, no drift baseline from an earlier run
    cmd = [sys.executable, "-m", "twotower.cli", "run", "--config", "hm", "--data", data, "--pipeline-root", root]
    cmd += ["--beam-workers", str(args.beam_workers)]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    measured = run_measured(cmd, root + ".log", on_line=follow_components)
    report: Dict[str, Any] = {
        **n,
        "scale": args.scale,
        "weeks": DAYS // 7,
        "beam_workers": args.beam_workers,
        "started": started,
        "exit_code": measured["exit_code"],
        "total_wall_s": round(measured["seconds"], 1),
        "peak_rss_mb": round(measured["tree_sum_mb"]),
        "peak_rss_max_process_mb": round(measured["max_process_mb"]),
        "generate": generated,
        "log": root + ".log",
    }
    if measured["exit_code"] == 0:
        report.update(component_rows(root, measured))
    else:
        report["components"] = {
            name: {"peak_rss_mb": round(p.get("tree_sum_mb", 0))} for name, p in measured["phases"].items()
        }
    write_report(args.out, report)
    if measured["exit_code"] != 0:
        sys.exit(f"the pipeline failed (exit {measured['exit_code']}); see {root}.log")


if __name__ == "__main__":
    main()
