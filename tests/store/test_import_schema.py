"""`log import` lets in only records of the record's schema: a value of the wrong type, out of
SQLite's range, not finite, not valid text or nested without end is refused with one sentence
naming its line, and nothing of the file is imported; `log list` goes on working."""

from __future__ import annotations

import copy
import json
from dataclasses import fields

import pytest
from store_helpers import finished_run, fastslow

from app.runs import RunResult
from app.store import SessionLog, StoreError
from app.store.export import import_jsonl, write_jsonl
from app.store.codec import RunColumns
from app.store.log import RunPlan, fit_record



@pytest.fixture
def good_record(tmp_path, log, prompt_id, request_) -> dict:
    """A real record, as `log export --format jsonl` writes it."""
    finished_run(log, prompt_id, request_)
    out = tmp_path / "good.jsonl"
    write_jsonl(log, out)
    return json.loads(out.read_text(encoding="utf-8"))


def _with(record: dict, dotted: str, value) -> dict:
    record = copy.deepcopy(record)
    *parents, key = dotted.split(".")
    target = record
    for part in parents:
        target = target[part]
    target[key] = value
    return record


# (where, value, what the sentence says): each is the issue's, or one of its kind.
BAD = [
    ("run.decode_tps", "x<script>", "run.decode_tps must be a finite number or null, not the text 'x<script>'"),
    ("run.battery_percent", "50", "run.battery_percent must be a finite number or null, not the text '50'"),
    ("run.status", 5, "run.status must be text, not 5"),
    ("run.status", "pwned", "run.status must be one of running, ok, cancelled, failed, interrupted"),
    ("run.n_generated", "abc", "run.n_generated must be a whole number that fits in 64 bits, not the text 'abc'"),
    ("run.n_generated", 2**70, "run.n_generated must be a whole number that fits in 64 bits, not a number too large"),
    ("run.n_generated", 2**63, "run.n_generated must be a whole number that fits in 64 bits"),
    ("run.n_generated", True, "run.n_generated must be a whole number that fits in 64 bits, not true"),
    ("run.n_generated", 1.5, "run.n_generated must be a whole number"),
    ("run.energy_j", 3.5, "run.energy_j has no run.energy_source"),
    ("run.thinking_unclosed", 1, "run.thinking_unclosed must be true or false, not 1"),
    ("run.text", None, "run.text must be text, not null"),
    ("run.text", "\ud800", "run.text is not valid text"),
    ("run.energy_detail", {"w": [1, {"x": float("nan")}]}, "run.energy_detail holds NaN"),
    ("run.route_reasons", ["fine", 3], "run.route_reasons[1] must be text, not 3"),
    ("run.params", "not an object", "run.params must be a JSON object or null"),
    ("run.uid", None, "run.uid must be text, not null"),
    ("timeline.t", [0.1, 0.2], "timeline.t has 2 times for 5 channels"),
    ("timeline.t", [0.1, "x", 0.3, 0.4, 0.5], "timeline.t[1] must be a finite number, not the text 'x'"),
    ("timeline.channel", ["answer", "answer", "answer", "answer", "shout"], "timeline.channel must hold only"),
    ("telemetry", [{"t_s": 0, "name": "power_w", "value": "12"}], "telemetry[0].value must be a finite number"),
    ("telemetry", [{"t_s": 0, "value": 12.0}], "telemetry[0].name is missing"),
    ("session.host", json.loads("[" * 70 + "]" * 70), "session.host must be a JSON object or null, not a list"),
    ("session.host", {"deep": json.loads("[" * 70 + "]" * 70)}, "session.host is nested deeper than 64 levels"),
    ("prompt.messages", [{"role": "user"}], "prompt.messages[0].content is missing"),
    ("prompt.known_answer", 42, "prompt.known_answer must be text or null, not 42"),
    ("version", "1", "version must be a whole number that fits in 64 bits, not the text '1'"),
]


@pytest.mark.parametrize("where, value, sentence", BAD, ids=[f"{w}={v!r}"[:40] for w, v, _ in BAD])
def test_a_record_of_the_wrong_shape_is_refused_by_line_and_nothing_is_imported(
        tmp_path, capsys, good_record, where, value, sentence):
    bad = _with(good_record, where, value)
    good = _with(good_record, "run.uid", "another-run")
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    db = str(tmp_path / "fresh.db")
    assert fastslow("log", "import", str(path), "--db", db) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastslow: {path} line 2: record 2 ") and err.count("\n") == 1, err
    assert sentence in err
    # Nothing of the file came in, not even its good first line; the log still lists.
    assert fastslow("log", "list", "--db", db) == 0
    assert capsys.readouterr().out == "no runs in the log yet\n"


@pytest.mark.parametrize("line, sentence", [
    ("[" * 100_000 + "]" * 100_000, "line 1 is nested too deeply"),
    ('{"n": ' + "9" * 5000 + "}", "line 1 cannot be read as JSON (Exceeds the limit (4300 digits)"),
    ('{"format": "fastslow-run", "version": 1, "run": {"decode_tps": NaN}}', "line 1: record 1"),
    ('"just a string"', "record 1 is not a FastSlow run record (the record must be a JSON object"),
])
def test_json_that_python_chokes_on_is_one_sentence(tmp_path, capsys, line, sentence):
    path = tmp_path / "odd.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    assert fastslow("log", "import", str(path), "--db", str(tmp_path / "fresh.db")) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastslow: ") and err.count("\n") == 1 and sentence in err, err


def test_nan_in_a_json_line_is_refused_where_it_sits(tmp_path, good_record):
    path = tmp_path / "nan.jsonl"
    path.write_text(json.dumps(_with(good_record, "run.decode_tps", float("nan"))) + "\n", encoding="utf-8")
    with SessionLog.open(tmp_path / "fresh.db") as fresh:
        with pytest.raises(StoreError, match="run.decode_tps must be a finite number or null, not NaN"):
            import_jsonl(fresh, path)
        assert fresh.list_runs() == []


def test_every_record_the_log_writes_fits_the_schema(good_record):
    fitted = fit_record(good_record)
    assert fitted["run"]["decode_tps"] == good_record["run"]["decode_tps"]
    assert fitted["timeline"] == good_record["timeline"]


def test_absent_optional_fields_take_their_defaults(tmp_path, good_record):
    """A record from before a field existed (no no_answer, no correct) still imports."""
    for name in ("no_answer", "correct", "on_mains", "battery_percent", "route", "params"):
        del good_record["run"][name]
    del good_record["telemetry"], good_record["timeline"]
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(good_record) + "\n", encoding="utf-8")
    with SessionLog.open(tmp_path / "fresh.db") as fresh:
        assert import_jsonl(fresh, path) == (1, 0)
        [run] = fresh.list_runs()
        assert (run.no_answer, run.correct) == ("", None)


def test_the_schema_types_every_runs_column(log):
    """A migration that adds a runs column must give it a type here (a part of RunResult, or RunPlan)."""
    columns = set(log.db["runs"].columns_dict) - {"prompt_id", "session_id", "writer"}
    typed = {f.name for f in fields(RunPlan)} | {f.name for f in fields(RunColumns)}
    assert columns == typed


def test_a_file_damaged_by_another_tool_says_so_instead_of_crashing_list(db_path, log, prompt_id, request_,
                                                                         capsys):
    run_id = finished_run(log, prompt_id, request_)
    log.db.execute("UPDATE runs SET decode_tps = 'x<script>' WHERE id = ?", [run_id])
    log.db.conn.commit()
    log.close()
    for argv in (["log", "list"], ["log", "show", str(run_id)], ["log", "export", "--format", "csv", "--output", "-"]):
        assert fastslow(*argv, "--db", str(db_path)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is damaged: run 1 cannot be read (run.decode_tps must be" in err, err
