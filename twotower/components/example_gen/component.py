"""JoinExampleGen: a file-based ExampleGen whose executor joins a profile's CSVs and quarantines bad rows.

Outputs ``examples`` with splits ``train``, ``eval``, ``test`` (when the profile
has one) and ``catalog`` (one example per item, the candidates the model
retrieves from), and ``quarantine``: the rejected rows with file, line and reason,
plus ``report.json`` (per-file accounting, split sizes and dates).
"""

from __future__ import annotations

from typing import Dict, Optional

from google.protobuf import any_pb2, wrappers_pb2
from tfx import types
from tfx.components.example_gen import driver
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.standard_component_specs import FileBasedExampleGenSpec

from twotower.components.example_gen import executor
from twotower.config import Profile
from twotower.ingest.csv_source import DEFAULT_CHUNK_BYTES
from twotower.ingest.rows import Range
from twotower.ingest.splits import split_names


class Quarantine(types.Artifact):
    """Rows JoinExampleGen refused (``rows-*.jsonl``) and its ingestion report (``report.json``)."""

    TYPE_NAME = "twotower.Quarantine"  # namespaced: Vertex AI (KFP) accepts custom types as "namespace.Name" only


class JoinExampleGenSpec(FileBasedExampleGenSpec):
    """FileBasedExampleGen's spec plus the ``quarantine`` output."""

    OUTPUTS = {**FileBasedExampleGenSpec.OUTPUTS, executor.QUARANTINE_KEY: ChannelParameter(type=Quarantine)}


def profile_to_custom_config(
    profile: Profile, ranges: Optional[Dict[str, Range]] = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> example_gen_pb2.CustomConfig:
    """Returns profile, row ranges and chunk size packed into ExampleGen's CustomConfig (an Any of JSON)."""
    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.StringValue(value=executor.pack_config(profile, ranges or {}, chunk_bytes)))
    return example_gen_pb2.CustomConfig(custom_config=packed)


class JoinExampleGen(base_beam_component.BaseBeamComponent):
    """Reads the interactions, items and users CSVs under ``input_base`` as ``profile`` describes."""

    SPEC_CLASS = JoinExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(
        self,
        input_base: str,
        profile: Profile,
        ranges: Optional[Dict[str, Range]] = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ):
        """Builds the component; ``ranges`` ({column: (min, max)}) quarantine out-of-range numbers."""
        spec = JoinExampleGenSpec(
            input_base=input_base,
            # One input "split" covering every file, so the driver fingerprints all three.
            input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern="*")]),
            # Split names only: the executor assigns examples to splits by date.
            output_config=example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[example_gen_pb2.SplitConfig.Split(name=s, hash_buckets=1) for s in split_names(profile)]
                )
            ),
            custom_config=profile_to_custom_config(profile, ranges, chunk_bytes),
            range_config=None,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            examples=types.Channel(type=standard_artifacts.Examples),
            quarantine=types.Channel(type=Quarantine),
        )
        super().__init__(spec=spec)
