"""Trainer module file: TFX calls ``run_fn``; the work is in train.py."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402

from tfx.components.trainer.fn_args_utils import FnArgs  # noqa: E402

from twotower.config import from_dict  # noqa: E402
from twotower.trainer.train import Paths, train  # noqa: E402


def run_fn(fn_args: FnArgs) -> None:
    """Trains and exports; ``custom_config`` holds the profile JSON, the catalogue files and the checkpoint dir."""
    config = fn_args.custom_config
    paths = Paths(
        train=fn_args.train_files,
        eval=fn_args.eval_files,
        catalog=config["catalog_files"],
        transform_graph=fn_args.transform_output,
        serving_model_dir=fn_args.serving_model_dir,
        log_dir=fn_args.model_run_dir,
        checkpoint_dir=config.get("checkpoint_dir", ""),
    )
    train(from_dict(json.loads(config["profile"]), where="custom_config"), paths)
