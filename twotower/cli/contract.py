"""``twotower validate``, ``twotower drift`` and ``twotower schema infer``: the data contract on its own."""

from __future__ import annotations

import argparse
import os
import sys
import time

from twotower.errors import EXIT_OK, EXIT_REJECTED


def _cmd_validate(args: argparse.Namespace) -> int:
    from twotower.config import load_profile
    from twotower.ingest.report import format_report
    from twotower.schema.checks import format_anomalies
    from twotower.schema.validate import QUARANTINE_FILE, VALIDATION_FILE, run_validate

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
    return EXIT_OK if result.passed else EXIT_REJECTED


def _cmd_drift(args: argparse.Namespace) -> int:
    from twotower.config import load_profile
    from twotower.schema.contract import load_schema
    from twotower.schema.drift import compare, write_report
    from twotower.schema.validate import statistics_of

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
    return EXIT_REJECTED if report["drifted"] else EXIT_OK


def _cmd_schema_infer(args: argparse.Namespace) -> int:
    from twotower.config import load_profile
    from twotower.schema.infer import infer_contract

    path = infer_contract(load_profile(args.config), args.data, args.out, tuple(args.closed_domain or ()))
    print(f"wrote a draft contract to {path}: review domains and ranges, then set contract.schema in the profile")
    return EXIT_OK


def add_contract_commands(commands: argparse._SubParsersAction) -> None:
    """Adds ``validate``, ``drift`` and ``schema infer`` to the ``twotower`` sub-command parser ``commands``."""
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

    schema = commands.add_parser("schema", help="data contract tools")
    schema_commands = schema.add_subparsers(dest="schema_command", required=True, metavar="COMMAND")
    infer = schema_commands.add_parser("infer", help="draft a contract schema (.pbtxt) from a data set")
    infer.add_argument("--config", default="hm", help="profile (default hm)")
    infer.add_argument("--data", required=True, help="directory with the profile's CSV files")
    infer.add_argument("--out", required=True, help="schema file to write (.pbtxt)")
    infer.add_argument(
        "--closed-domain",
        action="append",
        metavar="COLUMN",
        help="close this categorical column's domain on the values seen (repeatable; default: all open)",
    )
    infer.set_defaults(func=_cmd_schema_infer)
