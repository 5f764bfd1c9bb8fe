"""`fastslow log ...`: list, show, export and import the session log."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TextIO

from app.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from app.store.export import FORMATS, export, import_jsonl, json_line
from app.store.log import SessionLog, StoreError, result_from_record
from app.store.report import answer_words, kind_name, mark, route_words, run_name



def add_log_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `log list|show|export|import` to the app's subcommands; each handler returns 0 or 2."""
    log = subparsers.add_parser("log", help="the session log: list, show, export, import runs")
    commands = log.add_subparsers(dest="log_command", required=True)

    def command(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--db", metavar="PATH", help="the log file (default: $FASTSLOW_DB or the data folder)")
        sub.set_defaults(func=lambda args: _guard(handler, args))
        return sub

    listing = command("list", "recent runs, newest first", cmd_list)
    listing.add_argument("--session", type=int, metavar="ID")
    listing.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N runs (default 20)")
    show = command("show", "one run in full", cmd_show)
    show.add_argument("run_id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="the complete record, as exported")
    exporting = command("export", "write runs as JSONL, CSV, an HTML report or a SQLite copy", cmd_export)
    exporting.add_argument("--session", type=int, metavar="ID", help="only this session (html: default latest)")
    exporting.add_argument("--format", required=True, choices=FORMATS)
    exporting.add_argument("--output", required=True, metavar="PATH", help="the file to write ('-': stdout)")
    exporting.add_argument("--keep-home-paths", action="store_true",
                           help="keep the home folder in paths (default: write it as ~)")
    importing = command("import", "add the runs of a JSONL export", cmd_import)
    importing.add_argument("file", metavar="FILE")
    return log


def _positive(text: str) -> int:
    """A count of at least 1 (argparse says so in one line when it is not)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def _guard(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """One line on stderr and exit status 2 for any store failure; never a traceback."""
    try:
        return handler(args)
    except StoreError as exc:
        print(f"fastslow: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT


LIST_HEADER = (f"{'run':>5}  {'session':<7} {'when':<16}  {'model':<22} {'mode':<4}  {'kind':<21} {'route':<19} "
               f"{'status':<11} {'finish':<9} {'answer':<11} {'tokens':>6} {'tok/s':>7}  prompt")


def cmd_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """A line per run, newest first, under a header: what ran (model, fair or live, direct or thinking),
    what the router decided, how it ended and whether it was right."""
    out = out or sys.stdout
    with SessionLog.open(args.db, read_only=True) as log:
        runs = log.list_runs(session_id=args.session, limit=args.limit)
    if not runs:
        out.write("no runs in the log yet\n")
        return EXIT_OK
    out.write(LIST_HEADER + "\n")
    for r in runs:
        tps = "—" if r.decode_tps is None else f"{r.decode_tps:.1f}"
        prompt = r.prompt.replace("\n", " ")
        prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
        out.write(f"{r.id:>5}  {r.session_id:<7} {r.created_at[:16].replace('T', ' '):<16}  {r.model or '?':<22} "
                  f"{r.mode:<4}  {kind_name(r):<21} {route_words(r.route, r.route_budget) or '—':<19} "
                  f"{r.status:<11} {r.finish_reason or '—':<9} {answer_words(r.correct, r.no_answer):<11} "
                  f"{r.n_generated:>6} {tps:>7}  {prompt}\n")
    return EXIT_OK


def cmd_show(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with SessionLog.open(args.db, read_only=True) as log:
        record = log.run_record(args.run_id)
    if args.json:
        out.write(json_line(record, indent=2) + "\n")  # NaN and ±Infinity as null: only JSON
        return EXIT_OK
    run, known = record["run"], record["prompt"].get("known_answer")
    result = result_from_record(record)
    out.write(f"run {run['id']} · session {record['session']['id']} · {run_name(result)} · {run['status']}\n")
    out.write(f"\nprompt:\n{record['prompt']['text']}\n")
    if known:
        out.write(f"\nknown answer: {known}\n")
    if run["thinking"]:
        out.write(f"\nthinking:\n{run['thinking']}\n")
    answer = run["text"] or run.get("error") or (f"no answer: {run['no_answer']}" if run.get("no_answer") else "")
    out.write(f"\nanswer:\n{answer}\n")
    if said := mark(result.correct):
        out.write(f"{said}\n")
    out.write("\n")
    for key in ("backend", "quantization", "mode", "route", "route_budget", "finish_reason", "n_generated",
                "ttft_s", "decode_tps", "total_s", "energy_j", "energy_source"):
        out.write(f"{key:>14}: {run.get(key)}\n")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    with SessionLog.open(args.db, read_only=True) as log:
        n = export(log, args.format, args.output, session_id=args.session, keep_home_paths=args.keep_home_paths)
    if args.output != "-":
        print(f"wrote {n} run{'s' if n != 1 else ''} to {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    with SessionLog.open(args.db) as log:
        imported, skipped = import_jsonl(log, args.file)
    print(f"imported {imported} run(s); {skipped} already in the log", file=sys.stderr)
    return EXIT_OK
