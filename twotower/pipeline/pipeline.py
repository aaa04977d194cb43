"""create_pipeline: wires the components. No environment, no I/O, no globals.

JoinExampleGen -> StatisticsGen -> ContractSchemaGen (the profile's contract; SchemaGen
infers one when the profile has none) -> DataGate (stops the run on contract
violations or unaccepted drift) -> Transform -> Trainer -> RetrievalEvaluator -> Pusher. A resolver
hands the evaluator the latest blessed model of earlier runs, which the new one must not fall below.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from tfx import v1 as tfx
from tfx.extensions.google_cloud_ai_platform.pusher import component as vertex_pusher

from twotower.components.data_gate.component import DataGate
from twotower.components.evaluator.component import RetrievalEvaluator
from twotower.components.example_gen.component import JoinExampleGen
from twotower.components.pusher.component import Pusher
from twotower.components.schema_gen.component import ContractSchemaGen
from twotower.components.trainer.component import RUN_FN, Trainer, VertexTrainer
from twotower.components.trainer.executor import TRAINER_WORKERS
from twotower.config import Profile
from twotower.ingest.splits import TABLE_SPLITS, split_names
from twotower.schema.contract import Range
from twotower.transform.preprocessing import TF_COMPAT_V1

PREPROCESSING_FN = "twotower.transform.preprocessing.preprocessing_fn"


def data_components(
    profile: Profile,
    data_root: str,
    row_ranges: Optional[Dict[str, Range]],
    baseline_statistics_uri: str,
    accept_drift: bool,
) -> List[Any]:
    """Returns [JoinExampleGen, StatisticsGen, schema (import or inference), DataGate]: data in, contract checked."""
    example_gen = JoinExampleGen(input_base=data_root, profile=profile, ranges=row_ranges)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if profile.contract.schema:
        schema_gen = ContractSchemaGen(profile)
    else:
        schema_gen = tfx.components.SchemaGen(
            statistics=statistics_gen.outputs["statistics"],
            infer_feature_shape=True,
            exclude_splits=[s for s in split_names(profile) if s != "train"],
        )
    data_gate = DataGate(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        profile=profile,
        exclude_splits=list(TABLE_SPLITS),
        baseline_statistics_uri=baseline_statistics_uri,
        accept_drift=accept_drift,
    )
    return [example_gen, statistics_gen, schema_gen, data_gate]


def model_components(
    profile: Profile,
    pipeline_root: str,
    serving_dir: str,
    data: List[Any],
    trainer_workers: int = 1,
    vertex_training: Optional[Dict[str, Any]] = None,
    vertex_push: Optional[Dict[str, Any]] = None,
) -> List[Any]:
    """Returns [Transform, Trainer, last-blessed resolver, RetrievalEvaluator, Pusher(, VertexPusher)].

    ``trainer_workers`` > 1 runs the Trainer as that many local worker processes (MultiWorkerMirroredStrategy);
    ``vertex_training`` (the Vertex Trainer extension's custom_config entries) runs it as a Vertex AI custom
    job instead; ``vertex_push`` (the Vertex Pusher's custom_config) also deploys a blessed model to an endpoint.
    """
    example_gen, _, schema_gen, data_gate = data
    examples, schema = example_gen.outputs["examples"], schema_gen.outputs["schema"]
    transform = tfx.components.Transform(
        examples=examples,
        schema=schema,
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=tfx.proto.SplitsConfig(analyze=["train"]),
        materialize=False,
        # StatisticsGen already has every split's statistics; Transform's own pre- and post-transform TFDV
        # statistics would decode every column (the 50-item histories too) and transform the data once more
        disable_statistics=True,
        force_tf_compat_v1=TF_COMPAT_V1,  # analysis decodes only what analyzers read (preprocessing.py)
        custom_config={"profile": profile.to_json()},
    )
    transform.add_upstream_node(data_gate)  # nothing is transformed until the data passed the gate
    trainer_config = {"profile": profile.to_json(), "checkpoint_root": os.path.join(pipeline_root, "checkpoints")}
    if trainer_workers > 1:
        trainer_config[TRAINER_WORKERS] = trainer_workers
    trainer_class = Trainer
    if vertex_training:
        trainer_config.update(vertex_training)
        trainer_class = VertexTrainer
    trainer = trainer_class(
        run_fn=RUN_FN,
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=trainer_config,
    ).with_id("Trainer")  # one name in ML Metadata, wherever it runs
    # Latest Model whose ModelBlessing says blessed, from earlier runs in this pipeline's ML Metadata; none at first.
    last_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = RetrievalEvaluator(
        model=trainer.outputs["model"], examples=examples, profile=profile, baseline_model=last_blessed.outputs["model"]
    )
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=os.path.join(serving_dir, profile.serving.model_name)
            )
        ),
    )
    components = [transform, trainer, last_blessed, evaluator, pusher]
    if vertex_push:
        components.append(
            vertex_pusher.Pusher(
                model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"], custom_config=vertex_push
            ).with_id("VertexPusher")
        )
    return components


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    profile: Profile,
    serving_dir: str,
    metadata_connection_config: Optional[object] = None,
    beam_pipeline_args: Optional[List[str]] = None,
    enable_cache: bool = False,
    row_ranges: Optional[Dict[str, Range]] = None,
    baseline_statistics_uri: str = "",
    accept_drift: bool = False,
    trainer_workers: int = 1,
    vertex_training: Optional[Dict[str, Any]] = None,
    vertex_push: Optional[Dict[str, Any]] = None,
) -> tfx.dsl.Pipeline:
    """Returns the twotower TFX pipeline for ``profile`` over the CSVs in ``data_root``.

    ``row_ranges`` ({column: (min, max)}, from the contract schema) make
    JoinExampleGen quarantine out-of-range rows; ``baseline_statistics_uri`` (a
    previous StatisticsGen output) turns on the drift check, and ``accept_drift``
    lets drift above threshold pass. The blessed model is pushed to
    ``serving_dir/<serving.model_name>/<version>/``, and ``serving_dir/models.config`` lists it for TF Serving.
    ``trainer_workers`` > 1 trains with that many local worker processes (``components.trainer.executor``);
    ``vertex_training`` and ``vertex_push`` are the Vertex runner's (``model_components``).
    """
    if trainer_workers < 1:
        raise ValueError(f"--trainer-workers {trainer_workers}: at least 1")
    data = data_components(profile, data_root, row_ranges, baseline_statistics_uri, accept_drift)
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=data
        + model_components(profile, pipeline_root, serving_dir, data, trainer_workers, vertex_training, vertex_push),
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
