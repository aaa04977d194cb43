"""Trainer component: TFX's stock Trainer, running ``executor.Executor`` (the catalogue split, checkpoints).

Its module file is ``twotower.components.trainer.run`` (``run_fn``: fit, then package).
"""

from tfx.components.trainer import component as trainer_component
from tfx.dsl.components.base import executor_spec

from twotower.components.trainer.executor import Executor

RUN_FN = "twotower.components.trainer.run.run_fn"


class Trainer(trainer_component.Trainer):
    """The stock Trainer component, running ``executor.Executor``."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
