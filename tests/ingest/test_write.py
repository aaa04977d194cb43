"""Writing the splits: ``WriteGzipTFRecords`` keeps ``beam.io.Write``'s file names and protocol."""

import os

import apache_beam as beam
import pytest
import tensorflow as tf

from twotower.ingest import graph, write


def _records(directory):
    paths = sorted(tf.io.gfile.glob(os.path.join(directory, write.EXAMPLES_FILE + "-*")))
    return paths, [r.numpy() for r in tf.data.TFRecordDataset(paths, compression_type="GZIP")]


@pytest.mark.parametrize("workers", [0, 2])
def test_writes_every_record_once_in_sharded_gzip_files(tmp_path, workers):
    records = [f"record {i}".encode() * (i % 7) for i in range(5000)]
    with beam.Pipeline(argv=graph.beam_args(workers)) as p:
        _ = p | beam.Create(records) | write.WriteGzipTFRecords(str(tmp_path / "out" / write.EXAMPLES_FILE))
    paths, got = _records(str(tmp_path / "out"))
    assert sorted(got) == sorted(records)
    n = len(paths)
    assert [os.path.basename(path) for path in paths] == [f"data_tfrecord-{i:05d}-of-{n:05d}.gz" for i in range(n)]
    assert sorted(os.listdir(tmp_path / "out")) == [os.path.basename(path) for path in paths]  # no temporary dir left


def test_an_empty_split_gets_one_empty_file_like_beam_io_write(tmp_path):
    with beam.Pipeline() as p:
        empty = p | beam.Create([b"x"]) | beam.Filter(lambda _: False)
        _ = empty | "New" >> write.WriteGzipTFRecords(str(tmp_path / "new" / write.EXAMPLES_FILE))
        _ = empty | "Beam" >> beam.io.Write(write.GzipTFRecordSink(str(tmp_path / "beam" / write.EXAMPLES_FILE)))
    assert (
        sorted(os.listdir(tmp_path / "new"))
        == sorted(os.listdir(tmp_path / "beam"))
        == ["data_tfrecord-00000-of-00001.gz"]
    )
    assert _records(str(tmp_path / "new"))[1] == []


def test_rewriting_replaces_the_earlier_files(tmp_path):
    prefix = str(tmp_path / write.EXAMPLES_FILE)
    for records in ([b"old"] * 3, [b"new"]):
        with beam.Pipeline() as p:
            _ = p | beam.Create(records) | write.WriteGzipTFRecords(prefix)
    assert _records(str(tmp_path))[1] == [b"new"]
