"""Trainer executor: the stock GenericExecutor, plus the catalogue split and a checkpoint directory.

TFX hands ``run_fn`` the train and eval splits only; the two-tower export also
needs the ``catalog`` split of the same Examples artifact to build its index.

Each execution writes its model to a new artifact directory, so checkpoints go
to ``custom_config['checkpoint_root']/<key>`` instead, where the key hashes the
profile and ExampleGen's input fingerprint: re-running the pipeline on the same
files and config after a crash resumes training; changed data or config starts over.
"""

import hashlib
import os
from typing import Any, Dict, List

from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer import fn_args_utils
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

CATALOG_SPLIT = "catalog"
HISTORIES_SPLIT = "histories"  # with a history feature: each user's history at the end of the data


def checkpoint_key(profile_json: str, examples: types.Artifact) -> str:
    """Returns a short hash of the profile and the examples' input fingerprint (their URI if none)."""
    fingerprint = examples.get_string_custom_property(example_gen_utils.FINGERPRINT_PROPERTY_NAME) or examples.uri
    return hashlib.sha256(f"{profile_json}\n{fingerprint}".encode()).hexdigest()[:16]


class Executor(trainer_executor.GenericExecutor):
    """GenericExecutor whose FnArgs.custom_config also has ``catalog_files`` and ``histories_files``."""

    def _GetFnArgs(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> fn_args_utils.FnArgs:
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        examples = input_dict[standard_component_specs.EXAMPLES_KEY]
        catalog = [io_utils.all_files_pattern(artifact_utils.get_split_uri(examples, CATALOG_SPLIT))]
        config = dict(fn_args.custom_config or {}, catalog_files=catalog, histories_files=[])
        if HISTORIES_SPLIT in artifact_utils.decode_split_names(examples[0].split_names):
            config["histories_files"] = [
                io_utils.all_files_pattern(artifact_utils.get_split_uri(examples, HISTORIES_SPLIT))
            ]
        if config.get("checkpoint_root"):
            key = checkpoint_key(config.get("profile", ""), examples[0])
            config["checkpoint_dir"] = os.path.join(config["checkpoint_root"], key)
        fn_args.custom_config = config
        return fn_args
