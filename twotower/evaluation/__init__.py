"""Evaluation of an exported model on held-out users: metrics, baselines on the same users, blessing, plots.

``components/evaluator`` runs ``evaluate`` in the pipeline; ``bench`` scripts call it directly.
Layer: above export (it reads exported models and their assets); never imports serving.
"""
