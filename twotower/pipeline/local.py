"""Local runner: LocalDagRunner, Beam DirectRunner, SQLite ML Metadata under the root.

Turns CLI flags into create_pipeline arguments, shows which component runs and
for how long, keeps the full TFX log in ``<pipeline_root>/run.log`` and returns
the evaluation and the pushed model found through ML Metadata.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Set, TextIO

from absl import logging as absl_logging
from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx

from twotower.components.evaluator.executor import METRICS_FILE
from twotower.components.example_gen.component import Quarantine
from twotower.config import Profile
from twotower.ingest.graph import beam_args
from twotower.ingest.report import read_report
from twotower.ingest.tables import check_inputs
from twotower.pipeline.pipeline import create_pipeline
from twotower.schema.contract import profile_ranges

METADATA_FILE = "metadata.sqlite"
LOG_FILE = "run.log"


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a finished run produced."""

    metrics: Dict[str, Any]
    ingestion: Dict[str, Any]  # JoinExampleGen's report: accounting per file, split sizes and dates
    pushed_model: Optional[str]
    seconds: float
    component_seconds: Dict[str, float]


# the LocalDagRunner's record as a component starts and ends (also read back from run.log by bench/hm_full_scale.py)
COMPONENT_STATE = re.compile(r"^Component (\S+) is (running|finished)\.$")


class ComponentProgress(logging.Handler):
    """Prints '[i/n] Component ... done in Xs' lines from the LocalDagRunner's log records.

    A component whose outputs came from the cache (``twotower run --cache``) ends its line with
    " (cached)". The local runner runs one component at a time, so TFX's "A cached execution is
    used" record belongs to the component last started.
    """

    _PATTERN = COMPONENT_STATE
    _CACHED = re.compile(r"^A cached execution \d+ is used\.$")

    def __init__(self, components: List[str], stream: TextIO):
        super().__init__(level=logging.INFO)
        self._order = {name: i + 1 for i, name in enumerate(components)}
        self._stream = stream
        self._started: Dict[str, float] = {}
        self._running: Optional[str] = None
        self.seconds: Dict[str, float] = {}
        self.cached: Set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self._CACHED.match(message) and self._running:
            self.cached.add(self._running)
            return
        match = self._PATTERN.match(message)
        if not match:
            return
        name, state = match.groups()
        step = f"[{self._order.get(name, '?')}/{len(self._order)}] {name}"
        if state == "running":
            self._started[name] = time.monotonic()
            self._running = name
            self._stream.write(f"{step} ...\n")
        else:
            self.seconds[name] = time.monotonic() - self._started.get(name, time.monotonic())
            cached = " (cached)" if name in self.cached else ""
            self._stream.write(f"{step} done in {self.seconds[name]:.1f}s{cached}\n")
        self._stream.flush()


def _latest_uri(store: metadata_store.MetadataStore, type_name: str) -> Optional[str]:
    artifacts = store.get_artifacts_by_type(type_name)
    return max(artifacts, key=lambda a: a.id).uri if artifacts else None


def previous_statistics(metadata_path: str, pipeline_name: str) -> str:
    """Returns the URI of the newest StatisticsGen output of an earlier run of ``pipeline_name``, or ''."""
    if not os.path.exists(metadata_path):
        return ""
    store = metadata_store.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))
    node = store.get_context_by_type_and_name("node", f"{pipeline_name}.StatisticsGen")
    if node is None:
        return ""
    stats_type = store.get_artifact_type("ExampleStatistics")
    live = [
        a for a in store.get_artifacts_by_context(node.id) if a.type_id == stats_type.id and a.state == a.LIVE
    ]  # not Transform's pre_transform_stats, which is ExampleStatistics too
    return max(live, key=lambda a: a.id).uri if live else ""


def _pushed_model(store: metadata_store.MetadataStore) -> Optional[str]:
    """Returns where the newest Pusher execution pushed to, or None when it did not push (model not blessed).

    An earlier run's push does not count: a run whose model was not blessed pushed nothing.
    """
    outputs = store.get_artifacts_by_type("PushedModel")
    if not outputs:
        return None
    newest = max(outputs, key=lambda a: a.id)
    if newest.custom_properties["pushed"].int_value != 1:
        return None
    return newest.custom_properties["pushed_destination"].string_value


def run_local(
    profile: Profile,
    data_root: str,
    pipeline_root: str,
    serving_dir: Optional[str] = None,
    beam_workers: int = 0,
    enable_cache: bool = False,
    accept_drift: bool = False,
    stream: TextIO = sys.stderr,
    trainer_workers: int = 1,
) -> RunResult:
    """Runs the pipeline locally and returns metrics and the pushed model directory (or None).

    The previous run's statistics under the same ``pipeline_root`` (if any) are the drift baseline.
    ``trainer_workers`` > 1 trains with that many worker processes on localhost (MultiWorkerMirroredStrategy).
    """
    check_inputs(data_root, profile)  # fail in a second, not after Beam starts
    pipeline_root = os.path.abspath(pipeline_root)
    serving_dir = os.path.abspath(serving_dir or os.path.join(pipeline_root, "serving"))
    os.makedirs(pipeline_root, exist_ok=True)
    metadata_path = os.path.join(pipeline_root, METADATA_FILE)
    pipeline_name = f"twotower-{profile.name}"
    baseline = previous_statistics(metadata_path, pipeline_name)
    pipeline = create_pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        data_root=os.path.abspath(data_root),
        profile=profile,
        serving_dir=serving_dir,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        beam_pipeline_args=beam_args(beam_workers),
        enable_cache=enable_cache,
        row_ranges=profile_ranges(profile),
        baseline_statistics_uri=baseline,
        accept_drift=accept_drift,
        trainer_workers=trainer_workers,
    )
    progress = ComponentProgress([c.id for c in pipeline.components], stream)
    started = time.monotonic()
    with tfx_logs_to_file(os.path.join(pipeline_root, LOG_FILE), progress) as log_path:
        stream.write(f"running {len(pipeline.components)} components; full log: {log_path}\n")
        tfx.orchestration.LocalDagRunner().run(pipeline)
    return read_result(metadata_path, time.monotonic() - started, progress.seconds)


@contextlib.contextmanager
def tfx_logs_to_file(path: str, progress: ComponentProgress) -> Iterator[str]:
    """Sends the full TFX log to ``path`` and component progress to ``progress`` while the block runs; yields ``path``.

    Console handlers show errors only meanwhile (TFX warns a lot about itself).
    """
    log_file = logging.FileHandler(path)
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    absl_logger = absl_logging.get_absl_logger()
    previous_level = absl_logger.level
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logging.get_absl_handler().setLevel(logging.WARNING)
    root = logging.getLogger()
    consoles = {h: h.level for h in root.handlers if not isinstance(h, logging.FileHandler)}
    for handler in consoles:
        handler.setLevel(logging.ERROR)
    root.addHandler(log_file)
    absl_logger.addHandler(progress)
    try:
        yield log_file.baseFilename
    finally:
        absl_logger.removeHandler(progress)
        root.removeHandler(log_file)
        log_file.close()
        absl_logger.setLevel(previous_level)
        for handler, level in consoles.items():
            handler.setLevel(level)


def read_result(metadata_path: str, seconds: float, component_seconds: Dict[str, float]) -> RunResult:
    """Returns the finished run's RunResult, found through the ML Metadata at ``metadata_path``."""
    store = metadata_store.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))
    evaluation = _latest_uri(store, "ModelEvaluation")
    metrics: Dict[str, Any] = {}
    if evaluation:
        with open(os.path.join(evaluation, METRICS_FILE), encoding="utf-8") as f:
            metrics = json.load(f)
    quarantine = _latest_uri(store, Quarantine.TYPE_NAME)
    return RunResult(
        metrics=metrics,
        ingestion=read_report(quarantine) if quarantine else {},
        pushed_model=_pushed_model(store),
        seconds=seconds,
        component_seconds=dict(component_seconds),
    )
