"""`fastslow log ...`: what a user types, what they see, and exit codes 0 or 2."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from store_helpers import INFO, finished_run, fastslow

from app.engines.types import GenerationRequest
from app.runs import RunResult
from app.store import SessionLog



@pytest.fixture
def db(db_path, log, prompt_id, request_):
    finished_run(log, prompt_id, request_, pane=0)
    finished_run(log, prompt_id, request_, pane=1)
    log.close()
    return str(db_path)


def test_log_list_shows_recent_runs(db, capsys):
    assert fastslow("log", "list", "--db", db) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["run", "session", "when"] and "tok/s" in header
    assert len(lines) == 2 and lines[0].lstrip().startswith("2") and "88.8" in lines[0]


def test_log_list_says_what_ran_how_it_ended_and_whether_it_was_right(tmp_path, capsys):
    """Mode, kind, the router's route, the finish reason and the mark, under a header that names them."""
    path = tmp_path / "log.db"
    with SessionLog.open(path) as log:
        request = GenerationRequest.from_prompt("A train leaves at 3:40 pm and takes 2 h 35 min. When?")
        prompt_id = log.add_prompt(log.start_session(mode="live"), request, known_answer="6:15 pm")
        think = SimpleNamespace(route="think", budget=256, confidence=0.8, reasons=())
        for pane, result, decision in [
            (0, RunResult.of(pane=0, model="smollm2-135m", mode="live", status="ok", finish_reason="stop",
                          text="360", correct=False), None),
            (1, RunResult.of(pane=1, model="smollm2-135m", mode="live", status="ok", finish_reason="length",
                          strategy="scaffold", thinking="3:40 plus…", n_thinking_tokens=24, correct=False,
                          no_answer="max tokens (24) ran out before the answer: raise max tokens"), think),
        ]:
            log.finish_run(log.start_run(prompt_id, pane, INFO, request, mode="live", decision=decision), result)
    assert fastslow("log", "list", "--db", str(path)) == 0
    header, thinking, fast = capsys.readouterr().out.splitlines()
    assert header.split()[3:10] == ["model", "mode", "kind", "route", "status", "finish", "answer"]
    assert "Pane" not in header
    assert thinking.split()[4:12] == ["smollm2-135m", "live", "thinking", "(scaffolded)", "think", "(budget",
                                      "256)", "ok"]
    assert "length" in thinking and "✗ no answer" in thinking
    assert fast.split()[4:10] == ["smollm2-135m", "live", "direct", "—", "ok", "stop"] and "✗ wrong" in fast


def test_log_list_reads_the_environment(db, capsys, monkeypatch):
    monkeypatch.setenv("FASTSLOW_DB", db)
    assert fastslow("log", "list", "--limit", "1") == 0
    assert len(capsys.readouterr().out.splitlines()) == 2  # the header and one run


def test_log_list_of_an_empty_log_says_so(tmp_path, capsys):
    assert fastslow("log", "list", "--db", str(tmp_path / "empty.db")) == 0
    assert capsys.readouterr().out == "no runs in the log yet\n"


def test_log_show_prints_one_run(db, capsys):
    assert fastslow("log", "show", "1", "--db", db) == 0
    out = capsys.readouterr().out
    assert "It arrives at 6:15 pm." in out and "thinking:" in out
    assert fastslow("log", "show", "1", "--json", "--db", db) == 0
    assert json.loads(capsys.readouterr().out)["run"]["id"] == 1


def test_log_export_then_import(db, tmp_path, capsys):
    out = tmp_path / "runs.jsonl"
    assert fastslow("log", "export", "--format", "jsonl", "--output", str(out), "--db", db) == 0
    assert "wrote 2 runs" in capsys.readouterr().err
    other = str(tmp_path / "other.db")
    assert fastslow("log", "import", str(out), "--db", other) == 0
    assert "imported 2 run(s)" in capsys.readouterr().err
    with SessionLog.open(other) as log:
        assert len(log.list_runs()) == 2


@pytest.mark.parametrize("argv, message", [
    (["log", "show", "99"], "there is no run 99"),
    (["log", "export", "--format", "html", "--session", "7", "--output", "-"], "no session 7"),
    (["log", "import", "missing.jsonl"], "cannot read missing.jsonl"),
])
def test_errors_are_one_line_and_exit_2(db, capsys, argv, message):
    assert fastslow(*argv, "--db", db) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastslow: ") and message in err and err.count("\n") == 1


def test_an_unusable_database_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite" * 100)
    assert fastslow("log", "list", "--db", str(bad)) == 2
    assert "not a readable SQLite database" in capsys.readouterr().err
