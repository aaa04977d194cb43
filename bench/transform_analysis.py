"""Benchmark: Transform's analysis pass alone (TFT AnalyzeDataset over the train split), wall and CPU time.

    .venv/bin/python bench/transform_analysis.py --pipeline-root R --config hm --out F

R is a `twotower run` pipeline root whose JoinExampleGen and ContractSchemaGen have run. The pass
reads Split-train through TFX-BSL's TFXIO as the Transform component does (only the columns
TFT says analysis needs, ``analyze_inputs``), analyses it with the
profile's ``preprocessing_fn`` on Beam's in-process runner (one process, so the CPU time is the
pass's own and holds on a busy machine) and writes the transform graph to a temporary directory.
To compare two versions of the code,
run it once from each checkout (``PYTHONPATH=<checkout>``; ``code`` in the JSON says which ran).

``--tf-compat-v1`` traces ``preprocessing_fn`` as a TF1 graph, as the pipeline's Transform does since
2026-12-03 (``transform.preprocessing.TF_COMPAT_V1``); without it, as a tf.function (TFT's default, which
the pipeline used before), where the history columns are analysis inputs too.
"""

import argparse
import glob
import os
import resource
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import apache_beam as beam  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tensorflow_transform.beam as tft_beam  # noqa: E402
from bench_report import write_report  # noqa: E402  (bench/bench_report.py)
from evaluator_stages import newest_examples  # noqa: E402  (bench/evaluator_stages.py)
from tfx_bsl.public import tfxio  # noqa: E402

import twotower  # noqa: E402
from twotower.config import load_profile  # noqa: E402
from twotower.schema.contract import load_schema  # noqa: E402
from twotower.transform.features import preprocess  # noqa: E402


class CountRows(beam.DoFn):
    """Counts the rows of the record batches that pass, in the Beam counter ``rows``."""

    def __init__(self):
        self.rows = beam.metrics.Metrics.counter("transform_analysis", "rows")

    def process(self, batch):
        self.rows.inc(batch.num_rows)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def newest_schema(pipeline_root: str) -> str:
    """Returns the newest ContractSchemaGen schema file under the root (the schema Transform reads with)."""
    paths = glob.glob(os.path.join(pipeline_root, "ContractSchemaGen", "*", "*", "schema.pbtxt"))
    if not paths:
        raise SystemExit(f"no ContractSchemaGen output under {pipeline_root}")
    return max(paths, key=os.path.getmtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline-root", required=True, help="a `twotower run` pipeline root")
    parser.add_argument("--config", default="hm", help="the profile the run used")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument(
        "--tf-compat-v1",
        action="store_true",
        help="trace preprocessing_fn as a TF1 graph (TFT's force_tf_compat_v1), as the pipeline's Transform does; "
        "default: as a tf.function",
    )
    args = parser.parse_args()
    v1 = args.tf_compat_v1

    profile = load_profile(args.config)
    train = os.path.join(newest_examples(args.pipeline_root), "Split-train")
    schema = newest_schema(args.pipeline_root)
    source = tfxio.TFExampleRecord(os.path.join(train, "*"), schema=load_schema(schema))

    def preprocessing_fn(inputs):
        return preprocess(inputs, profile)

    analyze_inputs = sorted(
        tft.get_analyze_input_columns(
            preprocessing_fn, source.TensorAdapter().OriginalTypeSpecs(), force_tf_compat_v1=v1
        )
    )
    source = source.Project(analyze_inputs)  # as TFX's Transform executor reads for analysis
    started, cpu = time.monotonic(), _cpu_s()
    with tempfile.TemporaryDirectory() as temp:
        pipeline = beam.Pipeline()
        with tft_beam.Context(temp_dir=temp, force_tf_compat_v1=v1):
            raw = pipeline | "Read" >> source.BeamSource()
            _ = raw | "Count" >> beam.ParDo(CountRows())
            transform_fn = (raw, source.TensorAdapterConfig()) | tft_beam.AnalyzeDataset(preprocessing_fn)
            _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(temp, "transform_fn"))
        result = pipeline.run()
        result.wait_until_finish()
    wall, cpu = time.monotonic() - started, _cpu_s() - cpu
    counters = result.metrics().query(beam.metrics.MetricsFilter().with_name("rows"))["counters"]
    examples = int(sum(c.committed for c in counters))
    write_report(
        args.out,
        {
            "pipeline_root": args.pipeline_root,
            "train": train,
            "code": os.path.dirname(os.path.dirname(os.path.abspath(twotower.__file__))),
            "force_tf_compat_v1": v1,
            "analyze_inputs": analyze_inputs,
            "examples": examples,
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "examples_per_s": round(examples / wall, 1),
            "examples_per_cpu_s": round(examples / cpu, 1),
        },
    )


if __name__ == "__main__":
    main()
