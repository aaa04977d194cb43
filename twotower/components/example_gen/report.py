"""The ingestion report: accounting checks, the quarantine limit, and a summary a person can read."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any, Dict, Iterator, List, Mapping

import tensorflow as tf

from twotower.components.example_gen.csv_source import DataError
from twotower.config import Profile

REPORT_FILE = "report.json"
ROWS_PREFIX = "rows"  # quarantined rows: rows-SSSSS-of-NNNNN.jsonl


class QuarantineLimitExceeded(DataError):
    """More of a file's rows were quarantined than the profile's contract allows."""


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
