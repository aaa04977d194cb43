"""The ingestion report: accounting per file and split, its checks, the quarantine limit, a readable summary."""

from __future__ import annotations

import collections
import itertools
import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import tensorflow as tf

from twotower.config import Profile, SplitConfig
from twotower.errors import DataError, QuarantineLimitExceeded
from twotower.ingest.splits import Boundaries, day

REPORT_FILE = "report.json"
ROWS_PREFIX = "rows"  # quarantined rows: rows-SSSSS-of-NNNNN.jsonl


def sum_counts(parts: Iterable[collections.Counter]) -> collections.Counter:
    """Returns the sum of per-chunk counters keyed (file, "read" | "accepted" | ... | "kind:<reason>")."""
    total: collections.Counter = collections.Counter()
    for part in parts:
        total.update(part)
    return total


def make_report(
    counts: Mapping[Tuple[str, str], int],
    split_stats: Mapping[str, List[int]],
    boundaries: Boundaries,
    files: Iterable[str],
    splits: Iterable[str],
    table_sizes: Mapping[str, int],
    split_config: Optional[SplitConfig] = None,
) -> Dict[str, Any]:
    """Returns the ingestion report: per-file accounting, totals, and per-split sizes and date ranges.

    ``table_sizes``: the examples of the splits that are not interactions (catalog, histories).
    """
    per_file = {}
    for name in files:
        entry = {key: int(counts.get((name, key), 0)) for key in ("read", "accepted", "quarantined", "duplicates")}
        kinds = sorted((k[5:], int(v)) for (f, k), v in counts.items() if f == name and k.startswith("kind:"))
        entry["reasons"] = dict(kinds)
        per_file[name] = entry
    split_report = {}
    for split in splits:
        if split in table_sizes:
            split_report[split] = {"examples": int(table_sizes[split])}
            continue
        n, lo, hi = split_stats.get(split, [0, None, None])
        split_report[split] = {"examples": n, "first": day(lo), "last": day(hi)}
    total = lambda key: sum(f[key] for f in per_file.values())  # noqa: E731
    return {
        "rows_read": total("read"),
        "rows_accepted": total("accepted"),
        "rows_quarantined": total("quarantined"),
        "duplicates_removed": total("duplicates"),
        "files": per_file,
        "splits": split_report,
        "boundaries": (
            {
                "mode": "per_user",
                "eval_fraction": split_config.eval_fraction,
                "test_fraction": split_config.test_fraction,
            }
            if split_config is not None and split_config.mode == "per_user"
            else {"eval_start": day(boundaries.eval_start), "test_start": day(boundaries.test_start)}
        ),
    }


def read_report(directory: str) -> Dict[str, Any]:
    """Returns the ingestion report written to ``directory``."""
    with tf.io.gfile.GFile(os.path.join(directory, REPORT_FILE), "r") as f:
        return json.load(f)


def quarantined_rows(directory: str) -> Iterator[Dict[str, Any]]:
    """Yields the quarantine entries ``{file, line, kind, reason, row}`` under ``directory``, by file and line."""
    entries: List[Dict[str, Any]] = []
    for path in sorted(tf.io.gfile.glob(os.path.join(directory, ROWS_PREFIX + "*.jsonl"))):
        with tf.io.gfile.GFile(path, "r") as f:
            entries.extend(json.loads(line) for line in f if line.strip())
    yield from sorted(entries, key=lambda e: (e["file"], e["line"]))


def check_accounting(report: Mapping[str, Any]) -> None:
    """Raises AssertionError if any file's rows read != accepted + quarantined + duplicates (a bug, not bad data)."""
    for name, f in report["files"].items():
        if f["read"] != f["accepted"] + f["quarantined"] + f["duplicates"]:
            raise AssertionError(
                f"{name}: accounting does not add up: read {f['read']} != accepted {f['accepted']} + "
                f"quarantined {f['quarantined']} + duplicates {f['duplicates']} (please report this bug)"
            )


def over_limit(report: Mapping[str, Any], profile: Profile) -> List[str]:
    """Returns the files whose quarantined share exceeds ``contract.max_quarantine_fraction``."""
    limit = profile.contract.max_quarantine_fraction
    return [n for n, f in report["files"].items() if f["read"] and f["quarantined"] / f["read"] > limit]


def empty_splits(report: Mapping[str, Any]) -> List[str]:
    """Returns the splits without a single example."""
    return [name for name, s in report["splits"].items() if s["examples"] == 0]


def format_report(report: Mapping[str, Any], samples: List[Dict[str, Any]] = ()) -> str:
    """Returns the report as aligned text: per-file accounting, top reasons, splits, and sample rows."""
    lines = [f"{'file':<28}{'read':>11}{'accepted':>11}{'quarantined':>13}{'duplicates':>12}"]
    for name, f in report["files"].items():
        share = f"{f['quarantined'] / f['read']:.1%}" if f["read"] else "-"
        lines.append(
            f"{name:<28.28}{f['read']:>11,}{f['accepted']:>11,}{f['quarantined']:>13,}{f['duplicates']:>12,}  ({share})"
        )
        for kind, n in sorted(f["reasons"].items(), key=lambda kv: -kv[1]):
            lines.append(f"    {n:>9,}  {kind}")
    lines.append("splits:")
    for name, s in report["splits"].items():
        dates = f"  {s['first']} .. {s['last']}" if s.get("first") else ""
        lines.append(f"    {name:<8}{s['examples']:>11,} examples{dates}")
    if samples:
        lines.append("first quarantined rows:")
        lines += [f"    {e['file']}:{e['line']}: {e['reason']}" for e in samples]
    return "\n".join(lines)


def check_report(report: Mapping[str, Any], profile: Profile, directory: str) -> None:
    """Raises if accounting fails, a file is over the quarantine limit, or a split is empty; names the files."""
    check_accounting(report)
    bad = over_limit(report, profile)
    if bad:
        samples = list(itertools.islice(quarantined_rows(directory), 5))
        raise QuarantineLimitExceeded(
            f"{', '.join(bad)}: more than {profile.contract.max_quarantine_fraction:.0%} of rows quarantined "
            f"(contract.max_quarantine_fraction in {profile.path or profile.name}); nothing was written downstream.\n"
            f"{format_report(report, samples)}\nall quarantined rows: {os.path.join(directory, ROWS_PREFIX)}*.jsonl"
        )
    empty = empty_splits(report)
    if empty:
        raise DataError(
            f"split(s) {empty} are empty: boundaries {report['boundaries']}; check split.* in "
            f"{profile.path or profile.name} against the data's dates\n{format_report(report)}"
        )
