"""``twotower run`` (the local pipeline) and ``twotower vertex`` (the same pipeline for Vertex AI)."""

from __future__ import annotations

import argparse
import os
import sys

from twotower.cli.output import print_evaluation, print_recommendations
from twotower.errors import EXIT_NOT_BLESSED, EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from twotower.config import load_profile
    from twotower.ingest.report import format_report
    from twotower.pipeline.local import run_local

    profile = load_profile(args.config)
    data = args.data
    if data is None:
        from twotower.data.synthetic import DEMO_ARTICLES, DEMO_CUSTOMERS, DEMO_TRANSACTIONS, generate_hm

        data = os.path.join(args.pipeline_root, "data")
        print(f"no --data given: generating the bundled synthetic H&M data set in {data}", file=sys.stderr)
        generate_hm(data, DEMO_CUSTOMERS, DEMO_ARTICLES, DEMO_TRANSACTIONS, seed=0)
    result = run_local(
        profile,
        data_root=data,
        pipeline_root=args.pipeline_root,
        serving_dir=args.serving_dir,
        beam_workers=args.beam_workers,
        enable_cache=args.cache,
        accept_drift=args.accept_drift,
        trainer_workers=args.trainer_workers,
    )
    print(f"\npipeline finished in {result.seconds:.0f}s; artifacts under {os.path.abspath(args.pipeline_root)}")
    if result.ingestion:
        print(format_report(result.ingestion))
    print_evaluation(result.metrics)
    if not result.pushed_model:
        print("model NOT blessed: nothing was pushed", file=sys.stderr)
        return EXIT_NOT_BLESSED
    print(f"pushed model: {result.pushed_model}")
    if args.show:
        from twotower.serving.recommend import recommend, sample_users

        serving_dir = os.path.dirname(os.path.dirname(result.pushed_model))
        for user in sample_users(data, profile, args.show):
            print_recommendations(f"\ntop-10 for customer {user}:", recommend(serving_dir, user, 10, data_dir=data))
    return EXIT_OK


def _cmd_vertex(args: argparse.Namespace) -> int:
    from twotower.config import load_profile
    from twotower.pipeline.vertex import VertexConfigError, VertexSettings, compile_pipeline, submit

    profile = load_profile(args.config)
    settings = VertexSettings(
        project=args.project,
        region=args.region,
        data_root=args.data,
        pipeline_root=args.pipeline_root,
        serving_dir=args.serving_dir or "",
        image=args.image or "",
        dataflow=args.dataflow,
        dataflow_image=args.dataflow_image or "",
        baseline_statistics=args.baseline_statistics or "",
        schema_uri=args.schema_uri or "",
        accept_drift=args.accept_drift,
        enable_cache=args.cache,
        trainer_replicas=args.trainer_replicas or 0,
        trainer_machine_type=args.trainer_machine_type or "",
        accelerator_type=args.accelerator_type or "",
        accelerator_count=args.accelerator_count or 0,
        endpoint=args.endpoint or "",
        endpoint_machine_type=args.endpoint_machine_type,
        endpoint_image=args.endpoint_image or "",
    )
    if args.trainer_replicas is not None and args.trainer_replicas < 1:
        raise VertexConfigError(f"--trainer-replicas {args.trainer_replicas}: at least 1 (one chief, N-1 workers)")
    path = compile_pipeline(profile, settings, args.output or f"twotower-{profile.name}-vertex.json")
    print(f"compiled the pipeline for Vertex AI: {path} (image {settings.pipeline_image()})")
    if args.submit:
        print(f"submitted: {submit(path, settings, args.service_account)}")
    else:
        print("submit it with --submit, or upload the file in the Vertex AI Pipelines console")
    return EXIT_OK


def add_run_command(commands: argparse._SubParsersAction) -> None:
    """Adds ``run`` to the ``twotower`` sub-command parser ``commands``."""
    run = commands.add_parser("run", help="run the TFX pipeline locally and push the blessed model")
    run.add_argument("--config", default="hm", help="built-in profile name (hm) or a profile YAML path (default hm)")
    run.add_argument("--data", help="directory with the profile's CSV files (default: generate synthetic data)")
    run.add_argument("--pipeline-root", default="runs/demo", help="artifacts and ML Metadata (default %(default)s)")
    run.add_argument("--serving-dir", help="push destination (default <pipeline-root>/serving)")
    run.add_argument(
        "--beam-workers", type=int, default=0, help="Beam DirectRunner processes; 0 = in-memory (default 0)"
    )
    run.add_argument(
        "--trainer-workers",
        type=int,
        default=1,
        help="train with this many worker processes on localhost (MultiWorkerMirroredStrategy, "
        "each with its TF_CONFIG, as a Vertex AI worker pool); 1 = in the pipeline's process (default 1)",
    )
    run.add_argument("--cache", action="store_true", help="reuse outputs of components whose inputs did not change")
    run.add_argument("--show", type=int, default=0, help="print top-10 for this many customers at the end")
    run.add_argument(
        "--accept-drift", action="store_true", help="let drift above threshold (vs the previous run) pass the gate"
    )
    run.set_defaults(func=_cmd_run)


def add_vertex_command(commands: argparse._SubParsersAction) -> None:
    """Adds ``vertex`` to the ``twotower`` sub-command parser ``commands``."""
    vertex = commands.add_parser(
        "vertex", help="compile the pipeline for Vertex AI Pipelines (and submit it with --submit)"
    )
    vertex.add_argument("--config", default="hm", help="built-in profile name or a profile YAML path (default hm)")
    vertex.add_argument("--data", required=True, help="gs:// directory with the profile's CSV files")
    vertex.add_argument("--pipeline-root", required=True, help="gs:// directory for the run's artifacts")
    vertex.add_argument("--serving-dir", help="gs:// push destination (default <pipeline-root>/serving)")
    vertex.add_argument("--project", required=True, help="Google Cloud project")
    vertex.add_argument("--region", required=True, help="Vertex AI region, e.g. europe-west4")
    vertex.add_argument(
        "--image", help="pipeline image (default REGION-docker.pkg.dev/PROJECT/twotower/twotower:VERSION)"
    )
    vertex.add_argument("--dataflow", action="store_true", help="run the Beam stages on Dataflow")
    vertex.add_argument("--dataflow-image", help="Dataflow worker image (default: .../twotower-dataflow:VERSION)")
    vertex.add_argument("--baseline-statistics", help="gs:// StatisticsGen output of an earlier run: drift baseline")
    vertex.add_argument("--schema-uri", help="gs:// copy of the contract schema, when it is not one the package ships")
    vertex.add_argument("--accept-drift", action="store_true", help="let drift above threshold pass the gate")
    vertex.add_argument(
        "--trainer-replicas",
        type=int,
        help="run the Trainer as a Vertex AI custom job of N replicas (pool 0 the chief, pool 1 N-1 workers; "
        "MultiWorkerMirroredStrategy); default: inside the pipeline step",
    )
    vertex.add_argument("--trainer-machine-type", help="machine of every trainer replica (default n1-standard-4)")
    vertex.add_argument("--accelerator-type", help="accelerator of every trainer replica, e.g. NVIDIA_TESLA_T4")
    vertex.add_argument(
        "--accelerator-count", type=int, help="accelerators per trainer replica (with --accelerator-type)"
    )
    vertex.add_argument(
        "--endpoint", help="also deploy a blessed model to this Vertex AI endpoint (created if missing)"
    )
    vertex.add_argument(
        "--endpoint-machine-type", default="n1-standard-4", help="machine serving the endpoint (default %(default)s)"
    )
    vertex.add_argument("--endpoint-image", help="serving container (default: Vertex AI's prebuilt TensorFlow CPU one)")
    vertex.add_argument("--cache", action="store_true", help="let Vertex AI reuse outputs of unchanged steps")
    vertex.add_argument("--output", help="pipeline definition to write (default twotower-<profile>-vertex.json)")
    vertex.add_argument("--submit", action="store_true", help="submit the compiled pipeline (needs credentials)")
    vertex.add_argument("--service-account", help="service account the pipeline runs as (with --submit)")
    vertex.set_defaults(func=_cmd_vertex)
