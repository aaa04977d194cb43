"""Test set-up shared by every tier.

TFRS needs Keras 2; TensorFlow picks its Keras on first import, which may come
from a test module importing tfx or ml_metadata before twotower.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
