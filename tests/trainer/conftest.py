"""Real trainer inputs made once per test session (twotower.pipeline.prepare).

Tiny synthetic H&M data goes through the real JoinExampleGen ingestion (Beam)
and the real preprocessing_fn analysed by tf.Transform on the train split, as
the TFX Transform component does, so trainer tests start from what the pipeline
hands the Trainer.
"""

import os

import pytest

from twotower.config import load_profile
from twotower.data.synthetic import generate_hm
from twotower.pipeline.prepare import TrainerInputs, prepare


def make_trainer_inputs(root: str, profile) -> TrainerInputs:
    """Generates tiny data under ``root`` and prepares the trainer inputs from it."""
    data = os.path.join(root, "data")
    generate_hm(data, customers=300, articles=120, transactions=5000, seed=3, progress=False)
    return prepare(profile, data, root)


@pytest.fixture(scope="session")
def trainer_inputs(tmp_path_factory) -> TrainerInputs:
    return make_trainer_inputs(str(tmp_path_factory.mktemp("trainer_inputs")), load_profile("hm"))
