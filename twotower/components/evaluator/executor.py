"""RetrievalEvaluator executor: writes metrics.json and the blessing."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from twotower.components.evaluator.evaluate import evaluate
from twotower.config import from_dict

METRICS_FILE = "metrics.json"


class Executor(base_executor.BaseExecutor):
    """Evaluates the Trainer's model; blesses it when the profile's thresholds are met."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        profile = from_dict(json.loads(exec_properties["profile"]), where="RetrievalEvaluator.profile")
        model_dir = path_utils.serving_model_path(artifact_utils.get_single_uri(input_dict["model"]))
        examples = input_dict["examples"]

        def split(name: str) -> List[str]:
            return [io_utils.all_files_pattern(artifact_utils.get_split_uri(examples, name))]

        # Held out: the test split when the profile has one; what came before it is the users' history.
        splits = artifact_utils.decode_split_names(examples[0].split_names)
        if "test" in splits:
            result = evaluate(profile, model_dir, split("train") + split("eval"), split("test"), split("catalog"))
        else:
            result = evaluate(profile, model_dir, split("train"), split("eval"), split("catalog"))
        result["held_out_split"] = "test" if "test" in splits else "eval"
        evaluation_uri = artifact_utils.get_single_uri(output_dict["evaluation"])
        io_utils.write_string_file(os.path.join(evaluation_uri, METRICS_FILE), json.dumps(result, indent=2))

        blessed = result["blessing"]["blessed"]
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        blessing.set_int_custom_property("blessed", int(blessed))
        blessing.set_string_custom_property("reason", result["blessing"]["reason"])
        marker = "BLESSED" if blessed else "NOT_BLESSED"
        io_utils.write_string_file(os.path.join(blessing.uri, marker), "")
        logging.info("RetrievalEvaluator: %s (%s)", marker, result["blessing"]["reason"])
