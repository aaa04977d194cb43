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

The memory peaks so far are kept in pipeline-N.peaks.json every 30 s, so a run that is
cut off keeps what it measured. ``--resume`` carries on such a run: it keeps the pipeline root and
runs with ``--cache``, so the components that finished are reused; their rows come from the earlier
run that ran them (whose log and peaks are kept as pipeline-N.log.1 and pipeline-N.peaks.1.json,
the run before it's as .log.2, and so on) and say so; the Trainer's time and rate add up its epochs
over every run.
"""

import argparse
import json
import os
import re
import shutil
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from bench_report import write_report  # bench/bench_report.py
from proc_tree import TREE, TreeSampler, run_measured  # bench/proc_tree.py

from twotower.errors import EXIT_NOT_BLESSED, EXIT_OK

TRANSACTIONS, CUSTOMERS, ARTICLES = 31_788_324, 1_371_980, 105_542
START_DATE, DAYS = "2018-09-20", 7 * 104
# the pipeline's "[i/n] Component ..." and "[i/n] Component done in Xs[ (cached)]" lines:
# (name, state, seconds when done, " (cached)" when its outputs were reused)
PROGRESS = re.compile(r"^\[\d+/\d+\] (\S+) (\.\.\.|done in ([0-9.]+)s( \(cached\))?)$", re.M)


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
        write_json(
            measures,
            {
                "wall_s": round(measured["seconds"], 1),
                "peak_rss_mb": round(measured["tree_sum_mb"]),
                "rows_per_s": rate(n["transactions"], measured["seconds"]),
            },
        )
    return read_json(measures)


def follow_components(line: str, sampler: TreeSampler) -> None:
    """Switches the sampler to the component a progress line starts, and back to none when it is done."""
    match = PROGRESS.match(line.strip())
    if match:
        sampler.phase(match.group(1) if match.group(2) == "..." else None)
        print(line.rstrip(), flush=True)


def write_json(path: str, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)


def read_json(path: str) -> Dict[str, Any]:
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def log_walls(path: str) -> Dict[str, Tuple[float, bool]]:
    """Returns {component: (seconds, cached)} from a pipeline log's progress lines."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        log = f.read()
    return {name: (float(seconds), bool(cached)) for name, _, seconds, cached in PROGRESS.findall(log) if seconds}


RECORD = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ \S+ absl: (.*)$")


def run_records(run_log: str) -> List[Dict[str, Any]]:
    """Returns every run in the pipeline's run.log (TFX appends each run's records), oldest first:
    ``{"wall_s", "cut": component running when it ended or None, "cut_wall_s": that component's time}``
    (the last run's "cut" is whatever ran at its last record)."""
    from twotower.pipeline.local import COMPONENT_STATE

    runs: List[List[Tuple[float, str]]] = []
    with open(run_log, encoding="utf-8") as f:
        for line in f:
            match = RECORD.match(line.rstrip("\n"))
            if not match:
                continue
            when = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
            if match.group(2).startswith("Using deployment config") or not runs:
                runs.append([])
            runs[-1].append((when, match.group(2)))
    out = []
    for records in runs:
        started: Dict[str, float] = {}
        for when, message in records:
            state = COMPONENT_STATE.match(message)
            if state and state.group(2) == "running":
                started[state.group(1)] = when
            elif state:
                started.pop(state.group(1), None)
        end = records[-1][0]
        cut = next(iter(started), None)
        out.append(
            {
                "end": end,
                "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(records[0][0])),
                "wall_s": end - records[0][0],
                "cut": cut,
                "cut_wall_s": end - started[cut] if cut else None,
            }
        )
    return out


def extend_to_peaks(run: Dict[str, Any], peaks_file: str) -> None:
    """Moves the end of an earlier ``run`` cut off in a component to the last time it wrote ``peaks_file``.

    The Trainer runs in a child process whose records do not reach run.log, so a run cut off while
    training ends there at the Trainer's start; its peaks file, written every 30 s until the run
    ended, says how long it went on.
    """
    if not run["cut"] or not os.path.exists(peaks_file):
        return
    extra = max(0.0, os.path.getmtime(peaks_file) - run["end"])
    run["wall_s"] += extra
    run["cut_wall_s"] += extra


# Keras's per-epoch lines (verbose=2): "Epoch 4/4" then "55052/55052 - 1877s - loss: ...". The
# header of a run's very first epoch does not reach the log (seen on every run here), hence optional.
EPOCH = re.compile(r"^(?:Epoch (\d+)/\d+\n)?(\d+)/\d+ - (\d+)s - ", re.M)


def log_epochs(path: str) -> List[Tuple[int, int, float]]:
    """Returns (epoch from 0, steps run, seconds) for each epoch a pipeline log shows ended; an epoch
    without its header line is the one after the previous (the first: epoch 0)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        log = f.read()
    epochs, previous = [], -1
    for header, steps, seconds in EPOCH.findall(log):
        previous = int(header) - 1 if header else previous + 1
        epochs.append((previous, int(steps), float(seconds)))
    return epochs


def epoch_rows(logs: List[str], history: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Returns each training epoch's wall time, steps and rate over every run's log (``logs`` oldest
    first), with its phase and validation recall from the trainer's history."""
    recall = {e["epoch"]: e for e in history.get("epochs", [])}
    batch = {
        epoch: p["batch_size"]
        for p in history.get("phases", [])
        for epoch in range(p["first_epoch"], p["last_epoch"] + 1)
    }
    rows = []
    for log in logs:
        for epoch, steps, seconds in log_epochs(log):
            examples = steps * batch.get(epoch, 0)
            rows.append(
                {
                    "epoch": epoch,
                    "phase": recall.get(epoch, {}).get("phase"),
                    "measured_in": os.path.basename(log),
                    "steps": steps,
                    "wall_s": seconds,
                    "ms_per_step": round(1000 * seconds / steps, 1),
                    "examples_per_s": rate(examples, seconds),
                    "val_recall@50": recall.get(epoch, {}).get("val_recall@50"),
                }
            )
    return rows


def rate(count: Optional[float], seconds: float) -> Optional[float]:
    return None if count is None or seconds <= 0 else round(count / seconds, 1)


def component_rows(root: str, measured: Dict[str, Any]) -> Dict[str, Any]:
    """Returns {components: {NAME: {wall_s, peak_rss_mb, per_s, ...}}, metrics: {model: metrics}, evaluation: {...}}.

    After ``--resume`` a component this run took from the cache gets the row of the latest earlier run
    that ran it; a Trainer cut off and resumed adds the time each earlier run spent in it, and its
    rate is over the epochs every run's log shows.
    """
    from twotower.cli.bench import training_history
    from twotower.pipeline.local import METADATA_FILE, read_result

    result = read_result(os.path.join(root, METADATA_FILE), measured["seconds"], {})
    n_earlier = earlier_runs(root)
    logs = [root + ".log"] + [earlier_log(root, k)[0] for k in range(1, n_earlier + 1)]  # newest first
    walls = [log_walls(log) for log in logs]
    peaks_by_run = [measured["phases"]] + [read_json(earlier_log(root, k)[1]) for k in range(1, n_earlier + 1)]
    earlier = run_records(os.path.join(root, "run.log"))[:-1][-n_earlier:] if n_earlier else []
    for k, run in zip(range(n_earlier, 0, -1), earlier, strict=True):
        extend_to_peaks(run, earlier_log(root, k)[1])
    splits = result.ingestion["splits"]
    history = training_history(root)
    counts = {
        "JoinExampleGen": (result.ingestion["rows_read"], "rows read (all files)"),
        "StatisticsGen": (sum(s["examples"] for s in splits.values()), "examples, every split"),
        "Transform": (splits["train"]["examples"], "train examples analysed"),
        "RetrievalEvaluator": (result.metrics.get("eval_users"), "held-out users"),
    }
    components = {}
    for name in measured["phases"]:
        # the newest run that ran it (not from the cache); this run's when none did
        ran = next((i for i, w in enumerate(walls) if name in w and not w[name][1]), 0)
        wall = walls[ran].get(name, (float("nan"), False))[0]
        peaks = peaks_by_run[ran].get(name, {})
        count, of = counts.get(name, (None, None))
        row = {
            "wall_s": round(wall, 1),
            "peak_rss_mb": round(peaks.get("tree_sum_mb", 0)),  # 0: done before the first sample
            "peak_rss_max_process_mb": round(peaks.get("max_process_mb", 0)),
            "processes": peaks.get("processes", 0),
            "per_s": rate(count, wall),
            "per_s_of": of,
        }
        if ran:
            row["measured_in"] = os.path.basename(logs[ran]) + " (reused here from the cache)"
            if not peaks:
                row["peak_rss_mb"] = row["peak_rss_max_process_mb"] = row["processes"] = None  # not kept
        if name == "Trainer":
            row.update(trainer_row(row, wall, history, logs, earlier))
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
    out = {"components": components, "metrics": result.metrics.get("models"), "evaluation": evaluation}
    if earlier:
        out["earlier_runs"] = [
            {"log": os.path.basename(log), "wall_s": round(run["wall_s"], 1), "cut_in": run["cut"]}
            for log, run in zip(reversed(logs[1:]), earlier, strict=True)
        ]
        for k, run in zip(range(n_earlier, 0, -1), out["earlier_runs"], strict=True):
            kept = peaks_by_run[k]  # the k-th earlier run's peaks file, read above
            if TREE in kept:  # up to the last time it wrote its peaks
                run["peak_rss_mb"] = round(kept[TREE]["tree_sum_mb"])
    return out


def trainer_row(
    row: Dict[str, Any], wall: float, history: Dict[str, Any], logs: List[str], earlier: List[Dict[str, Any]]
) -> Dict[str, Any]:
    """Returns the Trainer row's additions: its rate over the phase loop, its epochs, and after a resume
    the time the earlier runs spent in it."""
    resumed = history.get("resumed_from_step", 0)
    trained = sum(max(0, p["last_step"] - max(p["first_step"], resumed)) * p["batch_size"] for p in history["phases"])
    epochs = epoch_rows(list(reversed(logs)), history)
    extra: Dict[str, Any] = {
        "per_s": round(history["examples_per_s"], 1),
        "per_s_of": "training examples, phase loop",
        "examples_trained": trained,
        "component_examples_per_s": rate(trained, wall),
        "epochs": epochs,
        "validation": {k: history.get("validation", {}).get(k) for k in ("best", "best_epoch", "restored")},
    }
    if resumed:  # from the checkpoints of runs that were cut off while training
        extra["resumed_from_step"] = resumed
        before = sum(run["cut_wall_s"] for run in earlier if run["cut"] == "Trainer")
        extra["earlier_runs_wall_s"] = round(before, 1)
        extra["wall_s_all_runs"] = round(wall + before, 1)
        seconds = sum(e["wall_s"] for e in epochs)
        examples = sum(e["examples_per_s"] * e["wall_s"] for e in epochs if e["examples_per_s"])
        extra.update(per_s=rate(examples, seconds), per_s_of="training examples, every run's epochs")
    return extra


def earlier_log(root: str, k: int) -> Tuple[str, str]:
    """Returns the log and peaks files of the k-th run before the last (1: the one just before)."""
    return f"{root}.log.{k}", f"{root}.peaks.{k}.json"


def earlier_runs(root: str) -> int:
    """Returns how many earlier runs under ``root`` kept their logs (pipeline-N.log.1, .log.2, ...)."""
    k = 0
    while os.path.exists(earlier_log(root, k + 1)[0]):
        k += 1
    return k


def earlier_files(root: str) -> List[str]:
    """Returns the earlier runs' log and peaks files that exist."""
    paths = [p for k in range(1, earlier_runs(root) + 1) for p in earlier_log(root, k)]
    return [p for p in paths if os.path.exists(p)]


def rotate(root: str) -> None:
    """Moves each earlier run's files one number up (.log.1 to .log.2, ...) and the last run's to .1."""
    for k in range(earlier_runs(root), 0, -1):
        for old, new in zip(earlier_log(root, k), earlier_log(root, k + 1), strict=True):
            if os.path.exists(old):
                os.replace(old, new)
    for old, new in zip((root + ".log", root + ".peaks.json"), earlier_log(root, 1), strict=True):
        if os.path.exists(old):
            os.replace(old, new)


def run_pipeline(root: str, data: str, beam_workers: int, resume: bool) -> Dict[str, Any]:
    """Runs the hm pipeline on ``data`` under ``root`` (carrying on the run there with ``resume``); returns
    :func:`run_measured`'s measures."""
    cmd = [sys.executable, "-m", "twotower.cli", "run", "--config", "hm", "--data", data, "--pipeline-root", root]
    cmd += ["--beam-workers", str(beam_workers)]
    if resume:
        if not os.path.exists(root + ".log"):
            sys.exit(f"--resume: no earlier run at {root}")
        rotate(root)
        cmd.append("--cache")
    else:
        shutil.rmtree(root, ignore_errors=True)  # no cache, no drift baseline from an earlier run
        for stale in earlier_files(root):
            os.remove(stale)
    return run_measured(cmd, root + ".log", on_line=follow_components, keep_peaks=root + ".peaks.json")


def measured_before(out: str, root: str) -> Dict[str, Any]:
    """Returns the measures of the run that wrote ``out``: its wall time, exit code and whole-run peaks
    from ``out``, and the per-component peaks that run kept beside its log.

    Without ``out`` (the measuring process died before writing it) they are rebuilt from the last run
    in run.log and the peaks the sampler kept; the exit code is then unknown (None) and the run counts
    as finished when no component was left running.
    """
    prior = read_json(out)
    kept = read_json(root + ".peaks.json")
    phases = {name: peaks for name, peaks in kept.items() if name != TREE}
    if not prior:
        last = run_records(os.path.join(root, "run.log"))[-1] if os.path.exists(os.path.join(root, "run.log")) else {}
        if not last or TREE not in kept:
            sys.exit(f"--report-only: no earlier report at {out}, and no run.log and peaks under {root} to rebuild it")
        return {
            "seconds": last["wall_s"],
            "exit_code": None,
            "finished": last["cut"] is None,
            "tree_sum_mb": kept[TREE]["tree_sum_mb"],
            "max_process_mb": kept[TREE]["max_process_mb"],
            "phases": phases,
            "started": last["started"],
            "resumed": earlier_runs(root) > 0,
        }
    return {
        "seconds": prior.get("this_run_wall_s", prior["total_wall_s"]),
        "exit_code": prior["exit_code"],
        "tree_sum_mb": prior["peak_rss_mb"],
        "max_process_mb": prior["peak_rss_max_process_mb"],
        "phases": phases,
        "started": prior["started"],
        "resumed": prior.get("resumed", False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--work-dir", default="/tmp/twotower-full-scale", help="data (cached) and pipeline root")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the Kaggle sizes (trial runs)")
    parser.add_argument("--beam-workers", type=int, default=2)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="carry on a run that was cut off: reuse its finished components (--cache) and the trainer's checkpoints",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite --out from the last run's logs and peaks under --work-dir, without running (after a change here)",
    )
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
    if args.report_only:
        measured = measured_before(args.out, root)
    else:
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        measured = run_pipeline(root, data, args.beam_workers, args.resume)
        measured.update(started=started, resumed=args.resume)
    report: Dict[str, Any] = {
        **n,
        "scale": args.scale,
        "weeks": DAYS // 7,
        "beam_workers": args.beam_workers,
        "started": measured["started"],
        "exit_code": measured["exit_code"],
        "total_wall_s": round(measured["seconds"], 1),
        "peak_rss_mb": round(measured["tree_sum_mb"]),
        "peak_rss_max_process_mb": round(measured["max_process_mb"]),
        "generate": generated,
        "log": root + ".log",
        "resumed": measured["resumed"],
    }
    # not blessed: the run finished all the same; no exit code: rebuilt from run.log (see measured_before)
    finished = measured.get("finished", measured["exit_code"] in (EXIT_OK, EXIT_NOT_BLESSED))
    if finished:
        report.update(component_rows(root, measured))
        if report["exit_code"] is None:  # rebuilt from run.log: what the command would have returned
            report["exit_code"] = EXIT_OK if report["evaluation"]["pushed"] else EXIT_NOT_BLESSED
            report["exit_code_from"] = "whether a model was pushed (the measuring process died before the run ended)"
        if "earlier_runs" in report:  # the whole run's time: every run's (the earlier ones until they were cut off)
            report["this_run_wall_s"] = report["total_wall_s"]
            runs = report["earlier_runs"]
            report["total_wall_s"] = round(measured["seconds"] + sum(r["wall_s"] for r in runs), 1)
            report["peak_rss_mb"] = max([report["peak_rss_mb"]] + [r.get("peak_rss_mb", 0) for r in runs])
    else:
        report["components"] = {
            name: {"peak_rss_mb": round(p.get("tree_sum_mb", 0))} for name, p in measured["phases"].items()
        }
    write_report(args.out, report)
    if not finished:
        sys.exit(f"the pipeline failed (exit {measured['exit_code']}); see {root}.log")


if __name__ == "__main__":
    main()
