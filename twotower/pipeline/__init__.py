"""Pipeline wiring (pipeline.py) and runners (local.py)."""
