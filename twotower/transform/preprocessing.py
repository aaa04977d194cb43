"""Transform module file: TFX calls ``preprocessing_fn``; the work is in features.py."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402
from typing import Any, Dict  # noqa: E402

from twotower.config import from_dict  # noqa: E402
from twotower.transform.features import preprocess  # noqa: E402


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Dict[str, Any]) -> Dict[str, Any]:
    """Returns transformed features; ``custom_config['profile']`` is the profile as JSON."""
    return preprocess(inputs, from_dict(json.loads(custom_config["profile"]), where="custom_config"))
