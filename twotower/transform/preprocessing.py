"""Transform module file: TFX calls ``preprocessing_fn``; the work is in features.py."""

import json
from typing import Any, Dict

from twotower.config import from_dict
from twotower.transform.features import preprocess


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Dict[str, Any]) -> Dict[str, Any]:
    """Returns transformed features; ``custom_config['profile']`` is the profile as JSON."""
    return preprocess(inputs, from_dict(json.loads(custom_config["profile"]), where="custom_config"))
