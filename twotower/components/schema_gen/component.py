"""ContractSchemaGen: ImportSchemaGen for a profile: its contract schema plus the columns ingestion derives.

A profile with a history feature gets its history columns in the schema without listing them in
the curated ``.pbtxt`` (``schema.contract.with_derived_columns``), so Transform parses them and
DataGate checks them.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from twotower.components.schema_gen import executor
from twotower.config import Profile


class ContractSchemaGenSpec(ComponentSpec):
    """Parameters: the profile JSON (its ``contract.schema`` names the file) and that file, for lineage."""

    PARAMETERS = {"profile": ExecutionParameter(type=str), "schema_file": ExecutionParameter(type=str)}
    INPUTS = {}
    OUTPUTS = {"schema": ChannelParameter(type=standard_artifacts.Schema)}


class ContractSchemaGen(base_component.BaseComponent):
    """Writes the profile's contract schema, derived columns added, as a Schema artifact."""

    SPEC_CLASS = ContractSchemaGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, profile: Profile):
        """``profile.contract.schema``: the schema file (a path the executor can read: local, or gs://)."""
        super().__init__(
            spec=ContractSchemaGenSpec(
                profile=profile.to_json(),
                schema_file=profile.contract.schema,
                schema=types.Channel(type=standard_artifacts.Schema),
            )
        )
