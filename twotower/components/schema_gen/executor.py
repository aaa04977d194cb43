"""ContractSchemaGen executor: reads the contract schema file, adds the derived columns, writes the Schema artifact."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

from tfx import types
from tfx.components.schema_gen import executor as schema_gen_executor
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

from twotower.config import from_dict
from twotower.schema.contract import contract_schema


class Executor(base_executor.BaseExecutor):
    """Writes ``schema.pbtxt`` (as ImportSchemaGen does) with ``schema.contract.contract_schema``."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        """Raises ValueError naming the schema file when it is missing or does not parse."""
        profile = from_dict(json.loads(exec_properties["profile"]), where="ContractSchemaGen")
        schema = contract_schema(profile)
        output = artifact_utils.get_single_uri(output_dict[standard_component_specs.SCHEMA_KEY])
        io_utils.write_pbtxt_file(os.path.join(output, schema_gen_executor.DEFAULT_FILE_NAME), schema)
