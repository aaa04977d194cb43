"""Custom TFX components, one folder each (``component.py`` + ``executor.py``), thin: the work is in the stages.

- ``example_gen``: JoinExampleGen, over ``twotower.ingest``;
- ``data_gate``: DataGate, over ``twotower.schema`` (contract and drift);
- ``trainer``: the stock Trainer with the catalogue split and checkpoints; its module file
  ``run.py`` fits (``twotower.trainer``), then packages (``twotower.export``);
- ``evaluator``: RetrievalEvaluator, over ``twotower.evaluation``;
- ``pusher``: the stock Pusher plus TF Serving's ``models.config`` (``twotower.serving.tf_serving_config``).

Layer: above serving, below pipeline; may import every stage, never ``pipeline`` or ``cli``.
"""
