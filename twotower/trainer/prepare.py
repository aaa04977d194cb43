"""Trainer inputs without an orchestrator: the ingestion's split files and a tf.Transform graph.

Runs the same ingestion as JoinExampleGen and analyses the same
``preprocessing_fn`` on the train split as the Transform component does, on the
local Beam runner, and lays the results out like the pipeline's artifacts. For
tests, benchmarks and notebooks that want to call ``trainer.train.train``
directly.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import List

import apache_beam as beam
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
from tfx_bsl.public import tfxio

from twotower.config import Profile
from twotower.ingest.graph import build_ingestion
from twotower.ingest.splits import HISTORIES, split_names
from twotower.ingest.write import write_outputs
from twotower.schema.contract import contract_schema, profile_ranges
from twotower.trainer.train import Paths
from twotower.transform.features import preprocess
from twotower.transform.preprocessing import TF_COMPAT_V1


@dataclasses.dataclass(frozen=True)
class TrainerInputs:
    """Where ``prepare`` put the split files and the transform graph."""

    profile: Profile
    root: str
    transform_graph: str

    def split(self, name: str) -> List[str]:
        """Returns the file pattern of split ``name``."""
        return [os.path.join(self.root, "examples", f"Split-{name}", "*.gz")]

    def paths(self, out: str, checkpoint_dir: str = "") -> Paths:
        """Returns trainer Paths reading these inputs and writing under ``out`` (model/, logs/)."""
        return Paths(
            train=self.split("train"),
            eval=self.split("eval"),
            catalog=self.split("catalog"),
            transform_graph=self.transform_graph,
            serving_model_dir=os.path.join(out, "model"),
            log_dir=os.path.join(out, "logs"),
            checkpoint_dir=checkpoint_dir,
            histories=self.split(HISTORIES) if HISTORIES in split_names(self.profile) else (),
        )


def prepare(profile: Profile, data_dir: str, root: str) -> TrainerInputs:
    """Ingests the CSVs in ``data_dir`` and analyses the transform, all under ``root``."""
    names = split_names(profile)
    split_dirs = {n: os.path.join(root, "examples", f"Split-{n}") for n in names}
    with beam.Pipeline() as pipeline:
        ingestion = build_ingestion(
            pipeline, data_dir, profile, profile_ranges(profile), scratch_dir=os.path.join(root, "by_user")
        )
        write_outputs(ingestion, split_dirs, os.path.join(root, "quarantine"))
    shutil.rmtree(os.path.join(root, "by_user"), ignore_errors=True)
    graph = os.path.join(root, "transform_graph")
    schema = contract_schema(profile)
    source = tfxio.TFExampleRecord(file_pattern=os.path.join(split_dirs["train"], "*.gz"), schema=schema)
    with (
        beam.Pipeline() as pipeline,
        tft_beam.Context(temp_dir=os.path.join(root, "tft_tmp"), force_tf_compat_v1=TF_COMPAT_V1),
    ):
        transform_fn = (pipeline | source.BeamSource(), source.TensorAdapterConfig()) | tft_beam.AnalyzeDataset(
            lambda inputs: preprocess(inputs, profile)
        )
        _ = transform_fn | tft_beam.WriteTransformFn(graph)
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema), os.path.join(graph, tft.TFTransformOutput.RAW_METADATA_DIR)
    )
    return TrainerInputs(profile, root, graph)
