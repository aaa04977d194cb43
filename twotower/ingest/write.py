"""Writing what ingestion produced: the splits as gzipped TFRecords, quarantined rows and ``report.json``.

The splits are written straight from the ingest step, without a shuffle: TFX's stock
WriteSplit reshuffles, which on the local runner holds every example in memory. They are
written by TensorFlow's own TFRecord writer at gzip level 1 (``GzipTFRecordSink``), not Beam's
``WriteToTFRecord``: that one compresses at level 6 and frames each record in Python, which
together cost a fifth of ingestion time once examples carry a 50-item history. Nor do they go
through ``beam.io.Write``, which puts every element through two more Python steps (a re-windowing
into the global window, and a writer call that is handed the temporary directory as a side input)
that cost about as much as the write itself; ``WriteGzipTFRecords`` keeps its file protocol without them.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any, Dict, Iterable, Iterator, List

import apache_beam as beam
import tensorflow as tf
from apache_beam import coders
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms import window
from apache_beam.utils.windowed_value import WindowedValue

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


def _make_dir(path: str) -> None:
    """Creates directory ``path`` unless it exists (another worker may be creating it at the same time)."""
    if FileSystems.exists(path):
        return
    try:
        FileSystems.mkdirs(path)
    except OSError:
        if not FileSystems.exists(path):
            raise


class _WriteBundle(beam.DoFn):
    """Writes a bundle's records to one temporary file in ``temp_dir``; emits its path when the bundle ends."""

    def __init__(self, sink: GzipTFRecordSink, temp_dir: str):
        self._sink, self._temp_dir = sink, temp_dir

    def start_bundle(self) -> None:
        self._writer = None

    def process(self, record: bytes) -> Iterable[str]:
        if self._writer is None:
            _make_dir(self._temp_dir)
            self._writer = self._sink.open_writer(self._temp_dir, str(uuid.uuid4()))
        self._writer.temp_handle.write(record)
        return ()  # nothing per record (Beam warns about a process method that returns None)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self._writer is not None:
            yield WindowedValue(self._writer.close(), window.GlobalWindow().max_timestamp(), [window.GlobalWindow()])


def _pre_finalize(_: Any, sink: GzipTFRecordSink, temp_dir: str, written: Iterable[str]) -> List[None]:
    sink.pre_finalize(temp_dir, list(written))  # deletes earlier output files of the same name
    return [None]


def _finalize(_: Any, sink: GzipTFRecordSink, temp_dir: str, written: Iterable[str], __: Any) -> Iterator[str]:
    written = list(written)
    if not written:  # an empty split still gets one (empty) file, as beam.io.Write writes it
        _make_dir(temp_dir)
        written = [sink.open_writer(temp_dir, str(uuid.uuid4())).close()]
    yield from sink.finalize_write(temp_dir, written, None)


class WriteGzipTFRecords(beam.PTransform):
    """Serialized records -> ``PREFIX-SSSSS-of-NNNNN.gz`` (``GzipTFRecordSink``), one file per bundle that wrote.

    The file protocol of ``beam.io.Write`` (temporary files, renamed by a final step once every
    bundle has finished, earlier outputs of the same name deleted first) without its per-element
    steps: the temporary directory is named when the graph is built and created by the first writer,
    and the records are not re-windowed, which ingestion's PCollections, all in the global window,
    do not need. Yields the final file names.
    """

    def __init__(self, file_path_prefix: str):
        super().__init__()
        self._sink = GzipTFRecordSink(file_path_prefix)
        head, tail = FileSystems.split(file_path_prefix)
        self._temp_dir = FileSystems.join(head, f"beam-temp-{tail}-{uuid.uuid1().hex}")

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        once = records.pipeline | "Once" >> beam.Create([None])
        written = (
            records
            | "WriteBundles" >> beam.ParDo(_WriteBundle(self._sink, self._temp_dir))
            | "Pair" >> beam.Map(lambda path: (None, path))
            | "GroupTempFiles" >> beam.GroupByKey()
            | "Extract" >> beam.FlatMap(lambda kv: kv[1])
        )
        pre = once | "PreFinalize" >> beam.FlatMap(
            _pre_finalize, self._sink, self._temp_dir, beam.pvalue.AsIter(written)
        )
        return once | "FinalizeWrite" >> beam.FlatMap(
            _finalize, self._sink, self._temp_dir, beam.pvalue.AsIter(written), beam.pvalue.AsSingleton(pre)
        )


def write_outputs(ingestion: Ingestion, split_dirs: Dict[str, str], quarantine_dir: str) -> None:
    """Adds writes of the splits (gzipped TFRecords), quarantined rows (JSON lines) and report.json."""
    for name, examples in ingestion.splits.items():
        _ = examples | f"Write[{name}]" >> WriteGzipTFRecords(os.path.join(split_dirs[name], EXAMPLES_FILE))
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
