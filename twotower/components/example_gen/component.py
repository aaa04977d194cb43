"""JoinExampleGen: a FileBasedExampleGen whose executor joins a profile's CSVs.

Output splits: ``train`` and ``eval`` (interactions with user and item features
joined on, split by date), and ``catalog`` (one example per item, the
candidates the model retrieves from).
"""

from __future__ import annotations

from google.protobuf import any_pb2, wrappers_pb2
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from twotower.components.example_gen import executor
from twotower.config import Profile

SPLITS = ("train", "eval", "catalog")


def profile_to_custom_config(profile: Profile) -> example_gen_pb2.CustomConfig:
    """Returns the profile packed into ExampleGen's CustomConfig (an Any of a JSON string)."""
    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.StringValue(value=profile.to_json()))
    return example_gen_pb2.CustomConfig(custom_config=packed)


class JoinExampleGen(FileBasedExampleGen):
    """Reads interactions, items and users CSVs under ``input_base`` per ``profile``."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, profile: Profile):
        """Builds the component; the profile names the files, columns and split."""
        super().__init__(
            input_base=input_base,
            # One input "split" covering every file, so the driver fingerprints all three.
            input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern="*")]),
            # Split names only: the executor assigns examples to splits by date.
            output_config=example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[example_gen_pb2.SplitConfig.Split(name=s, hash_buckets=1) for s in SPLITS]
                )
            ),
            custom_config=profile_to_custom_config(profile),
        )
