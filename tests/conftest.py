"""Test set-up shared by every tier.

TFRS needs Keras 2; TensorFlow picks its Keras on first import, which may come
from a test module importing tfx or ml_metadata before twotower.

``trainer_inputs``: real trainer inputs made once per test session
(twotower.pipeline.prepare). Tiny synthetic H&M data goes through the real
JoinExampleGen ingestion (Beam) and the real preprocessing_fn analysed by
tf.Transform on the train split, as the TFX Transform component does, so trainer
and serving tests start from what the pipeline hands the Trainer.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


def make_trainer_inputs(root: str, profile):
    """Generates tiny data under ``root`` and returns the TrainerInputs prepared from it."""
    from twotower.data.synthetic import generate_hm
    from twotower.pipeline.prepare import prepare

    data = os.path.join(root, "data")
    generate_hm(data, customers=300, articles=120, transactions=5000, seed=3, progress=False)
    return prepare(profile, data, root)


@pytest.fixture(scope="session")
def trainer_inputs(tmp_path_factory):
    from twotower.config import load_profile

    return make_trainer_inputs(str(tmp_path_factory.mktemp("trainer_inputs")), load_profile("hm"))
