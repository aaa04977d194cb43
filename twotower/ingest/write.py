"""Writing what ingestion produced: the splits as gzipped TFRecords, quarantined rows and ``report.json``.

The splits are written straight from the ingest step, without a shuffle: TFX's stock
WriteSplit reshuffles, which on the local runner holds every example in memory. They are
written by TensorFlow's own TFRecord writer at gzip level 1 (``GzipTFRecordSink``), not Beam's
``WriteToTFRecord``: that one compresses at level 6 and frames each record in Python, which
together cost a fifth of ingestion time once examples carry a 50-item history.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

import apache_beam as beam
import tensorflow as tf
from apache_beam import coders
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes

from twotower.ingest.graph import Ingestion
from twotower.ingest.report import REPORT_FILE, ROWS_PREFIX

EXAMPLES_FILE = "data_tfrecord"
GZIP_LEVEL = 1  # the repetitive examples still shrink about 10x; level 6 took 3-4x the CPU for ~20% less


class GzipTFRecordSink(filebasedsink.FileBasedSink):
    """Gzipped TFRecord files (``PREFIX-SSSSS-of-NNNNN.gz``), each written by ``tf.io.TFRecordWriter``.

    Beam's file-based sink protocol (temporary files, renamed once every bundle has finished), so a
    retried bundle leaves nothing behind; any file system TensorFlow and Beam both know (local, gs://).
    """

    def __init__(self, file_path_prefix: str):
        super().__init__(
            file_path_prefix,
            coder=coders.BytesCoder(),
            file_name_suffix=".gz",
            num_shards=0,
            shard_name_template=None,
            mime_type="application/octet-stream",
            compression_type=CompressionTypes.UNCOMPRESSED,
        )

    def open(self, temp_path: str) -> tf.io.TFRecordWriter:
        options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=GZIP_LEVEL)
        return tf.io.TFRecordWriter(temp_path, options)

    def write_encoded_record(self, file_handle: tf.io.TFRecordWriter, encoded_value: bytes) -> None:
        file_handle.write(encoded_value)


def write_outputs(ingestion: Ingestion, split_dirs: Dict[str, str], quarantine_dir: str) -> None:
    """Adds writes of the splits (gzipped TFRecords), quarantined rows (JSON lines) and report.json."""
    for name, examples in ingestion.splits.items():
        _ = examples | f"Write[{name}]" >> beam.io.Write(
            GzipTFRecordSink(os.path.join(split_dirs[name], EXAMPLES_FILE))
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
