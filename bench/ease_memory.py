"""Benchmark: EASE's weights, peak memory and time: a general inverse (before) against the in-place Cholesky (now).

    .venv/bin/python bench/ease_memory.py --items 12000 --users 150000 --per-user 23 --out F

Random (user, item) pairs, ``--per-user`` for each user, items drawn by a Zipf-like popularity so that
XᵀX is as dense as a real catalogue's. Each way runs in its own process; peak RSS is the process's
``ru_maxrss`` minus its RSS before the pairs were made. "before" is the code ``ease_weights`` ran up
to 2026-12-03: XᵀX as one sparse product made dense, ``np.linalg.inv``, then the scaling.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import scipy.sparse
from proc_tree import own_rss_mb  # bench/proc_tree.py

WAYS = ("before", "now")


def before(user_index: np.ndarray, item_index: np.ndarray, n_items: int, l2: float) -> np.ndarray:
    """ease_weights as it was: dense Gram from one sparse product, a general inverse beside it."""
    users, rows = np.unique(user_index, return_inverse=True)
    x = scipy.sparse.csr_matrix((np.ones(rows.size), (rows, item_index)), shape=(users.size, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    gram = (x.T @ x).toarray()
    gram[np.diag_indices(n_items)] += l2
    p = np.linalg.inv(gram)
    del gram
    p /= -np.diag(p)[np.newaxis, :]
    p[np.diag_indices(n_items)] = 0.0
    return p.astype(np.float32)


def measure(way: str, items: int, users: int, per_user: int) -> dict:
    from twotower.evaluation.baselines import ease_weights

    start_mb = own_rss_mb()
    rng = np.random.default_rng(0)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    user_index = np.repeat(np.arange(users), per_user)
    item_index = rng.choice(items, size=users * per_user, p=popularity / popularity.sum())
    started, cpu = time.monotonic(), time.process_time()
    weights = (before if way == "before" else ease_weights)(user_index, item_index, items, 300.0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "way": way,
        "wall_s": round(time.monotonic() - started, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "peak_rss_mb": round(peak_mb - start_mb),
        "one_float64_matrix_mb": round(items * items * 8 / 2**20),
        "checksum": float(np.abs(weights).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=12000)
    parser.add_argument("--users", type=int, default=150000)
    parser.add_argument("--per-user", type=int, default=23)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [str(args.items), "--users", str(args.users), "--per-user", str(args.per_user)]
    if args.child:
        print(json.dumps(measure(args.child, args.items, args.users, args.per_user)))
        return
    from bench_report import write_report  # bench/bench_report.py

    rows = []
    for way in WAYS:
        command = [sys.executable, __file__, "--items", *sizes, "--out", "-", "--child", way]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    same = abs(rows[0]["checksum"] - rows[1]["checksum"]) <= 1e-4 * rows[0]["checksum"]
    write_report(
        args.out,
        {"items": args.items, "users": args.users, "per_user": args.per_user, "ways": rows, "same_weights": same},
    )


if __name__ == "__main__":
    main()
