"""Benchmark: the RetrievalEvaluator's stages, each timed, on a finished pipeline's model and examples.

    .venv/bin/python bench/evaluator_stages.py --pipeline-root R --config hm --out F

Runs ``twotower.evaluation.evaluate``'s steps one by one in this process, as the evaluator
component runs them (known interactions: train + eval; held out: test), and records each
step's wall and CPU seconds and the process's resident memory after it and at its peak
(``proc_tree.TreeSampler``, 5 samples a second). The model is the newest under ``R/Trainer/model``; the examples are
the newest JoinExampleGen output. For the full-size run of ``hm_full_scale.py``, where the
evaluator is the stage the issue's 10-minute target applies to.
"""

import argparse
import glob
import os
import time
from typing import Any, Callable, Dict

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import psutil  # noqa: E402
from bench_report import write_report  # noqa: E402  (bench/bench_report.py)
from proc_tree import TreeSampler  # noqa: E402  (bench/proc_tree.py)


class Stages:
    """Times named steps; keeps each one's wall/CPU seconds and this process's RSS after it and at its peak."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.sampler = TreeSampler(self.process.pid, interval=0.2)
        self.rows: Dict[str, Dict[str, float]] = {}

    def run(self, name: str, step: Callable[[], Any]) -> Any:
        self.sampler.phase(name)
        wall, cpu = time.monotonic(), time.process_time()
        value = step()
        self.rows[name] = {"wall_s": round(time.monotonic() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1)}
        self.sampler.phase(None)
        rss = self.process.memory_info().rss / 2**20
        self.rows[name]["rss_after_mb"] = round(rss)
        self.rows[name]["peak_rss_mb"] = round(max(rss, self.sampler.snapshot()[name].get("max_process_mb", 0)))
        print(name, self.rows[name], flush=True)
        return value


def newest_output(pipeline_root: str, component: str, artifact: str) -> str:
    """Returns the newest output directory ``COMPONENT/ARTIFACT/N`` of a component under the root."""
    paths = glob.glob(os.path.join(pipeline_root, component, artifact, "*"))
    if not paths:
        raise SystemExit(f"no {component} output under {pipeline_root}")
    return max(paths, key=os.path.getmtime)


def newest_examples(pipeline_root: str) -> str:
    """Returns the newest JoinExampleGen output directory (``JoinExampleGen/examples/N``) under the root."""
    return newest_output(pipeline_root, "JoinExampleGen", "examples")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline-root", required=True, help="a finished `twotower run`'s pipeline root")
    parser.add_argument("--config", default="hm", help="the profile the run used")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    import tensorflow as tf

    from twotower.cli.bench import newest_model_dir
    from twotower.config import load_profile
    from twotower.evaluation import evaluate as e
    from twotower.evaluation import metrics
    from twotower.evaluation.baseline_lists import baseline_lists
    from twotower.evaluation.held_out import input_specs, read_held_out

    root = args.pipeline_root
    model_dir, examples = newest_model_dir(root), newest_examples(root)

    def split(name: str) -> str:
        return os.path.join(examples, f"Split-{name}", "*")

    profile = load_profile(args.config)
    ev, s = profile.evaluator, Stages()
    started = time.monotonic()
    loaded = s.run("load model", lambda: tf.saved_model.load(model_dir))
    inputs = input_specs(loaded.signatures["serving_default"])
    held = s.run(
        "read held-out and known examples",
        lambda: read_held_out(profile, inputs, [split("train"), split("eval")], [split("test")], [split("catalog")]),
    )
    k = max(ev.ks)
    lists = {"twotower": s.run("model lists", lambda: e.model_lists(loaded, held, k, check_served=True))}
    lists.update(s.run("baseline lists", lambda: baseline_lists(profile, held, k)[0]))
    n = len(held.catalogue)
    s.run("metric tables", lambda: {m: metrics.metric_table(r, held.truth, ev.ks, n) for m, r in lists.items()})
    s.run("recall curves", lambda: {m: metrics.recall_curve(r, held.truth, k) for m, r in lists.items()})
    s.run("bootstrap", lambda: e._bootstrap(lists, held.truth, ev))
    s.run("cold start", lambda: e.cold_start(lists, held, ev))
    write_report(
        args.out,
        {
            "model_dir": model_dir,
            "eval_users": len(held.users),
            "catalogue_size": n,
            "known_interactions": int(len(held.known_items)),
            "baselines": [name for name in lists if name != "twotower"],
            "total_wall_s": round(time.monotonic() - started, 1),
            "stages": s.rows,
        },
    )


if __name__ == "__main__":
    main()
