"""``twotower validate``: ingestion and the data contract alone, in one Beam job, for data producers' CI.

The same ingestion graph as JoinExampleGen (quarantine, accounting, splits) feeds
TFDV statistics directly, without writing examples, and the statistics are
checked with the same function the pipeline's DataGate uses. Output directory:

- ``validation.json``: rows_read, rows_accepted, rows_quarantined,
  duplicates_removed, files, splits, quarantine [{file, line, reason}],
  anomalies [{split, feature, kind, description}], passed
- ``quarantine.jsonl``: every quarantined row with its file, line, kind and reason
- ``statistics/Split-<name>/FeatureStats.pb``: TFDV statistics, usable as a
  drift baseline (``twotower drift --baseline``)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional

import apache_beam as beam
import tensorflow_data_validation as tfdv
from apache_beam.options.pipeline_options import PipelineOptions
from tfx_bsl.public import tfxio

from twotower.config import Profile
from twotower.ingest.graph import beam_args, build_ingestion
from twotower.ingest.report import (
    check_accounting,
    empty_splits,
    over_limit,
    quarantined_rows,
    read_report,
)
from twotower.ingest.splits import TABLE_SPLITS
from twotower.ingest.write import write_quarantine
from twotower.schema.checks import check_statistics, is_drift
from twotower.schema.contract import contract_schema, profile_ranges
from twotower.schema.drift import load_statistics

VALIDATION_FILE = "validation.json"
QUARANTINE_FILE = "quarantine.jsonl"
STATISTICS_DIR = "statistics"
STATS_FILE = "FeatureStats.pb"
MAX_LISTED = 10_000  # quarantine entries listed in validation.json; quarantine.jsonl has all


@dataclasses.dataclass(frozen=True)
class Validation:
    """What ``validate`` found; ``summary`` is validation.json's content."""

    passed: bool
    summary: Dict[str, Any]
    out_dir: str


def statistics_path(out_dir: str, split: str) -> str:
    """Returns where ``ingest_and_profile`` writes the statistics of ``split``."""
    return os.path.join(out_dir, STATISTICS_DIR, f"Split-{split}", STATS_FILE)


def ingest_and_profile(profile: Profile, data_dir: str, out_dir: str, beam_workers: int = 0) -> Dict[str, Any]:
    """Runs ingestion + TFDV statistics; writes quarantine.jsonl and statistics/; returns the ingestion report."""
    os.makedirs(out_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="ingest-", dir=out_dir)
    try:
        with beam.Pipeline(options=PipelineOptions(beam_args(beam_workers))) as pipeline:
            ingestion = build_ingestion(
                pipeline, data_dir, profile, profile_ranges(profile), scratch_dir=os.path.join(scratch, "by_user")
            )
            write_quarantine(ingestion, scratch)
            for split, examples in ingestion.splits.items():
                source = tfxio.TFExampleBeamRecord(physical_format="inmem", telemetry_descriptors=["twotower"])
                path = statistics_path(out_dir, split)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                _ = (
                    examples
                    | f"ToRecordBatches[{split}]" >> source.BeamSource()
                    | f"Statistics[{split}]" >> tfdv.GenerateStatistics(tfdv.StatsOptions())
                    | f"WriteStatistics[{split}]" >> tfdv.WriteStatisticsToBinaryFile(path)
                )
        report = read_report(scratch)
        with open(os.path.join(out_dir, QUARANTINE_FILE), "w", encoding="utf-8") as f:
            for entry in quarantined_rows(scratch):
                f.write(json.dumps(entry, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def run_validate(
    profile: Profile,
    data_dir: str,
    out_dir: str,
    baseline_dir: Optional[str] = None,
    accept_drift: bool = False,
    beam_workers: int = 0,
) -> Validation:
    """Validates the CSVs in ``data_dir`` against ``profile``'s contract; writes ``out_dir`` (module docstring).

    ``baseline_dir``: an earlier ``validate`` output directory; its train statistics are the drift baseline.
    Passes when accounting holds, no file is over the quarantine limit, no split is empty and no split
    has an anomaly (drift only counts unless ``accept_drift``).
    """
    report = ingest_and_profile(profile, data_dir, out_dir, beam_workers)
    check_accounting(report)
    schema = contract_schema(profile)
    anomalies: List[Dict[str, Any]] = []
    for split in report["splits"]:
        if split in TABLE_SPLITS or schema is None:
            continue
        stats = tfdv.load_stats_binary(statistics_path(out_dir, split))
        baseline = None
        if baseline_dir and split == "train":
            baseline = load_statistics(os.path.join(baseline_dir, STATISTICS_DIR), split)
        anomalies += [{"split": split, **a} for a in check_statistics(stats, schema, profile, baseline)]
    drift = [a for a in anomalies if is_drift(a)]
    violations = len(anomalies) - len(drift)
    problems = {
        "quarantine_over_limit": over_limit(report, profile),
        "empty_splits": empty_splits(report),
        "contract_violations": violations,
        "drifted_features": sorted({a["feature"] for a in drift}),
    }
    passed = not (
        problems["quarantine_over_limit"] or problems["empty_splits"] or violations or (drift and not accept_drift)
    )
    quarantine = []
    with open(os.path.join(out_dir, QUARANTINE_FILE), encoding="utf-8") as f:
        for line in itertools.islice(f, MAX_LISTED):
            entry = json.loads(line)
            quarantine.append({"file": entry["file"], "line": entry["line"], "reason": entry["reason"]})
    summary = {
        "passed": passed,
        "profile": profile.name,
        "data": os.path.abspath(data_dir),
        "schema": profile.contract.schema or None,
        **report,
        "problems": problems,
        "quarantine": quarantine,
        "quarantine_listed": len(quarantine),
        "anomalies": anomalies,
    }
    with open(os.path.join(out_dir, VALIDATION_FILE), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
    return Validation(passed=passed, summary=summary, out_dir=out_dir)


def statistics_of(source: str, profile: Profile, work_dir: str, split: str = "train") -> Any:
    """Returns the DatasetFeatureStatisticsList of ``split`` of ``source``.

    ``source`` is a directory with the profile's CSV files (ingested and profiled
    into ``work_dir``), or statistics: a StatisticsGen artifact, a ``validate``
    output directory, a ``Split-*`` directory or a statistics file.
    """
    if os.path.isfile(os.path.join(source, profile.data.interactions)):
        ingest_and_profile(profile, source, work_dir)
        return tfdv.load_stats_binary(statistics_path(work_dir, split))
    if os.path.isdir(os.path.join(source, STATISTICS_DIR)):
        source = os.path.join(source, STATISTICS_DIR)
    return load_statistics(source, split)
