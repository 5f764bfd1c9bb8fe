"""A run's record and its row in the log, both ways: the one place the store maps RunResult
(frozen parts, app/record.py) to the runs table's columns and back, as llm's `Response` ↔ its
`responses` row.

The columns are the parts' flat names, unchanged since the first migration; the token times live
in their own table (token_timelines) and so are not a column here.
"""

from __future__ import annotations

import json
import typing
from dataclasses import MISSING, field, fields, make_dataclass
from typing import Any, Mapping, Sequence

from app.record import PARTS, RunResult

TIMELINE = "token_times_s"  # stored in token_timelines, not in runs
# Columns whose Python value is not what SQLite keeps, said once: bools as 0/1 (NULL: unknown where
# the value may be unknown), and the energy breakdown as JSON text.
BOOL_COLUMNS = ("thinking_unclosed", "thinking_budget_hit", "energy_approximate")
MAYBE_BOOL_COLUMNS = ("on_mains", "correct")
JSON_COLUMNS = ("energy_detail",)
# What a column holds where the part keeps something richer (an enum, a read-only mapping).
_STORED_AS = {"status": str, "energy_detail": dict}
_REQUIRED = ("pane", "model", "mode")  # a record without these says nothing: an import refuses it


def _columns() -> list[tuple[str, Any, Any]]:
    """(column, type, default) for every stored name of a RunResult, in the record's order."""
    out: list[tuple[str, Any, Any]] = [("pane", int, MISSING)]
    for part in PARTS.values():
        hints = typing.get_type_hints(part)
        for f in fields(part):
            if f.name == TIMELINE:
                continue
            default = f.default if f.default is not MISSING else f.default_factory()
            if f.name in _REQUIRED:
                default = MISSING
            out.append((f.name, _STORED_AS.get(f.name, hints[f.name]), getattr(default, "value", default)))
    out += [("text", str, ""), ("thinking", str, "")]
    # A dataclass takes its fields without defaults first.
    return sorted(out, key=lambda c: c[2] is not MISSING)


def _column_field(name: str, tp: Any, default: Any) -> tuple:
    if default is MISSING:
        return (name, tp)
    if isinstance(default, (dict, list)):
        return (name, tp, field(default_factory=type(default)))
    return (name, tp, field(default=default))


# The runs table's result columns as a plain (flat) dataclass: what an import is checked against.
RunColumns = make_dataclass("RunColumns", [_column_field(*c) for c in _columns()])
RESULT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RunColumns))


def run_to_row(result: RunResult) -> dict[str, Any]:
    """The record as runs columns (token times aside), ready for SQLite."""
    flat = result.to_dict()
    row = {name: flat[name] for name in RESULT_COLUMNS}
    for name in JSON_COLUMNS:
        row[name] = json.dumps(row[name], ensure_ascii=False)
    return row


def row_to_run(values: Mapping[str, Any], token_times: Sequence[float]) -> RunResult:
    """The record from runs values already decoded (JSON parsed, 0/1 made bool: see the log's reads)."""
    flat = {name: values[name] for name in RESULT_COLUMNS if name in values}
    return RunResult.of(**flat, token_times_s=tuple(token_times))
