"""The ``twotower`` command line: one entry point, one sub-command per job.

Exit codes: 0 success; 1 the run finished but the model was not blessed (so
nothing was pushed); 2 bad input (config, flags, or data that cannot be read),
with a message naming the file and field at fault; 3 the data was read but
rejected by its contract (too many quarantined rows, schema anomalies, drift).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ start-up noise (CUDA plugins) on CPU hosts

import twotower  # noqa: F401, E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from twotower.serving.commands import add_serving_commands, print_recommendations  # noqa: E402

# Library deprecation chatter (google-cloud on Python 3.10, Beam) is not the user's business.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning, module="apache_beam")

DEMO_CUSTOMERS = 5000
DEMO_ARTICLES = 1200
DEMO_TRANSACTIONS = 200_000
EXIT_NOT_BLESSED = 1
EXIT_BAD_INPUT = 2
EXIT_REJECTED = 3


def _cmd_generate(args: argparse.Namespace) -> int:
    if args.profile == "retail":
        from twotower.data.retail import generate_retail

        result = generate_retail(args.out, args.customers, args.items, args.transactions, seed=args.seed)
        print(f"wrote retail data to {args.out}: {result}")
        return 0
    from twotower.data.synthetic import generate_hm

    result = generate_hm(
        args.out,
        customers=args.customers,
        articles=args.items,
        transactions=args.transactions,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(
        f"wrote {result.transactions} transactions, {result.customers} customers, {result.articles} articles "
        f"({result.first_date} .. {result.last_date}) to {result.out_dir}"
    )
    return 0


def _cmd_movielens(args: argparse.Namespace) -> int:
    from twotower.data.movielens import write_movielens

    result = write_movielens(args.out, cache_dir=args.cache)
    print(
        f"wrote {result.ratings} ratings, {result.users} users, {result.movies} movies "
        f"({result.first_date} .. {result.last_date}) to {result.out_dir}; run it with --config movielens"
    )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from twotower.components.example_gen.report import format_report
    from twotower.config import load_profile
    from twotower.pipeline.validate import QUARANTINE_FILE, VALIDATION_FILE, run_validate
    from twotower.schema.contract import format_anomalies

    profile = load_profile(args.config)
    contract = profile.contract.schema or "no schema: row checks only"
    print(f"validating {args.data} with profile {profile.name} ({contract}) ...", file=sys.stderr)
    started = time.monotonic()
    result = run_validate(profile, args.data, args.out, args.baseline, args.accept_drift, args.beam_workers)
    print(f"done in {time.monotonic() - started:.0f}s", file=sys.stderr)
    s = result.summary
    print(format_report(s, s["quarantine"][:5]))
    for split in s["splits"]:
        listed = [a for a in s["anomalies"] if a["split"] == split]
        if listed:
            print(format_anomalies(split, listed))
    if not profile.contract.schema:
        print(f"note: {profile.path} has no contract.schema: only row checks ran (twotower schema infer drafts one)")
    print(f"\n{'PASSED' if result.passed else 'FAILED'}: {s['problems']}")
    print(f"details: {os.path.join(args.out, VALIDATION_FILE)}; rows: {os.path.join(args.out, QUARANTINE_FILE)}")
    return 0 if result.passed else EXIT_REJECTED


def _print_models(models: dict) -> None:
    """Prints one row per model and one column per metric."""
    keys = list(next(iter(models.values())))
    print(f"{'model':<12}" + "".join(f"{k:>13}" for k in keys))
    for name, table in models.items():
        print(f"{name:<12}" + "".join(f"{table[k]:>13.4f}" for k in keys))


def _cmd_drift(args: argparse.Namespace) -> int:
    from twotower.config import load_profile
    from twotower.pipeline.validate import statistics_of
    from twotower.schema.contract import load_schema
    from twotower.schema.drift import compare, write_report

    profile = load_profile(args.config)
    if not profile.contract.schema:
        raise ValueError(f"{profile.path}: drift needs contract.schema (it says which features to compare)")
    baseline = statistics_of(args.baseline, profile, os.path.join(args.out, "baseline"), args.split)
    current = statistics_of(args.current, profile, os.path.join(args.out, "current"), args.split)
    report = compare(baseline, current, load_schema(profile.contract.schema), profile)
    json_path, html_path = write_report(report, args.out, f"{profile.name}: {args.baseline} -> {args.current}")
    for f in report["features"]:
        status = "DRIFT" if f["drifted"] else ("ok" if f["distance"] is not None else f"not compared: {f['note']}")
        distance = "-" if f["distance"] is None else f"{f['distance']:.4f}"
        print(f"  {f['feature']:<28.28} {f['metric']:<15} {distance:>8} / {f['threshold']:<6g} {status}")
    print(f"{len(report['drifted'])} of {len(report['features'])} features drifted; {html_path}")
    return EXIT_REJECTED if report["drifted"] else 0


def _cmd_bench_quality(args: argparse.Namespace) -> int:
    import json

    from twotower.config import load_profile
    from twotower.pipeline.quality import per_user_split, run_quality

    profile = load_profile(args.profile)
    data = args.data
    if data is None:
        if profile.name != "movielens":
            raise ValueError(f"--data is required for profile {profile.name!r} (only movielens is fetched)")
        import tempfile

        from twotower.data.movielens import write_movielens

        scratch = tempfile.TemporaryDirectory(prefix="movielens-", dir=args.work_dir)
        data = os.path.join(scratch.name, "data")
        write_movielens(data)
    split = args.split or ("per_user" if profile.name == "movielens" else "profile")
    if split == "per_user":
        profile = per_user_split(profile)
    report = run_quality(profile, data, args.work_dir)
    if args.data is None:
        scratch.cleanup()
    print()
    _print_models(report["models"])
    print(f"split: {report['split']['rule']}; {report['split']['held_out_users']} held-out users")
    print(f"training: {report['train_examples_per_s']:,} examples/s; wall {report['wall_seconds']:.0f}s")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.out}")
    return 0


def _cmd_schema_infer(args: argparse.Namespace) -> int:
    from twotower.config import load_profile
    from twotower.schema.infer import infer_contract

    path = infer_contract(load_profile(args.config), args.data, args.out)
    print(f"wrote a draft contract to {path}: review domains and ranges, then set contract.schema in the profile")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from twotower.config import load_profile
    from twotower.pipeline.local import run_local

    profile = load_profile(args.config)
    data = args.data
    if data is None:
        from twotower.data.synthetic import generate_hm

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
    )
    print(f"\npipeline finished in {result.seconds:.0f}s; artifacts under {os.path.abspath(args.pipeline_root)}")
    if result.ingestion:
        from twotower.components.example_gen.report import format_report

        print(format_report(result.ingestion))
    models = result.metrics.get("models", {})
    if models:
        last_blessed = result.metrics.get("baseline") or {}
        if "metrics" in last_blessed:  # the last blessed model, scored on the same users
            models = {**models, "last_blessed": last_blessed["metrics"]}
        _print_models(models)
        held_out = result.metrics.get("held_out_split", "eval")
        print(f"{held_out} users: {result.metrics['eval_users']}; {result.metrics['blessing']['reason']}")
        if "metrics" in last_blessed:
            print(f"last_blessed: the model blessed before, {last_blessed['uri']}")
        elif last_blessed:
            print(f"last blessed model {last_blessed['uri']} not compared: {last_blessed['error']}")
    if not result.pushed_model:
        print("model NOT blessed: nothing was pushed", file=sys.stderr)
        return EXIT_NOT_BLESSED
    print(f"pushed model: {result.pushed_model}")
    if args.show:
        from twotower.serving.recommend import recommend, sample_users

        serving_dir = os.path.dirname(os.path.dirname(result.pushed_model))
        for user in sample_users(data, profile, args.show):
            print_recommendations(f"\ntop-10 for customer {user}:", recommend(serving_dir, user, 10, data_dir=data))
    return 0


def _cmd_vertex(args: argparse.Namespace) -> int:
    from twotower.config import load_profile
    from twotower.pipeline.vertex import VertexSettings, compile_pipeline, submit

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
    )
    path = compile_pipeline(profile, settings, args.output or f"twotower-{profile.name}-vertex.json")
    print(f"compiled the pipeline for Vertex AI: {path} (image {settings.pipeline_image()})")
    if args.submit:
        print(f"submitted: {submit(path, settings, args.service_account)}")
    else:
        print("submit it with --submit, or upload the file in the Vertex AI Pipelines console")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of the ``twotower`` command."""
    parser = argparse.ArgumentParser(
        prog="twotower",
        description="twotower: a two-tower retrieval recommender on TFX. `twotower COMMAND --help` for flags.",
        epilog="exit codes: 0 ok; 1 model not blessed (nothing pushed); 2 bad config, flags or unreadable data; "
        "3 data rejected by its contract (quarantine limit, anomalies, drift)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="data set tools")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    gen = data_commands.add_parser(
        "generate", help="write synthetic CSVs: H&M schema (articles, customers, transactions) or retail"
    )
    gen.add_argument("--out", required=True, help="output directory")
    gen.add_argument("--profile", choices=["hm", "retail"], default="hm", help="data set shape (default hm)")
    gen.add_argument("--customers", type=int, default=DEMO_CUSTOMERS, help="number of customers (default %(default)s)")
    gen.add_argument(
        "--items", "--articles", type=int, default=DEMO_ARTICLES, help="number of items (default %(default)s)"
    )
    gen.add_argument(
        "--transactions", type=int, default=DEMO_TRANSACTIONS, help="number of transactions (default %(default)s)"
    )
    gen.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default 0)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_cmd_generate)
    ml = data_commands.add_parser(
        "movielens", help="write MovieLens-100K as CSVs (from the recbole==1.2.1 wheel on PyPI; not redistributed)"
    )
    ml.add_argument("--out", required=True, help="output directory")
    ml.add_argument("--cache", help="where the wheel is kept (default $TWOTOWER_CACHE or ~/.cache/twotower/wheels)")
    ml.set_defaults(func=_cmd_movielens)

    run = commands.add_parser("run", help="run the TFX pipeline locally and push the blessed model")
    run.add_argument("--config", default="hm", help="built-in profile name (hm) or a profile YAML path (default hm)")
    run.add_argument("--data", help="directory with the profile's CSV files (default: generate synthetic data)")
    run.add_argument("--pipeline-root", default="runs/demo", help="artifacts and ML Metadata (default %(default)s)")
    run.add_argument("--serving-dir", help="push destination (default <pipeline-root>/serving)")
    run.add_argument(
        "--beam-workers", type=int, default=0, help="Beam DirectRunner processes; 0 = in-memory (default 0)"
    )
    run.add_argument("--cache", action="store_true", help="reuse outputs of components whose inputs did not change")
    run.add_argument("--show", type=int, default=0, help="print top-10 for this many customers at the end")
    run.add_argument(
        "--accept-drift", action="store_true", help="let drift above threshold (vs the previous run) pass the gate"
    )
    run.set_defaults(func=_cmd_run)

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
    vertex.add_argument("--cache", action="store_true", help="let Vertex AI reuse outputs of unchanged steps")
    vertex.add_argument("--output", help="pipeline definition to write (default twotower-<profile>-vertex.json)")
    vertex.add_argument("--submit", action="store_true", help="submit the compiled pipeline (needs credentials)")
    vertex.add_argument("--service-account", help="service account the pipeline runs as (with --submit)")
    vertex.set_defaults(func=_cmd_vertex)

    val = commands.add_parser(
        "validate", help="ingest and check data against the profile's contract only (exit 0 pass, 3 fail)"
    )
    val.add_argument("--config", default="hm", help="built-in profile name or profile YAML path (default hm)")
    val.add_argument("--data", required=True, help="directory with the profile's CSV files")
    val.add_argument("--out", default="validation", help="writes validation.json, quarantine.jsonl, statistics/")
    val.add_argument("--baseline", help="an earlier validate --out directory: also check drift against it")
    val.add_argument("--accept-drift", action="store_true", help="report drift but do not fail on it")
    val.add_argument("--beam-workers", type=int, default=0, help="Beam DirectRunner processes; 0 = in-memory")
    val.set_defaults(func=_cmd_validate)

    drift = commands.add_parser("drift", help="compare two data sets' distributions; writes report.json/.html")
    drift.add_argument("--config", default="hm", help="profile: features and drift thresholds (default hm)")
    drift.add_argument("--baseline", required=True, help="CSV directory or statistics (artifact dir or file)")
    drift.add_argument("--current", required=True, help="CSV directory or statistics (artifact dir or file)")
    drift.add_argument("--out", required=True, help="output directory for report.json and report.html")
    drift.add_argument("--split", default="train", help="split to compare (default train)")
    drift.set_defaults(func=_cmd_drift)

    bench = commands.add_parser("bench", help="benchmarks")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True, metavar="COMMAND")
    quality = bench_commands.add_parser(
        "quality", help="train + evaluate on a benchmark split: model vs popularity and EASE on the same users"
    )
    quality.add_argument("--profile", default="movielens", help="profile name or YAML (default movielens)")
    quality.add_argument("--data", help="CSV directory (default for movielens: fetched and converted)")
    quality.add_argument(
        "--split",
        choices=["per_user", "profile"],
        help="per_user: each user's last 20%% test (default for movielens); profile: the profile's own split",
    )
    quality.add_argument("--out", help="write the results as JSON here")
    quality.add_argument("--work-dir", help="where scratch pipeline roots go (default: system temp)")
    quality.set_defaults(func=_cmd_bench_quality)

    schema = commands.add_parser("schema", help="data contract tools")
    schema_commands = schema.add_subparsers(dest="schema_command", required=True, metavar="COMMAND")
    infer = schema_commands.add_parser("infer", help="draft a contract schema (.pbtxt) from a data set")
    infer.add_argument("--config", default="hm", help="profile (default hm)")
    infer.add_argument("--data", required=True, help="directory with the profile's CSV files")
    infer.add_argument("--out", required=True, help="schema file to write (.pbtxt)")
    infer.set_defaults(func=_cmd_schema_infer)

    add_serving_commands(commands)  # recommend, serve, query

    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command in ``argv`` (default sys.argv) and returns its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        # imported only now: they load TensorFlow and TFX, which `twotower query` never needs
        from twotower.components.data_gate.executor import ContractViolation
        from twotower.components.example_gen.report import QuarantineLimitExceeded
        from twotower.data.movielens import MovieLensError

        if isinstance(e, (ContractViolation, QuarantineLimitExceeded)):
            print(f"twotower: data rejected: {e}", file=sys.stderr)
            return EXIT_REJECTED
        if isinstance(e, (FileNotFoundError, ValueError, MovieLensError)):  # ConfigError, DataError are ValueErrors
            print(f"twotower: error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


if __name__ == "__main__":
    sys.exit(main())
