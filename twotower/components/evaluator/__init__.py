"""RetrievalEvaluator: the exported model scored against its baselines on held-out users (``twotower.evaluation``)."""
