"""Trainer component: TFX's stock Trainer, running ``executor.Executor`` (the catalogue split, checkpoints).

``VertexTrainer`` runs the same executor as a Vertex AI custom job (TFX's Vertex Trainer extension); its
``custom_config`` carries the job spec (``pipeline.vertex``).

Its module file is ``twotower.components.trainer.run`` (``run_fn``: fit, then package).
"""

from tfx.components.trainer import component as trainer_component
from tfx.dsl.components.base import executor_spec

from twotower.components.trainer.executor import Executor, VertexExecutor

RUN_FN = "twotower.components.trainer.run.run_fn"


class Trainer(trainer_component.Trainer):
    """The stock Trainer component, running ``executor.Executor``."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)


class VertexTrainer(trainer_component.Trainer):
    """The stock Trainer component, running ``executor.Executor`` in a Vertex AI custom job's worker pools."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(VertexExecutor)
