"""The ``twotower`` command line: one entry point, one sub-command per job.

Each group of sub-commands lives in its own module (data, run, contract, bench, serving) and
registers its parsers here; exit codes and error types come from ``twotower.errors``, which
none of them imports TensorFlow for, so ``twotower query`` and ``--help`` stay light.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from typing import List, Optional

from twotower.cli.bench import add_bench_commands
from twotower.cli.contract import add_contract_commands
from twotower.cli.data import add_data_commands
from twotower.cli.run import add_run_command, add_vertex_command
from twotower.cli.serving import add_serving_commands
from twotower.errors import (
    BAD_INPUT,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_NOT_BLESSED,
    EXIT_OK,
    EXIT_REJECTED,
    REJECTED,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_NOT_BLESSED", "EXIT_OK", "EXIT_REJECTED", "build_parser", "main"]

# Library deprecation chatter (google-cloud on Python 3.10, Beam) is not the user's business.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning, module="apache_beam")


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of the ``twotower`` command."""
    parser = argparse.ArgumentParser(
        prog="twotower",
        description="twotower: a two-tower retrieval recommender on TFX. `twotower COMMAND --help` for flags.",
        epilog="exit codes: 0 ok; 1 model not blessed (nothing pushed); 2 bad config, flags or unreadable data; "
        "3 data rejected by its contract (quarantine limit, anomalies, drift); 4 unexpected failure (traceback)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_data_commands(commands)  # data generate, data movielens
    add_run_command(commands)
    add_vertex_command(commands)
    add_contract_commands(commands)  # validate, drift, schema infer
    add_bench_commands(commands)  # bench quality
    add_serving_commands(commands)  # recommend, serve, query, events
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command in ``argv`` (default sys.argv) and returns its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except REJECTED as e:
        print(f"twotower: data rejected: {e}", file=sys.stderr)
        return EXIT_REJECTED
    except BAD_INPUT as e:  # ConfigError and DataError are ValueErrors
        print(f"twotower: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - anything else is a failure, not "not blessed" (Python's 1)
        traceback.print_exc()
        print(f"twotower: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
