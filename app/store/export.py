"""Exports of the session log: JSONL (complete), CSV (flat metrics), an HTML report, a SQLite copy;
and the import of a JSONL export.

Exports replace the user's home directory with `~` unless asked not to, so a file can be shared
without telling the world one's user name or folder layout.

A new export file is its owner's alone (0600): prompts are private.
A CSV text cell a spreadsheet would run as a formula starts with a single quote (OWASP's advice).
JSONL holds only JSON: NaN and ±Infinity are written as null.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from app.store.log import SessionLog, StoreError, json_safe, store_error
from app.store.paths import create_private_file, open_private_for_writing

FORMATS = ("jsonl", "csv", "html", "sqlite")

CSV_COLUMNS = [
    "id", "session_id", "prompt_id", "created_at", "finished_at", "pane", "model", "engine", "backend",
    "quantization", "n_threads", "n_gpu_layers", "n_layers", "device", "background_cores", "load_note", "thought_note", "sample", "n_samples", "samples_note", "mode", "route", "route_budget", "route_confidence",
    "thinking_style", "thinking_budget", "thinking_budget_hit", "thinking_min", "thinking_extended", "thinking_unclosed", "status",
    "finish_reason", "error_kind", "n_prompt_tokens", "n_prompt_evaluated", "n_generated",
    "n_thinking_tokens", "n_answer_tokens", "ttft_s", "ttfat_s", "prompt_eval_s", "prompt_tps",
    "decode_tps", "total_s", "engine_decode_tps", "energy_j", "energy_source", "on_mains", "battery_percent", "model_path", "prompt",
    "known_answer", "correct", "no_answer",
]


# -- home paths --------------------------------------------------------------------------------


def home_scrubber(home: str | None = None) -> Callable[[str], str]:
    """A function that writes the home folder as `~` (whole path components only)."""
    home = str(Path.home()) if home is None else home
    if len(home.rstrip("/\\")) < 2:  # a home of "/" would turn every path into ~
        return lambda text: text
    # The home itself, and its JSON-escaped spelling (Windows backslashes are doubled in JSON).
    spellings = sorted({home, json.dumps(home, ensure_ascii=False)[1:-1]}, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(s) for s in spellings) + r"(?![\w.-])")
    return lambda text: pattern.sub("~", text) if text else text


def _scrub_values(row: dict, scrub: Callable[[str], str]) -> dict:
    return {k: scrub(v) if isinstance(v, str) else v for k, v in row.items()}


# -- spreadsheet formulas ----------------------------------------------------------------------

# What starts a formula in Excel, LibreOffice or Google Sheets (OWASP, "CSV Injection"), with the
# full-width forms some locales read alike; a cell whose first visible character is one counts.
FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")


def is_formula_like(cell: str) -> bool:
    """Whether a spreadsheet could read this text cell as a formula."""
    return bool(cell) and (cell[0] in FORMULA_STARTS or cell.lstrip()[:1] in FORMULA_STARTS)


def neutralise_cell(value: object) -> object:
    """A text cell that could run as a formula, prefixed with a single quote (OWASP's advice), so a
    spreadsheet shows it as text; numbers (-1.5 included) and every other cell are left as they are."""
    if isinstance(value, str) and is_formula_like(value):
        return "'" + value
    return value


# -- writers -----------------------------------------------------------------------------------


@contextmanager
def _text_output(path: str | os.PathLike) -> Iterator[IO[str]]:
    """The file to write, or standard output for "-"; OS errors become StoreErrors."""
    if str(path) == "-":
        yield sys.stdout
        return
    try:
        with open(open_private_for_writing(path), "w", encoding="utf-8", newline="") as out:
            yield out
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}", kind="io") from exc


def write_jsonl(log: SessionLog, path: str | os.PathLike, session_id: int | None = None,
                keep_home_paths: bool = False) -> int:
    """One complete run record per line; returns how many runs were written.

    Only JSON: a NaN or ±Infinity (SQLite keeps infinities; JSON has neither) is written as null.
    """
    scrub = (lambda text: text) if keep_home_paths else home_scrubber()
    n = 0
    with _text_output(path) as out:
        for record in log.records(session_id):
            # Scrub the serialised line: one regex pass, however deep the record.
            out.write(scrub(json_line(record)) + "\n")
            n += 1
    return n


def json_line(record: dict, indent: int | None = None) -> str:
    """The record as JSON, every NaN and ±Infinity in it written as null."""
    try:
        return json.dumps(record, ensure_ascii=False, allow_nan=False, indent=indent)
    except ValueError:  # rare: only then walk the record
        return json.dumps(json_safe(record), ensure_ascii=False, allow_nan=False, indent=indent)


def write_csv(log: SessionLog, path: str | os.PathLike, session_id: int | None = None,
              keep_home_paths: bool = False) -> int:
    """Flat metrics, one run per row, for spreadsheets and pandas; returns the row count.

    A text cell that a spreadsheet would run as a formula (=, +, -, @, tab, CR...) starts with a
    single quote; numbers stay numbers."""
    scrub = (lambda text: text) if keep_home_paths else home_scrubber()
    n = 0
    with _text_output(path) as out:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for record in log.records(session_id):
            values = {**record["run"], "session_id": record["session"]["id"],
                      "prompt_id": record["prompt"]["id"], "prompt": record["prompt"]["text"],
                      "known_answer": record["prompt"].get("known_answer")}
            row = _scrub_values({name: values.get(name) for name in CSV_COLUMNS}, scrub)
            writer.writerow({name: neutralise_cell(value) for name, value in row.items()})
            n += 1
    return n


def write_html(log: SessionLog, path: str | os.PathLike, session_id: int | None = None,
               keep_home_paths: bool = False) -> int:
    """A self-contained report of one session (the latest when none is given); returns run count."""
    from app.store.report import render_session  # the one module that knows HTML

    session_id = session_id if session_id is not None else log.latest_session_id()
    if session_id is None:
        raise StoreError(f"the session log {log.path} has no sessions to report", kind="not_found")
    records = list(log.records(session_id))
    if not records and session_id not in {s.id for s in log.sessions()}:
        raise StoreError(f"there is no session {session_id} in the session log {log.path}", kind="not_found")
    scrub = (lambda text: text) if keep_home_paths else home_scrubber()
    page = render_session(session_id, records, scrub)
    with _text_output(path) as out:
        out.write(page)
    return len(records)


def copy_sqlite(log: SessionLog, path: str | os.PathLike, session_id: int | None = None,
                keep_home_paths: bool = False) -> int:
    """A standalone copy of the database (VACUUM INTO), optionally of one session; returns runs."""
    target = str(path)
    try:
        # Made empty and 0600 first: VACUUM INTO fills an empty file, and SQLite keeps its mode.
        if not create_private_file(target):
            raise StoreError(f"{target} already exists; choose a new file name for the copy", kind="io")
    except OSError as exc:
        raise StoreError(f"cannot write {target}: {exc.strerror or exc}", kind="io") from exc
    try:
        log.vacuum_into(target)
        scrub = None if keep_home_paths else home_scrubber()
        try:
            conn = sqlite3.connect(target)
            try:
                _trim_copy(conn, session_id, scrub)
                return conn.execute("SELECT count(*) FROM runs").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise store_error(exc, target) from exc
    except BaseException:
        Path(target).unlink(missing_ok=True)  # no half copy left behind
        raise


def _trim_copy(conn: sqlite3.Connection, session_id: int | None, scrub: Callable[[str], str] | None) -> None:
    conn.execute("PRAGMA foreign_keys=ON")  # deleting a session cascades to its prompts, runs...
    with conn:
        if session_id is not None:
            conn.execute("DELETE FROM sessions WHERE id != ?", [session_id])
        if scrub is not None:
            conn.create_function("scrub", 1, scrub, deterministic=True)
            for table, column in _text_columns(conn):
                conn.execute(f'UPDATE "{table}" SET "{column}" = scrub("{column}") '
                             f'WHERE "{column}" != scrub("{column}")')
    conn.execute("VACUUM")  # deleted and overwritten values must not linger in free pages


def _text_columns(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "AND name NOT LIKE 'sqlite_%'")]
    return [(t, c[1]) for t in tables for c in conn.execute(f'PRAGMA table_info("{t}")') if c[2] == "TEXT"]


WRITERS: dict[str, Callable[..., int]] = {
    "jsonl": write_jsonl, "csv": write_csv, "html": write_html, "sqlite": copy_sqlite,
}


def export(log: SessionLog, fmt: str, path: str | os.PathLike, session_id: int | None = None,
           keep_home_paths: bool = False) -> int:
    """Write `fmt` (one of FORMATS) to path; returns how many runs it holds."""
    if fmt not in WRITERS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    return WRITERS[fmt](log, path, session_id=session_id, keep_home_paths=keep_home_paths)


# -- import ------------------------------------------------------------------------------------


def import_jsonl(log: SessionLog, path: str | os.PathLike) -> tuple[int, int]:
    """Add the runs of a JSONL export to log, all or nothing; returns (imported, skipped)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [(n, line) for n, line in enumerate(f, start=1) if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}", kind="bad_import") from exc
    records = []
    for n, line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise StoreError(f"{path} line {n} is not JSON ({exc.msg})", kind="bad_import") from exc
        except RecursionError as exc:
            raise StoreError(f"{path} line {n} is nested too deeply to be a FastSlow run record",
                             kind="bad_import") from exc
        except ValueError as exc:  # an integer of thousands of digits
            raise StoreError(f"{path} line {n} cannot be read as JSON ({str(exc).split(';')[0]})",
                             kind="bad_import") from exc
    try:
        return log.import_records(records)
    except StoreError as exc:
        if exc.kind == "bad_import" and exc.index is not None:
            line_no = lines[exc.index - 1][0]
            raise StoreError(f"{path} line {line_no}: {exc.message}", kind="bad_import") from exc
        raise
