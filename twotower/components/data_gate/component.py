"""DataGate: ExampleValidator that stops the run on contract violations and on unaccepted drift.

TFX 1.16's ExampleValidator records anomalies but lets Transform run anyway;
DataGate raises (see executor.py), so a bad data set never reaches training.
"""

from __future__ import annotations

import json
from typing import Iterable

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from twotower.components.data_gate import executor
from twotower.config import Profile


class DataGateSpec(ComponentSpec):
    """Inputs: statistics and schema; parameters: profile JSON, excluded splits, drift settings."""

    PARAMETERS = {
        "profile": ExecutionParameter(type=str),
        "exclude_splits": ExecutionParameter(type=str, optional=True),
        "drift_split": ExecutionParameter(type=str),
        "baseline_statistics_uri": ExecutionParameter(type=str, optional=True),
        "accept_drift": ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {"anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies)}


class DataGate(base_component.BaseComponent):
    """Validates statistics against the contract schema and a baseline; fails the run when they break it."""

    SPEC_CLASS = DataGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        statistics: types.BaseChannel,
        schema: types.BaseChannel,
        profile: Profile,
        exclude_splits: Iterable[str] = (),
        drift_split: str = "train",
        baseline_statistics_uri: str = "",
        accept_drift: bool = False,
    ):
        """``baseline_statistics_uri``: a previous StatisticsGen output to check drift against ('' = none)."""
        super().__init__(
            spec=DataGateSpec(
                profile=profile.to_json(),
                exclude_splits=json.dumps(list(exclude_splits)),
                drift_split=drift_split,
                baseline_statistics_uri=baseline_statistics_uri,
                accept_drift=int(accept_drift),
                statistics=statistics,
                schema=schema,
                anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
            )
        )
