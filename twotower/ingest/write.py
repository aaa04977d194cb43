"""Writing what ingestion produced: the splits as gzipped TFRecords, quarantined rows and ``report.json``.

The splits are written straight from the ingest step, without a shuffle: TFX's stock
WriteSplit reshuffles, which on the local runner holds every example in memory.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

import apache_beam as beam
import tensorflow as tf

from twotower.ingest.graph import Ingestion
from twotower.ingest.report import REPORT_FILE, ROWS_PREFIX

EXAMPLES_FILE = "data_tfrecord"


def write_outputs(ingestion: Ingestion, split_dirs: Dict[str, str], quarantine_dir: str) -> None:
    """Adds writes of the splits (gzipped TFRecords), quarantined rows (JSON lines) and report.json."""
    for name, examples in ingestion.splits.items():
        _ = examples | f"Write[{name}]" >> beam.io.WriteToTFRecord(
            os.path.join(split_dirs[name], EXAMPLES_FILE), file_name_suffix=".gz"
        )
    write_quarantine(ingestion, quarantine_dir)


def write_quarantine(ingestion: Ingestion, directory: str) -> None:
    """Adds writes of the quarantined rows (``rows-*.jsonl``) and ``report.json`` under ``directory``."""
    _ = (
        ingestion.quarantine
        | "QuarantineToJson" >> beam.Map(json.dumps, sort_keys=True)
        | "WriteQuarantine" >> beam.io.WriteToText(os.path.join(directory, ROWS_PREFIX), file_name_suffix=".jsonl")
    )
    _ = ingestion.report | "WriteReport" >> beam.Map(_write_json, os.path.join(directory, REPORT_FILE))


def _write_json(value: Any, path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
