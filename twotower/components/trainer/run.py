"""Trainer module file: TFX calls ``run_fn``, which fits the model, then packages it (``export.package``)."""

import json

from tfx.components.trainer.fn_args_utils import FnArgs

from twotower.config import from_dict
from twotower.export.package import train_and_export
from twotower.trainer.train import Paths


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
        histories=config.get("histories_files", []),
    )
    train_and_export(from_dict(json.loads(config["profile"]), where="custom_config"), paths)
