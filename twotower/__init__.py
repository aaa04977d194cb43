"""twotower: a production two-tower retrieval recommender on TFX.

TensorFlow Recommenders needs Keras 2 (the ``tf_keras`` package). TensorFlow
picks its Keras the first time it is imported, so the switch is set here,
before any submodule imports TensorFlow.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
