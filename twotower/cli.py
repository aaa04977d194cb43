"""The ``twotower`` command line: one entry point, one sub-command per job.

Exit codes: 0 success; 1 the run finished but the model was not blessed (so
nothing was pushed); 2 bad input (config, data or flags), with a message
naming the file and field at fault.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ start-up noise (CUDA plugins) on CPU hosts

import twotower  # noqa: F401, E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

# Library deprecation chatter (google-cloud on Python 3.10, Beam) is not the user's business.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning, module="apache_beam")

DEMO_CUSTOMERS = 5000
DEMO_ARTICLES = 1200
DEMO_TRANSACTIONS = 200_000
EXIT_NOT_BLESSED = 1
EXIT_BAD_INPUT = 2


def _cmd_generate(args: argparse.Namespace) -> int:
    from twotower.data.synthetic import generate_hm

    result = generate_hm(
        args.out,
        customers=args.customers,
        articles=args.articles,
        transactions=args.transactions,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(
        f"wrote {result.transactions} transactions, {result.customers} customers, {result.articles} articles "
        f"({result.first_date} .. {result.last_date}) to {result.out_dir}"
    )
    return 0


def _print_recommendations(title: str, recs: list) -> None:
    print(title)
    for rank, rec in enumerate(recs, 1):
        print(f"  {rank:>2}. {rec.item_id}  {rec.name:<40.40}  {rec.score:.3f}")


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
    )
    print(f"\npipeline finished in {result.seconds:.0f}s; artifacts under {os.path.abspath(args.pipeline_root)}")
    models = result.metrics.get("models", {})
    if models:
        ks = list(next(iter(models.values())))
        print(f"{'model':<12}" + "".join(f"{k:>12}" for k in ks))
        for name, table in models.items():
            print(f"{name:<12}" + "".join(f"{table[k]:>12.4f}" for k in ks))
        print(f"eval users: {result.metrics['eval_users']}; {result.metrics['blessing']['reason']}")
    if not result.pushed_model:
        print("model NOT blessed: nothing was pushed", file=sys.stderr)
        return EXIT_NOT_BLESSED
    print(f"pushed model: {result.pushed_model}")
    if args.show:
        from twotower.serving.recommend import recommend, sample_users

        serving_dir = os.path.dirname(os.path.dirname(result.pushed_model))
        for user in sample_users(data, profile, args.show):
            _print_recommendations(f"\ntop-10 for customer {user}:", recommend(serving_dir, user, 10, data_dir=data))
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from twotower.serving.recommend import recommend

    recs = recommend(args.serving_dir, args.customer_id, args.k, data_dir=args.data, model_name=args.model_name)
    _print_recommendations(f"top-{args.k} for customer {args.customer_id}:", recs)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of the ``twotower`` command."""
    parser = argparse.ArgumentParser(
        prog="twotower",
        description="twotower: a two-tower retrieval recommender on TFX. `twotower COMMAND --help` for flags.",
        epilog="exit codes: 0 ok; 1 model not blessed (nothing pushed); 2 bad config, data or flags",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="data set tools")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    gen = data_commands.add_parser(
        "generate", help="write synthetic H&M-schema CSVs (articles, customers, transactions)"
    )
    gen.add_argument("--out", required=True, help="output directory")
    gen.add_argument("--customers", type=int, default=DEMO_CUSTOMERS, help="number of customers (default %(default)s)")
    gen.add_argument("--articles", type=int, default=DEMO_ARTICLES, help="number of articles (default %(default)s)")
    gen.add_argument(
        "--transactions", type=int, default=DEMO_TRANSACTIONS, help="number of transactions (default %(default)s)"
    )
    gen.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default 0)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_cmd_generate)

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
    run.set_defaults(func=_cmd_run)

    rec = commands.add_parser("recommend", help="top-K items for a customer from the latest pushed model")
    rec.add_argument("--serving-dir", required=True, help="the push destination of `twotower run`")
    rec.add_argument("--customer-id", required=True, help="customer (user) id")
    rec.add_argument("-k", type=int, default=10, help="number of items (default %(default)s)")
    rec.add_argument("--data", help="data directory to read the customer's features from (else sent as missing)")
    rec.add_argument("--model-name", help="model under the serving dir (default: the only one)")
    rec.set_defaults(func=_cmd_recommend)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command in ``argv`` (default sys.argv) and returns its exit code."""
    args = build_parser().parse_args(argv)
    from twotower.components.example_gen.executor import DataError
    from twotower.config import ConfigError

    try:
        return args.func(args)
    except (ConfigError, DataError, FileNotFoundError, ValueError) as e:
        print(f"twotower: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
