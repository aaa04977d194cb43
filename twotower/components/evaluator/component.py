"""RetrievalEvaluator component: the model vs every baseline and the last blessed model, with intervals; blessing."""

from __future__ import annotations

from typing import Optional

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from twotower.components.evaluator import executor
from twotower.config import Profile


class RetrievalEvaluatorSpec(ComponentSpec):
    """Inputs: the Trainer's model, ExampleGen's examples and, optionally, the last blessed model.

    Outputs: metrics (metrics.json and PNG plots) and the blessing.
    """

    PARAMETERS = {"profile": ExecutionParameter(type=str)}
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        # may resolve to nothing (no model blessed yet): the blessing then uses the thresholds alone
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class RetrievalEvaluator(base_component.BaseComponent):
    """Evaluates retrieval quality on the held-out split and blesses or blocks the model."""

    SPEC_CLASS = RetrievalEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: channel.BaseChannel,
        examples: channel.BaseChannel,
        profile: Profile,
        baseline_model: Optional[channel.BaseChannel] = None,
    ):
        """``examples`` must have train, eval and catalog splits; ``profile`` sets Ks and thresholds.

        ``baseline_model``: the last blessed model (a LatestBlessedModelStrategy resolver's ``model`` output);
        the new model must not fall below it by more than ``evaluator.max_regression``.
        """
        super().__init__(
            spec=RetrievalEvaluatorSpec(
                model=model,
                examples=examples,
                baseline_model=baseline_model,
                profile=profile.to_json(),
                evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation),
                blessing=channel.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
