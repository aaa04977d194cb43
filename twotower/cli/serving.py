"""The serving commands of ``twotower``: recommend, serve, query and events.

Nothing here imports TensorFlow at module level: ``twotower query`` uses the REST API only.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from twotower.cli.output import print_recommendations
from twotower.errors import EXIT_BAD_INPUT


def _cmd_recommend(args: argparse.Namespace) -> int:
    if (args.url is None) == (args.serving_dir is None):
        raise ValueError("recommend: give --serving-dir (the pushed model, here) or --url (a running server)")
    if args.url is not None:  # the server fills the history from its store
        if args.data:
            raise ValueError("recommend: --data reads features for --serving-dir; with --url pass none")
        args.signature, args.feature, args.id_feature, args.version = "serving_default", None, None, None
        args.model_name = args.model_name or "twotower"
        return _cmd_query(args)
    from twotower.serving.recommend import recommend

    recs = recommend(args.serving_dir, args.customer_id, args.k, data_dir=args.data, model_name=args.model_name)
    print_recommendations(f"top-{args.k} for customer {args.customer_id}:", recs)
    return 0


def _pairs(flag: str, items: Optional[List[str]]) -> List[tuple]:
    """Returns [(name, value)] from repeated ``--flag NAME=VALUE`` arguments."""
    pairs = []
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"{flag} expects NAME=VALUE, got {item!r}")
        pairs.append((name, value))
    return pairs


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from twotower.serving.server import RestServer, ServerConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    labels = []
    for name, version in _pairs("--label", args.label):
        if not version.isdigit():
            raise ValueError(f"--label {name}={version}: a version is a number")
        labels.append((name, int(version)))
    config = ServerConfig(
        serving_dir=args.serving_dir,
        model_names=tuple(args.model_name or ()),
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        batch_timeout_ms=args.batch_timeout_ms,
        batch_threads=args.batch_threads,
        keep_versions=args.keep_versions,
        poll_seconds=args.poll_seconds,
        labels=tuple(labels),
        max_body_bytes=args.max_body_bytes,
        max_rows=args.max_rows,
        read_timeout=args.read_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
        drain_seconds=args.drain_seconds,
        follow_symlinks=args.follow_symlinks,
        tf_threads=args.tf_threads,
        history_store=args.history_store,
        event_log_dir=args.event_log or "",
    )

    def ready(server: RestServer) -> None:
        loaded = ", ".join(f"{m}/{v}" for m, v in sorted(server.registry.loaded())) or "none yet"
        print(f"serving {os.path.abspath(args.serving_dir)} (versions: {loaded}) on http://{args.host}:{server.port}")
        print(f"  curl http://localhost:{server.port}/v1/models/<model>   (Ctrl-C stops)", flush=True)

    try:
        RestServer(config).serve_forever(on_ready=ready)
    except OSError as e:
        raise ValueError(f"--host {args.host} --port {args.port}: cannot listen ({e.strerror or e})") from None
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    from twotower.serving.client import QueryError, query

    try:
        recs = query(
            args.url,
            args.customer_id,
            model_name=args.model_name,
            k=args.k,
            signature=args.signature,
            features=dict(_pairs("--feature", args.feature)),
            id_feature=args.id_feature,
            version=args.version,
        )
    except QueryError as e:  # answered here: main()'s error handling would load TensorFlow first
        print(f"twotower: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print_recommendations(f"top-{len(recs)} for customer {args.customer_id} from {args.url}:", recs)
    return 0


def _cmd_events(args: argparse.Namespace) -> int:
    from twotower.serving.client import QueryError, send_events

    try:
        stored = send_events(args.url, args.file, args.batch, args.from_line)
    except QueryError as e:
        print(f"twotower: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{stored} events from {args.file} stored by {args.url}")
    return 0


def _add_history_flags(serve: argparse.ArgumentParser) -> None:
    """Adds the online history store's flags to ``twotower serve``."""
    serve.add_argument(
        "--history-store",
        default="",
        metavar="URL",
        help="where each customer's newest items live: sqlite:///PATH or redis://HOST:PORT/DB, seeded from each "
        "new version's exported histories plus the logged events after its data end; 'none': only the exported "
        "histories, no events (default: sqlite:///SERVING_DIR/history.sqlite)",
    )
    serve.add_argument(
        "--event-log",
        metavar="DIR",
        help="accepted events, fsynced, one CSV a day in the interactions layout (default: SERVING_DIR/.events)",
    )


def _add_limit_flags(serve: argparse.ArgumentParser) -> None:
    """Adds the flags that bound what one client can take from ``twotower serve``."""
    serve.add_argument(
        "--max-rows", type=int, default=1000, help="rows (instances) per predict; more get 400 (default %(default)s)"
    )
    serve.add_argument(
        "--read-timeout",
        type=float,
        default=30.0,
        help="seconds for a request's head, and again for its body (408); slower clients are cut (default 30)",
    )
    serve.add_argument(
        "--idle-timeout", type=float, default=75.0, help="seconds an idle keep-alive connection stays open (default 75)"
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=1024,
        help="open connections; past it idle ones close, else 503; lowered to fit `ulimit -n` (default %(default)s)",
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        help="on SIGTERM/SIGINT: stop accepting, answer what was read, exit within this (default 30)",
    )
    serve.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="load versions whose symlinks lead outside the serving dir (default: refused)",
    )


def add_serving_commands(commands: argparse._SubParsersAction) -> None:
    """Adds ``recommend``, ``serve`` and ``query`` to the ``twotower`` sub-command parser ``commands``."""
    rec = commands.add_parser("recommend", help="top-K items for a customer from the latest pushed model")
    rec.add_argument("--serving-dir", help="the push destination of `twotower run` (or --url)")
    rec.add_argument("--url", help="a running `twotower serve` instead: its stored history of the customer is used")
    rec.add_argument("--customer-id", required=True, help="customer (user) id")
    rec.add_argument("-k", type=int, default=10, help="number of items (default %(default)s)")
    rec.add_argument("--data", help="data directory to read the customer's features from (else sent as missing)")
    rec.add_argument("--model-name", help="model under the serving dir (default: the only one; twotower with --url)")
    rec.set_defaults(func=_cmd_recommend)

    serve = commands.add_parser(
        "serve",
        help="serve every pushed version with TF Serving's REST API (hot reload, batching, /metrics) and the "
        "online history store (POST /v1/events, GET|DELETE /v1/users/ID/history)",
    )
    serve.add_argument("--serving-dir", required=True, help="the push destination: <dir>/<model>/<version>/")
    serve.add_argument("--port", type=int, default=8501, help="REST port (default %(default)s, as TF Serving)")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default %(default)s, all)")
    serve.add_argument(
        "--model-name", action="append", help="serve this model (repeatable; default: every model in the dir)"
    )
    serve.add_argument(
        "--max-batch-size", type=int, default=32, help="rows per model call; 1 turns batching off (default %(default)s)"
    )
    serve.add_argument(
        "--batch-timeout-ms",
        type=float,
        default=0.0,
        help="longest wait for a batch to fill; 0: none, batches form while the model is busy (default 0)",
    )
    serve.add_argument("--batch-threads", type=int, default=1, help="model calls in parallel (default %(default)s)")
    serve.add_argument(
        "--keep-versions", type=int, default=1, help="serve the latest N versions on disk (default %(default)s)"
    )
    serve.add_argument(
        "--poll-seconds", type=float, default=1.0, help="how often to look for new versions; 0: never (default 1)"
    )
    serve.add_argument("--label", action="append", help="version label, NAME=VERSION (repeatable): /labels/NAME")
    serve.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="larger requests get 413 (default %(default)s)"
    )
    _add_limit_flags(serve)
    _add_history_flags(serve)
    serve.add_argument(
        "--tf-threads", type=int, default=0, help="TensorFlow intra/inter-op threads; 0: one per core (default)"
    )
    serve.set_defaults(func=_cmd_serve)

    q = commands.add_parser("query", help="top-K items for a customer from a running server (REST API only)")
    q.add_argument("--url", required=True, help="the server, e.g. http://localhost:8501")
    q.add_argument("--customer-id", required=True, help="customer (user) id; unknown ids get recommendations too")
    q.add_argument("-k", type=int, default=10, help="number of items (default %(default)s)")
    q.add_argument("--model-name", default="twotower", help="model name (default %(default)s)")
    q.add_argument("--version", type=int, help="model version (default: the latest the server has)")
    q.add_argument(
        "--signature", default="serving_default", help="serving_default (exact) or scann (default %(default)s)"
    )
    q.add_argument("--feature", action="append", help="a user feature, NAME=VALUE (repeatable; others sent missing)")
    q.add_argument("--id-feature", help="input that takes the id (default: the one string input named *id)")
    q.set_defaults(func=_cmd_query)

    ev = commands.add_parser(
        "events", help="send interactions (a CSV in the profile's interactions layout) to a running server's store"
    )
    ev.add_argument("--url", required=True, help="the server, e.g. http://localhost:8501")
    ev.add_argument("--file", required=True, help="CSV (or .csv.gz) with a header: user id, item id, timestamp, ...")
    ev.add_argument("--batch", type=int, default=1000, help="events per call, 1 to 1000 (default %(default)s)")
    ev.add_argument("--from-line", type=int, default=2, help="first file line to send (default 2: after the header)")
    ev.set_defaults(func=_cmd_events)
