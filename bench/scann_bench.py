"""Benchmark: the pushed ScaNN index vs exact brute force, side by side, at 100k and 1M items.

    .venv/bin/python bench/scann_bench.py --out bench/results/scann.json

Embeddings are synthetic clustered unit vectors of the model's width (64 by
default, the movielens profile; hm's is 32), not a trained tower's: the repo's
catalogues have at most a few thousand items. ``n // 100`` cluster centres are
drawn from a Gaussian whose per-axis scale decays as ``(axis + 1) ** -decay``
in a random rotation, items are centre + the same-shaped noise, all L2-normalised.
``decay`` sets the intrinsic dimensionality, reported as the participation ratio
PR = (sum eigenvalues)^2 / sum eigenvalues^2 of the items' covariance:

- ``calibrated`` (decay 0.75, PR ~8): what trained towers of this repo measure
  (``--reference-model`` prints theirs: 5.6 to 8.0);
- ``conservative`` (decay 0.5, PR ~18): twice as spread as any trained tower measured;
- ``isotropic`` (decay 0, PR ~60): clusters in every direction, the worst case.

Queries come from the same mixture (fresh draws): 1,000 to tune the index
(``scann_index.build_index``, as the trainer does with query-tower embeddings)
and 1,000 others to measure. For each catalogue, in one process:

- brute force: ``tf.math.top_k`` over the ``[256, n]`` score matrix of a
  ``tf.function`` (what the model's ``serving_default`` does, and TFRS's
  BruteForce layer); its answers are the exact top-100;
- ScaNN: ``Index.search`` of the index as saved and loaded back (ids and names
  gathered too, as the server calls it);
- queries/s over the 1,000 measured queries: brute force and ScaNN passes
  alternate (``--passes`` each), so both meet the same other jobs; the best
  pass of each counts, and the least CPU seconds a query took (process CPU
  time, all threads), whose ratio does not depend on how many cores other
  jobs left free. ScaNN also in calls of 32 queries (the server's largest
  batch by default);
- single-query latency p50/p99 (one query per call), Recall@100 vs exact,
  index build and tune seconds, index size on disk, the RSS a fresh process
  grows by loading it, peak RSS.

The machine's load average is recorded: other jobs share its 2 cores.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Callable, Dict, List, Tuple  # noqa: E402

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import tensorflow as tf  # noqa: E402

from twotower.export import scann_index, scann_tune  # noqa: E402

DATASETS = {"calibrated": 0.75, "conservative": 0.5, "isotropic": 0.0}
K = 100
BATCH = 256


def synthetic(n: int, queries: int, dim: int, decay: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (items ``[n, dim]``, queries ``[queries, dim]``) float32 unit vectors (module docstring)."""
    rng = np.random.default_rng(seed)
    scales = (1.0 + np.arange(dim)) ** -decay
    scales *= np.sqrt(dim) / np.linalg.norm(scales)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    clusters = max(10, n // 100)
    centres = (rng.standard_normal((clusters, dim)) * scales) @ basis
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, dim), np.float32)
        for start in range(0, m, 100_000):  # in chunks: float64 temporaries of 1M x 64 would be 0.5 GB each
            rows = min(100_000, m - start)
            x = centres[rng.integers(0, clusters, rows)]
            x += (rng.standard_normal((rows, dim)) * scales / np.sqrt(dim)) @ basis
            out[start : start + rows] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    return draw(n), draw(queries)


def participation_ratio(x: np.ndarray) -> float:
    """Returns (sum eigenvalues)^2 / sum eigenvalues^2 of the covariance of ``x`` ``[n, dim]``."""
    eigenvalues = np.linalg.eigvalsh(np.cov(x.T.astype(np.float64)))
    return float(eigenvalues.sum() ** 2 / (eigenvalues**2).sum())


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles_ms(seconds: List[float]) -> Dict[str, float]:
    return {f"p{p}_ms": round(float(np.percentile(seconds, p)) * 1e3, 4) for p in (50, 99)}


def interleaved(fns: Dict[str, Callable], queries: np.ndarray, passes: int) -> Dict[str, Dict[str, float]]:
    """Returns, per name, the best queries/s and least CPU microseconds a query of ``passes`` calls of
    ``fn(queries)``, the functions taking turns (after one warm-up call each)."""
    for fn in fns.values():
        fn(queries[:BATCH])
    out = {name: {"qps": 0.0, "cpu_us_per_query": float("inf")} for name in fns}
    for _ in range(passes):
        for name, fn in fns.items():
            cpu, started = time.process_time(), time.perf_counter()
            fn(queries)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            out[name]["qps"] = max(out[name]["qps"], round(len(queries) / wall, 1))
            out[name]["cpu_us_per_query"] = min(out[name]["cpu_us_per_query"], round(cpu / len(queries) * 1e6, 1))
    return out


def latencies(fn, queries: np.ndarray, count: int) -> List[float]:
    """Returns the seconds of ``fn(one query [1, dim])`` for the first ``count`` queries."""
    fn(queries[:1])
    out = []
    for q in queries[:count]:
        started = time.perf_counter()
        fn(q[None])
        out.append(time.perf_counter() - started)
    return out


_LOAD = """
import json, os, sys, time
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import psutil
from twotower.export import scann_index
rss = lambda: psutil.Process().memory_info().rss / 2**20
before, started = rss(), time.perf_counter()
index = scann_index.load_index(sys.argv[1])
print(json.dumps({"before": before, "after": rss(), "seconds": round(time.perf_counter() - started, 3)}))
"""


def load_in_child(version_dir: str) -> Dict[str, float]:
    """Returns RSS (MB) before/after ``load_index`` and its seconds, in a fresh process (no reused heap)."""
    out = subprocess.run([sys.executable, "-c", _LOAD, version_dir], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def brute_force(embeddings: np.ndarray):
    """Returns ``search(queries [m, dim]) -> indices [m, K]`` by tf.math.top_k over ``[BATCH, n]`` score matrices."""
    table = tf.constant(embeddings)

    @tf.function(input_signature=[tf.TensorSpec([None, embeddings.shape[1]], tf.float32)])
    def top_k(queries):
        return tf.math.top_k(tf.matmul(queries, table, transpose_b=True), k=K).indices

    def search(queries: np.ndarray) -> np.ndarray:
        return np.concatenate([top_k(queries[i : i + BATCH]).numpy() for i in range(0, len(queries), BATCH)])

    return search


def run(name: str, n: int, dim: int, seed: int, queries: int, passes: int) -> Dict:
    """Returns the measurements of one catalogue (see module docstring)."""
    decay = DATASETS[name]
    started = time.monotonic()
    items, all_queries = synthetic(n, 2 * queries, dim, decay, seed)
    tune_queries, test_queries = all_queries[:queries], all_queries[queries:]
    result: Dict = {"dataset": name, "items": n, "dim": dim, "decay": decay, "clusters": max(10, n // 100)}
    result["participation_ratio"] = round(participation_ratio(items[:100_000]), 2)
    result["load_average_start"] = os.getloadavg()

    search = brute_force(items)
    exact = search(test_queries)
    top_scores = np.einsum("qd,qkd->qk", test_queries, items[exact])
    result["query_score_top1"] = round(float(top_scores[:, 0].mean()), 4)
    result["query_score_top100"] = round(float(top_scores[:, -1].mean()), 4)

    ids = np.array([b"item-%07d" % i for i in range(n)])
    names = np.array([b"synthetic item %d" % i for i in range(n)])
    rss_before_build = rss_mb()
    index = scann_index.build_index(ids, names, items, k=K, queries=tune_queries, seed=seed)
    rss_built = rss_mb()
    info = index.info
    tmp = tempfile.mkdtemp(prefix="scann_bench_")
    try:
        scann_index.save_index(index, os.path.join(tmp, scann_index.INDEX_DIR))
        disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp) for f in fs)
        loading = load_in_child(tmp)
        index = scann_index.load_index(tmp)
    finally:
        shutil.rmtree(tmp)

    def scann_search(q: np.ndarray) -> np.ndarray:
        return index.search(q, K)

    def scann_search_32(q: np.ndarray) -> None:
        for start in range(0, len(q), 32):
            index.search(q[start : start + 32], K)

    fns = {"brute_force": search, "scann": scann_search, "scann_32": scann_search_32}
    speeds = interleaved(fns, test_queries, passes)
    bf = dict(speeds["brute_force"])
    bf.update(percentiles_ms(latencies(search, test_queries, 100 if n >= 500_000 else 300)))
    result["brute_force"] = bf
    del search
    gc.collect()
    found, _ = index.search_indices(test_queries, K)
    scann = {
        "kind": info["kind"],
        "config": info.get("config"),
        "tuned_recall_at_100": info["recall_at_k"],
        "tuned_recall_lower_bound": info.get("recall_lower_bound"),
        "recall_at_100": round(scann_index.recall(found, exact), 4),
        "recall_standard_error": round(scann_tune.standard_error(scann_tune.per_query_recall(found, exact)), 4),
        **speeds["scann"],
        "qps_in_calls_of_32": speeds["scann_32"]["qps"],
        "build_seconds": info["build_seconds"],
        "tune_seconds": info.get("tune_seconds", 0.0),
        "index_disk_mb": round(disk / 2**20, 1),
        "rss_growth_on_build_mb": round(rss_built - rss_before_build, 1),
        "load_seconds": loading["seconds"],
        "rss_of_loaded_index_mb": round(loading["after"] - loading["before"], 1),
    }
    scann.update(percentiles_ms(latencies(scann_search, test_queries, len(test_queries))))
    result["scann"] = scann
    result["speedup_qps"] = round(scann["qps"] / bf["qps"], 1)
    result["speedup_cpu"] = round(bf["cpu_us_per_query"] / scann["cpu_us_per_query"], 1)
    result["meets_target"] = bool(
        scann["recall_at_100"] >= 0.95 and result["speedup_qps"] >= 50 and scann["p50_ms"] <= 1.0
    )
    result["load_average_end"] = os.getloadavg()
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def reference(model_dir: str) -> Dict:
    """Returns the participation ratio and nearest-neighbour cosines of a trained model's catalogue embeddings."""
    embeddings = tf.saved_model.load(model_dir).item_embeddings.numpy()
    scores = embeddings @ embeddings.T
    np.fill_diagonal(scores, -2.0)
    scores.sort(axis=1)
    return {
        "model": model_dir,
        "items": len(embeddings),
        "dim": int(embeddings.shape[1]),
        "participation_ratio": round(participation_ratio(embeddings), 2),
        "nn1_cosine": round(float(scores[:, -1].mean()), 4),
        "nn10_cosine": round(float(scores[:, -10].mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--sizes", default="100000,1000000", help="catalogue sizes, comma-separated")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"some of {sorted(DATASETS)}")
    parser.add_argument("--dim", type=int, default=64, help="embedding width (the model's: 32 hm, 64 movielens)")
    parser.add_argument("--queries", type=int, default=1000, help="queries to tune on, and as many to measure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--passes", type=int, default=5, help="timed passes of each search, taking turns")
    parser.add_argument("--reference-model", action="append", default=[], help="a trained model dir to describe")
    args = parser.parse_args()
    references = [reference(m) for m in args.reference_model]
    runs = []
    for name in args.datasets.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            runs.append(run(name, n, args.dim, args.seed, args.queries, args.passes))
            print(json.dumps(runs[-1]), flush=True)
            gc.collect()
    doc = {
        "command": " ".join(["bench/scann_bench.py"] + sys.argv[1:]),
        "arguments": vars(args),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__},
        "runs": runs,
        "reference_models": references,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
