"""RetrievalEvaluator component: Recall@K vs popularity on the eval split; blessing."""

from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from twotower.components.evaluator import executor
from twotower.config import Profile


class RetrievalEvaluatorSpec(ComponentSpec):
    """Inputs: the Trainer's model and ExampleGen's examples. Outputs: metrics and blessing."""

    PARAMETERS = {"profile": ExecutionParameter(type=str)}
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class RetrievalEvaluator(base_component.BaseComponent):
    """Evaluates retrieval quality on the eval split and blesses or blocks the model."""

    SPEC_CLASS = RetrievalEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: channel.BaseChannel, examples: channel.BaseChannel, profile: Profile):
        """``examples`` must have train and eval splits; ``profile`` sets Ks and thresholds."""
        super().__init__(
            spec=RetrievalEvaluatorSpec(
                model=model,
                examples=examples,
                profile=profile.to_json(),
                evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation),
                blessing=channel.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
