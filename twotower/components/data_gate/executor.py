"""DataGate executor: ExampleValidator's checks, plus drift against a baseline, and a stop on failure.

For every split not excluded it validates the statistics against the contract
schema (TRAINING environment) and, for the ``drift_split``, against the baseline
statistics with the profile's drift thresholds. It writes TFX's ``SchemaDiff.pb``
per split and ``report.json`` / ``report.txt``, then raises ContractViolation
when the contract is broken, or when drift exceeds a threshold and drift was not
accepted. Accepted drift is still reported.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List

import tensorflow as tf
from tfx import types
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from twotower.config import from_dict
from twotower.errors import ContractViolation
from twotower.schema.checks import anomaly_list, format_anomalies, is_drift, validate
from twotower.schema.drift import load_statistics

REPORT_JSON = "report.json"
REPORT_TEXT = "report.txt"


def verdict(results: Dict[str, List[Dict[str, Any]]], accept_drift: bool) -> Dict[str, Any]:
    """Returns {'violations', 'drift', 'passed'} counts for per-split anomaly lists."""
    violations = sum(1 for anomalies in results.values() for a in anomalies if not is_drift(a))
    drift = sum(1 for anomalies in results.values() for a in anomalies if is_drift(a))
    return {"violations": violations, "drift": drift, "passed": violations == 0 and (drift == 0 or accept_drift)}


class Executor(base_executor.BaseExecutor):
    """See module docstring."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        """Writes the anomalies artifact; raises ContractViolation when the gate closes."""
        profile = from_dict(json.loads(exec_properties["profile"]), where="DataGate.profile")
        exclude = json.loads(exec_properties.get("exclude_splits") or "[]")
        drift_split = exec_properties["drift_split"]
        accept_drift = bool(exec_properties.get("accept_drift", 0))
        baseline_uri = exec_properties.get("baseline_statistics_uri") or ""
        stats_artifact = artifact_utils.get_single_instance(input_dict["statistics"])
        schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"]))
        )
        anomalies_artifact = artifact_utils.get_single_instance(output_dict["anomalies"])
        splits = [s for s in artifact_utils.decode_split_names(stats_artifact.split_names) if s not in exclude]
        anomalies_artifact.split_names = artifact_utils.encode_split_names(splits)

        results: Dict[str, List[Dict[str, Any]]] = {}
        for split in splits:
            stats = stats_artifact_utils.load_statistics(stats_artifact, split).proto()
            baseline = load_statistics(baseline_uri, split) if baseline_uri and split == drift_split else None
            anomalies = validate(stats, schema, profile, baseline)
            results[split] = anomaly_list(anomalies, stats.datasets[0])
            split_dir = artifact_utils.get_split_uri([anomalies_artifact], split)
            io_utils.write_bytes_file(os.path.join(split_dir, "SchemaDiff.pb"), anomalies.SerializeToString())

        outcome = verdict(results, accept_drift)
        report = {
            **outcome,
            "accept_drift": accept_drift,
            "baseline_statistics": baseline_uri or None,
            "anomalies": {split: anomalies for split, anomalies in results.items()},
        }
        text = format_gate(report)
        with tf.io.gfile.GFile(os.path.join(anomalies_artifact.uri, REPORT_JSON), "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
        with tf.io.gfile.GFile(os.path.join(anomalies_artifact.uri, REPORT_TEXT), "w") as f:
            f.write(text + "\n")
        anomalies_artifact.set_int_custom_property("passed", int(outcome["passed"]))
        if not outcome["passed"]:
            sys.stderr.write(text + "\n")
            raise ContractViolation(f"{text}\nfull report: {os.path.join(anomalies_artifact.uri, REPORT_JSON)}")


def format_gate(report: Dict[str, Any]) -> str:
    """Returns the gate's verdict and every anomaly as readable lines."""
    if report["passed"] and not report["drift"]:
        head = "data contract: passed"
    elif report["passed"]:
        head = f"data contract: passed; drift above threshold in {report['drift']} feature(s), accepted"
    else:
        head = (
            f"data contract: FAILED: {report['violations']} contract violation(s), "
            f"{report['drift']} feature(s) drifted above threshold"
            + ("" if report["drift"] == 0 else " (pass --accept-drift to accept drift deliberately)")
        )
    if not report["baseline_statistics"]:
        head += "\n  (no previous run: drift not checked)"
    body = [format_anomalies(split, anomalies) for split, anomalies in report["anomalies"].items() if anomalies]
    return "\n".join([head, *body])
