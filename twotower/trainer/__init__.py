"""The two-tower trainer, fitting only: input pipelines, towers, losses, phases, checkpoints, strategies.

``prepare`` lays out trainer inputs without an orchestrator (ingestion + Transform analysis) for tests,
benchmarks and notebooks. Layer: above transform and vocab; never imports export or serving.
"""
