"""Feature preprocessing with TensorFlow Transform: ``preprocessing_fn`` (the module file) over ``features``.

Layer: above config, ingest and schema; imports config only.
"""
