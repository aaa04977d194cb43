"""Transform module file: TFX calls ``preprocessing_fn``; the work is in features.py."""

import json
from typing import Any, Dict

from twotower.config import from_dict
from twotower.transform.features import preprocess

# Transform traces preprocessing_fn as a TF1 graph (TFT's force_tf_compat_v1), so that its analysis decodes only
# the columns some analyzer reads. Traced as a tf.function every stateful op runs, and the history's vocabulary
# lookup made TFT decode both 50-wide history columns, which no analyzer reads: 14% of the analysis CPU at 5% of
# the H&M size (bench/transform_analysis.py --tf-compat-v1). The transform the Trainer and serving apply is the
# same either way.
TF_COMPAT_V1 = True


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Dict[str, Any]) -> Dict[str, Any]:
    """Returns transformed features; ``custom_config['profile']`` is the profile as JSON."""
    return preprocess(inputs, from_dict(json.loads(custom_config["profile"]), where="custom_config"))
