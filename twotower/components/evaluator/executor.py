"""RetrievalEvaluator executor: writes metrics.json, the PNG plots and the blessing."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from twotower.config import Profile, from_dict
from twotower.evaluation import plots
from twotower.evaluation.evaluate import evaluate
from twotower.export.assets import HISTORY_ASSET

METRICS_FILE = "metrics.json"
RECALL_PLOT = "recall_at_k.png"
LOSS_PLOT = "loss_by_phase.png"
# Blessing properties TFX's LatestBlessedModelStrategy and Pusher read (tfx.components.evaluator.constants).
BLESSED_KEY = "blessed"
CURRENT_MODEL_KEY = "current_model"
CURRENT_MODEL_ID_KEY = "current_model_id"
BASELINE_MODEL_KEY = "baseline_model"
BASELINE_MODEL_ID_KEY = "baseline_model_id"


def model_path(model: types.Artifact) -> str:
    """Returns the SavedModel directory inside a Trainer's Model artifact."""
    return path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))


def read_history(model_dir: str) -> Optional[Dict[str, Any]]:
    """Returns the Trainer's ``<model_dir>/assets.extra/history.json``, or None when it is absent.

    Raises ValueError naming the file when it is not valid JSON of the expected shape.
    """
    path = os.path.join(model_dir, HISTORY_ASSET)
    if not fileio.exists(path):
        return None
    try:
        history = json.loads(io_utils.read_string_file(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e
    return plots.check_history(history, path)


def recall_intervals(result: Dict[str, Any], ks: Sequence[int]) -> Dict[str, Dict[int, List[float]]]:
    """Returns {model: {K: [lo, hi]}} of Recall@K at ``ks`` from metrics.json content, the last blessed model's
    included; {} without intervals (``evaluator.bootstrap_samples`` 0).
    """
    intervals = dict(result.get("intervals") or {})
    last_blessed = (result.get("baseline") or {}).get("intervals")
    if last_blessed:
        intervals["last_blessed"] = last_blessed
    return {name: {k: table[f"recall@{k}"] for k in ks if f"recall@{k}" in table} for name, table in intervals.items()}


def write_plots(result: Dict[str, Any], profile: Profile, model_dir: str, out_dir: str) -> Dict[str, Any]:
    """Writes the PNG plots into ``out_dir``; returns metrics.json's "plots" section.

    {"recall_at_k": path, "loss_by_phase": path or None, "skipped": {plot: why}}. The loss plot needs the
    Trainer's history.json; without it, or when it is malformed, the plot is skipped with a warning (a plot
    never blocks the blessing).
    """
    ev = profile.evaluator
    section: Dict[str, Any] = {"recall_at_k": os.path.join(out_dir, RECALL_PLOT), "loss_by_phase": None, "skipped": {}}
    png = plots.recall_at_k_png(
        result["recall_curve"],
        f"{profile.name}: Recall@K on the {result['held_out_split']} split ({result['eval_users']} users)",
        blessing_k=ev.blessing_k,
        min_recall=ev.min_recall,
        intervals=recall_intervals(result, ev.ks),
    )
    io_utils.write_bytes_file(section["recall_at_k"], png)
    try:
        history = read_history(model_dir)
    except ValueError as e:
        history = None
        section["skipped"]["loss_by_phase"] = str(e)
    else:
        if history is None:
            section["skipped"]["loss_by_phase"] = f"no {HISTORY_ASSET} in {model_dir}"
    if history is not None:
        section["loss_by_phase"] = os.path.join(out_dir, LOSS_PLOT)
        io_utils.write_bytes_file(section["loss_by_phase"], plots.loss_by_phase_png(history, f"{profile.name}: loss"))
    for name, why in section["skipped"].items():
        logging.warning("RetrievalEvaluator: %s skipped: %s", name, why)
    return section


class Executor(base_executor.BaseExecutor):
    """Evaluates the Trainer's model next to the baselines and the last blessed model; blesses or blocks it."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        profile = from_dict(json.loads(exec_properties["profile"]), where="RetrievalEvaluator.profile")
        model = artifact_utils.get_single_instance(input_dict["model"])
        model_dir = model_path(model)
        last_blessed = input_dict.get("baseline_model") or []
        if len(last_blessed) > 1:
            raise ValueError(f"RetrievalEvaluator: expected at most one baseline_model, got {len(last_blessed)}")
        baseline_dir = model_path(last_blessed[0]) if last_blessed else None
        examples = input_dict["examples"]

        def split(name: str) -> List[str]:
            return [io_utils.all_files_pattern(artifact_utils.get_split_uri(examples, name))]

        # Held out: the test split when the profile has one; what came before it is the users' history.
        splits = artifact_utils.decode_split_names(examples[0].split_names)
        if "test" in splits:
            before = split("train") + split("eval")
            result = evaluate(profile, model_dir, before, split("test"), split("catalog"), baseline_dir)
        else:
            result = evaluate(profile, model_dir, split("train"), split("eval"), split("catalog"), baseline_dir)
        result["held_out_split"] = "test" if "test" in splits else "eval"
        if last_blessed:
            result["baseline"]["model_id"] = last_blessed[0].id
        evaluation_uri = artifact_utils.get_single_uri(output_dict["evaluation"])
        result["plots"] = write_plots(result, profile, model_dir, evaluation_uri)
        io_utils.write_string_file(os.path.join(evaluation_uri, METRICS_FILE), json.dumps(result, indent=2))

        blessed = result["blessing"]["blessed"]
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        blessing.set_int_custom_property(BLESSED_KEY, int(blessed))
        blessing.set_string_custom_property("reason", result["blessing"]["reason"])
        # LatestBlessedModelStrategy finds the model a blessing belongs to by this id.
        blessing.set_string_custom_property(CURRENT_MODEL_KEY, model.uri)
        blessing.set_int_custom_property(CURRENT_MODEL_ID_KEY, model.id)
        if last_blessed:
            blessing.set_string_custom_property(BASELINE_MODEL_KEY, last_blessed[0].uri)
            blessing.set_int_custom_property(BASELINE_MODEL_ID_KEY, last_blessed[0].id)
        marker = "BLESSED" if blessed else "NOT_BLESSED"
        io_utils.write_string_file(os.path.join(blessing.uri, marker), "")
        logging.info("RetrievalEvaluator: %s (%s)", marker, result["blessing"]["reason"])
