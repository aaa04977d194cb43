"""Trainer component and executor: the stock ones, plus the catalogue split's files.

TFX hands ``run_fn`` the train and eval splits only; the two-tower export also
needs the ``catalog`` split of the same Examples artifact to build its index.
"""

from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import component as trainer_component
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer import fn_args_utils
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

CATALOG_SPLIT = "catalog"


class Executor(trainer_executor.GenericExecutor):
    """GenericExecutor whose FnArgs.custom_config also has ``catalog_files``."""

    def _GetFnArgs(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> fn_args_utils.FnArgs:
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        examples = input_dict[standard_component_specs.EXAMPLES_KEY]
        catalog = [io_utils.all_files_pattern(artifact_utils.get_split_uri(examples, CATALOG_SPLIT))]
        fn_args.custom_config = dict(fn_args.custom_config or {}, catalog_files=catalog)
        return fn_args


class Trainer(trainer_component.Trainer):
    """The stock Trainer component, running the Executor above."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
