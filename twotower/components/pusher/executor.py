"""Pusher executor: the stock one, then TF Serving's model config file (see component.py)."""

import posixpath
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from twotower.serving.tf_serving_config import CONTAINER_MODELS, write_models_config


def config_base_path(serving_dir: str) -> str:
    """Where TF Serving finds ``serving_dir``: itself when remote (``gs://``), else the container mount."""
    return serving_dir if "://" in serving_dir else CONTAINER_MODELS


class Executor(pusher_executor.Executor):
    """The stock Pusher executor; after a push to a file system it rewrites ``models.config``."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if pushed.get_int_custom_property("pushed") != 1:
            return
        destination = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], pusher_pb2.PushDestination()
        )
        if destination.WhichOneof("destination") != "filesystem":
            return
        serving_dir = posixpath.dirname(destination.filesystem.base_directory.rstrip("/"))
        path = write_models_config(serving_dir, base_path=config_base_path(serving_dir))
        logging.info("TF Serving model config written: %s", path)
