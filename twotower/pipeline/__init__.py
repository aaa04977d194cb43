"""Wiring only: ``create_pipeline`` (pipeline.py) and the runners that call it (local.py, vertex.py).

Layer: the top but for cli; may import every stage and component, none of which imports it.
"""
