"""Reading never writes: `log list`, `log show` and `log export` open the file read-only, so a
read-only (or full) disk still reads, and a closed log is left byte for byte as it was. A file a
newer FastSlow wrote is refused, never rewritten; a damaged one says so."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest
from sqlite_utils import Database
from store_helpers import finished_run

from app.engines.types import GenerationRequest
from app.store import SessionLog, StoreError
from app.store import log as log_module
from app.store.commands import add_log_commands
from app.store.schema import known_names, migrations


def fastslow(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="fastslow")
    add_log_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def snapshot(folder: Path) -> dict:
    """Every file in folder: its bytes' hash, size and modification time."""
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir())}


@pytest.fixture
def closed_log(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "log.db"
    with SessionLog.open(path) as log:
        request = GenerationRequest.from_prompt("What is 2 + 2?")
        prompt_id = log.add_prompt(log.start_session(), request)
        finished_run(log, prompt_id, request, pane=0)
        finished_run(log, prompt_id, request, pane=1)
    assert sorted(p.name for p in folder.iterdir()) == ["log.db"]  # closed: no -wal, no -shm
    return path


def test_list_show_and_export_leave_a_closed_log_as_it_was(closed_log, tmp_path, capsys):
    before = snapshot(closed_log.parent)
    db = str(closed_log)
    assert fastslow("log", "list", "--db", db) == 0
    assert fastslow("log", "show", "1", "--db", db) == 0
    assert fastslow("log", "show", "2", "--json", "--db", db) == 0
    for fmt in ("jsonl", "csv", "html", "sqlite"):
        assert fastslow("log", "export", "--format", fmt, "--output", str(tmp_path / f"out.{fmt}"), "--db", db) == 0
    assert snapshot(closed_log.parent) == before  # no byte, no time, no -wal or -shm
    assert "What is 2 + 2?" in capsys.readouterr().out
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8").count("\n") == 2


def test_the_read_path_opens_read_only(closed_log, monkeypatch):
    uris = []
    real = log_module._connect_read_only

    def spy(path, timeout, immutable):
        uris.append((path, immutable))
        return real(path, timeout, immutable)

    monkeypatch.setattr(log_module, "_connect_read_only", spy)
    monkeypatch.setattr(log_module, "_connect", lambda *a: pytest.fail("a read opened the file to write"))
    with SessionLog.open(closed_log, read_only=True) as log:
        assert len(log.list_runs()) == 2
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            log.db.execute("CREATE TABLE intruder (x)")
        with pytest.raises(StoreError) as err:
            log.start_session()
        assert err.value.kind == "read_only"
    assert uris == [(str(closed_log), True)]  # immutable: the WAL held nothing


def test_a_log_that_does_not_exist_reads_as_empty_and_is_not_created(tmp_path, capsys):
    path = tmp_path / "no" / "such" / "log.db"
    assert fastslow("log", "list", "--db", str(path)) == 0
    assert capsys.readouterr().out == "no runs in the log yet\n"
    assert fastslow("log", "show", "1", "--db", str(path)) == 2
    assert f"there is no run 1 in the session log {path}" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_a_log_being_written_is_read_with_its_wal(tmp_path, capsys):
    path = tmp_path / "log.db"
    with SessionLog.open(path) as writer:  # the app, running: its last commits are in the -wal
        request = GenerationRequest.from_prompt("still running")
        finished_run(writer, writer.add_prompt(writer.start_session(), request), request)
        assert (tmp_path / "log.db-wal").stat().st_size > 0
        assert fastslow("log", "list", "--db", str(path)) == 0
        assert "still running" in capsys.readouterr().out


def test_a_checkpoint_during_an_unlocked_read_is_caught(closed_log, request_):
    reader = SessionLog.open(closed_log, read_only=True)
    assert len(reader.list_runs()) == 2
    with SessionLog.open(closed_log) as writer:  # another window writes and, closing, checkpoints
        finished_run(writer, writer.add_prompt(writer.start_session(), request_), request_)
    with pytest.raises(StoreError, match="was written to while it was read; try again"):
        reader.close()


def test_an_older_file_is_read_without_being_upgraded(tmp_path, capsys):
    path = tmp_path / "old.db"
    db = Database(path)
    migrations.apply(db, stop_before="004_power_supply")
    db.execute("INSERT INTO sessions (uid, started_at) VALUES ('s', '2025-01-01')")
    db.execute("INSERT INTO prompts (uid, session_id, created_at, text, messages, request) "
               "VALUES ('p', 1, '2025-01-01', 'an old question', '[]', '{}')")
    db.execute("INSERT INTO runs (uid, prompt_id, session_id, created_at, pane, mode, status) "
               "VALUES ('r', 1, 1, '2025-01-01T10:00', 0, 'fair', 'ok')")
    db.conn.commit()
    db.close()
    before = snapshot(tmp_path)
    assert fastslow("log", "list", "--db", str(path)) == 0
    assert "an old question" in capsys.readouterr().out
    assert fastslow("log", "export", "--format", "jsonl", "--output", "-", "--db", str(path)) == 0
    assert json.loads(capsys.readouterr().out)["run"]["no_answer"] == ""  # 005's column, from the copy
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("read_only", [False, True], ids=["open", "read"])
def test_a_newer_user_version_is_refused_not_rewritten(closed_log, read_only):
    conn = sqlite3.connect(closed_log)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError) as err:
        SessionLog.open(closed_log, read_only=read_only)
    assert err.value.kind == "newer_schema"
    assert f"schema version is 99, this one knows up to {len(known_names())}" in err.value.message
    conn = sqlite3.connect(closed_log)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 99
    conn.close()


@pytest.mark.parametrize("damage, said", [
    ("ALTER TABLE runs DROP COLUMN correct", "table runs has no column correct"),
    ("DROP TABLE telemetry_samples", "has no table telemetry_samples"),
])
def test_a_damaged_file_says_so_instead_of_a_key_error(closed_log, capsys, damage, said):
    conn = sqlite3.connect(closed_log)
    conn.execute(damage)
    conn.commit()
    conn.close()
    for argv in (["log", "export", "--format", "jsonl", "--output", "-"], ["log", "list"], ["log", "import", "x"]):
        assert fastslow(*argv, "--db", str(closed_log)) == 2
        err = capsys.readouterr().err
        assert "is damaged or was not written by this version of FastSlow" in err and said in err, err
        assert err.count("\n") == 1


# -- a real read-only folder -------------------------------------------------------------------


def _in_child(run) -> dict:
    """run() in a forked child, as the unprivileged user `nobody` when we are root (root ignores
    file modes); returns what it returned (JSON)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            os.write(write, json.dumps(run()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data or b"null")


@pytest.mark.skipif(sys.platform == "win32" or not hasattr(os, "fork"), reason="POSIX modes and fork")
def test_a_log_in_a_read_only_folder_still_lists_and_exports():
    folder = Path(tempfile.mkdtemp(prefix="fastslow-ro-"))  # not under pytest's root-only folder
    try:
        path = folder / "log.db"
        with SessionLog.open(path) as log:
            request = GenerationRequest.from_prompt("read me from a read-only disk")
            finished_run(log, log.add_prompt(log.start_session(), request), request)
        owner = 65534 if os.geteuid() == 0 else os.geteuid()
        os.chown(path, owner, -1)
        os.chown(folder, owner, -1)
        path.chmod(0o400)
        folder.chmod(0o500)  # its owner can read it, and write nothing: no -wal, no -shm, no change

        def read() -> dict:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                codes = [fastslow("log", "list", "--db", str(path)),
                         fastslow("log", "export", "--format", "jsonl", "--output", "-", "--db", str(path))]
            return {"codes": codes, "out": out.getvalue(), "err": err.getvalue(),
                    "writable": os.access(folder, os.W_OK)}

        got = _in_child(read)
        assert got["writable"] is False, "the folder was writable: the test proves nothing"
        assert got["codes"] == [0, 0], got["err"]
        listed, exported = got["out"].split("\n", 2)[1:]  # the header, the run, then the JSONL line
        assert "read me from a read-only disk" in listed and json.loads(exported)["prompt"]["text"] == \
            "read me from a read-only disk"
        assert sorted(p.name for p in folder.iterdir()) == ["log.db"]
    finally:
        folder.chmod(0o700)
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
