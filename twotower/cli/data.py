"""``twotower data generate``, ``data movielens`` and ``data with-events``: the bundled and the fetched data sets,
and a data set with the events a server logged appended."""

from __future__ import annotations

import argparse

from twotower.data.synthetic import DEMO_ARTICLES, DEMO_CUSTOMERS, DEMO_TRANSACTIONS


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


def _cmd_with_events(args: argparse.Namespace) -> int:
    from twotower.config import load_profile
    from twotower.data.with_events import with_events

    result = with_events(load_profile(args.config), args.data, args.events, args.out)
    print(f"wrote {result.out_dir}: {result.rows} logged events from {len(result.event_files)} files appended")
    return 0


def add_data_commands(commands: argparse._SubParsersAction) -> None:
    """Adds ``data generate`` and ``data movielens`` to the ``twotower`` sub-command parser ``commands``."""
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
    we = data_commands.add_parser(
        "with-events", help="copy a data set with the events `twotower serve` logged appended to its interactions"
    )
    we.add_argument("--config", default="hm", help="profile name or YAML path (default %(default)s)")
    we.add_argument("--data", required=True, help="the data directory the model was trained on")
    we.add_argument("--events", required=True, help="the event log directory (default of serve: SERVING_DIR/.events)")
    we.add_argument("--out", required=True, help="the new data directory, for `twotower run --data`")
    we.set_defaults(func=_cmd_with_events)
