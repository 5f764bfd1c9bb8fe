"""`fastslow log ...`: what a user types, what they see, and exit codes 0 or 2."""

from __future__ import annotations

import argparse
import json

import pytest
from store_helpers import finished_run

from app.store import SessionLog
from app.store.commands import add_log_commands


def fastslow(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="fastslow")
    add_log_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def db(db_path, log, prompt_id, request_):
    finished_run(log, prompt_id, request_, pane=0)
    finished_run(log, prompt_id, request_, pane=1)
    log.close()
    return str(db_path)


def test_log_list_shows_recent_runs(db, capsys):
    assert fastslow("log", "list", "--db", db) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].lstrip().startswith("2") and "88.8 tok/s" in lines[0]


def test_log_list_reads_the_environment(db, capsys, monkeypatch):
    monkeypatch.setenv("FASTSLOW_DB", db)
    assert fastslow("log", "list", "--limit", "1") == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


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
