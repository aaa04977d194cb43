"""Test set-up shared by every tier.

TFRS needs Keras 2; TensorFlow picks its Keras on first import, which may come
from a test module importing tfx or ml_metadata before twotower.

``trainer_inputs``: real trainer inputs made once per test session
(twotower.trainer.prepare). Tiny synthetic H&M data goes through the real
JoinExampleGen ingestion (Beam) and the real preprocessing_fn analysed by
tf.Transform on the train split, as the TFX Transform component does, so trainer
and serving tests start from what the pipeline hands the Trainer.

``exported_model`` trains the towers of the hm profile for one short softmax phase on
that data and exports the SavedModel the Pusher would push; ``push`` copies it in as
``<serving_dir>/<model>/<version>/``, and ``serving_dir`` is such a directory.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import csv  # noqa: E402
import dataclasses  # noqa: E402
import shutil  # noqa: E402
from typing import Any, Dict, List  # noqa: E402

import pytest  # noqa: E402


def make_trainer_inputs(root: str, profile):
    """Generates tiny data under ``root`` and returns the TrainerInputs prepared from it."""
    from twotower.data.synthetic import generate_hm
    from twotower.trainer.prepare import prepare

    data = os.path.join(root, "data")
    generate_hm(data, customers=300, articles=120, transactions=5000, seed=3, progress=False)
    return prepare(profile, data, root)


@pytest.fixture(scope="session")
def trainer_inputs(tmp_path_factory):
    from twotower.config import load_profile

    return make_trainer_inputs(str(tmp_path_factory.mktemp("trainer_inputs")), load_profile("hm"))


MODEL = "twotower"


def push(model_dir: str, serving_dir: str, version: int, model: str = MODEL) -> str:
    """Copies an exported model to ``serving_dir/model/version`` (as the Pusher does) and returns that path."""
    dst = os.path.join(serving_dir, model, str(version))
    shutil.copytree(model_dir, dst)
    return dst


@pytest.fixture(scope="session")
def exported_model(trainer_inputs, tmp_path_factory) -> str:
    from twotower.config import PhaseConfig
    from twotower.export.package import train_and_export

    p = trainer_inputs.profile
    profile = dataclasses.replace(p, trainer=dataclasses.replace(p.trainer, phases=(PhaseConfig("softmax", 1),)))
    out = tmp_path_factory.mktemp("exported")
    train_and_export(profile, trainer_inputs.paths(str(out)))
    return str(out / "model")


@pytest.fixture(scope="session")
def customers(trainer_inputs) -> List[Dict[str, Any]]:
    """Returns serving_default instances of the first 50 customers of the test data."""
    with open(os.path.join(trainer_inputs.root, "data", "customers.csv"), newline="") as f:
        rows = list(csv.DictReader(f))[:50]
    return [
        {
            "customer_id": r["customer_id"],
            "age": float(r["age"]) if r["age"] else float("nan"),
            "club_member_status": r["club_member_status"],
            "fashion_news_frequency": r["fashion_news_frequency"],
        }
        for r in rows
    ]


@pytest.fixture(scope="session")
def serving_dir(exported_model, tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("serving") / "serving")
    push(exported_model, root, 1)
    return root
