"""Trainer: the stock component with the catalogue split and a resumable checkpoint directory; ``run_fn``."""
