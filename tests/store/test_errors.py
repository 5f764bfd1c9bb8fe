"""An unusable database says why in one sentence, and the app goes on in memory."""

from __future__ import annotations

import sqlite3

import pytest
from store_helpers import finished_run, make_result

from app.store import MemoryLog, SessionLog, StoreError, open_log
from app.store import log as log_module


def test_a_locked_database_is_a_clear_error(db_path, log):
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program is writing and does not let go
    try:
        with pytest.raises(StoreError) as err:
            SessionLog.open(db_path, timeout=0.1)
        assert err.value.kind == "locked" and "is locked by another program" in err.value.message
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_read_only_database_is_a_clear_error(db_path, log, monkeypatch):
    log.close()
    # chmod does not stop root, so open the file the way SQLite opens a read-only file.
    monkeypatch.setattr(log_module, "_connect",
                        lambda path, timeout: sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    with pytest.raises(StoreError) as err:
        SessionLog.open(db_path)
    assert err.value.kind == "read_only" and "is read-only" in err.value.message


def test_a_corrupt_database_is_a_clear_error(db_path):
    db_path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(StoreError) as err:
        SessionLog.open(db_path)
    assert err.value.kind == "corrupt" and "not a readable SQLite database" in err.value.message


def test_a_folder_that_cannot_hold_the_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError) as err:
        SessionLog.open(blocker / "log.db")  # its "folder" is a file
    assert err.value.kind == "cant_open"


def test_a_full_disk_is_a_clear_error_and_the_run_can_be_kept(log, prompt_id, request_):
    pages = log.db.execute("PRAGMA page_count").fetchone()[0]
    log.db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk fills up now
    run_id = log.start_run(prompt_id, pane=0)
    big = make_result(text="x" * 1_000_000)
    with pytest.raises(StoreError) as err:
        log.finish_run(run_id, big)
    assert err.value.kind == "full" and "disk is full" in err.value.message
    assert log.get_run(run_id).status == "running"  # rolled back whole, nothing half-written


def test_open_log_falls_back_to_memory_with_the_reason(db_path):
    db_path.write_bytes(b"garbage" * 1000)
    log, error = open_log(db_path)
    assert isinstance(log, MemoryLog) and error.kind == "corrupt"
    sid = log.start_session()
    assert log.sessions()[0].id == sid


def test_a_memory_log_is_saved_later_once_and_only_once(tmp_path, request_):
    memory = MemoryLog()
    prompt_id = memory.add_prompt(memory.start_session(), request_)
    done = finished_run(memory, prompt_id, request_)
    memory.start_run(prompt_id, pane=1)  # still running when saved
    with SessionLog.open(tmp_path / "later.db") as log:
        assert memory.save_to(log) == (2, 0)
        assert memory.save_to(log) == (0, 2)
        statuses = sorted(r.status for r in log.list_runs())
        assert statuses == ["interrupted", "ok"]
        assert log.get_run(log.list_runs()[-1].id) == memory.get_run(done)
