"""The app's file dialogs leave the session log's locks alone.

SQLite's locks are POSIX advisory locks, dropped by any close() of the file in the process; Qt's
own icon provider opened the -wal and -shm files of a listed folder to sniff their type. A second
process then took the log for unused and deleted its WAL, and runs written afterwards were
invisible to every other process. Here: a real dialog on the log's folder, then a second process
that opens and closes the log, then a run written by the app, read back by a third process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from app.engines.types import GenerationRequest
from app.runs import RunResult
from app.store import SessionLog
from app.ui.file_dialogs import _dialog

pytestmark = [
    pytest.mark.model,  # runs the command or the app on a model (not in `make check`)
    pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="reads the kernel's lock table (Linux)"),
]


def _our_locks(path) -> int:
    inodes = {os.stat(p).st_ino for p in (path, f"{path}-shm") if os.path.exists(p)}
    lines = open("/proc/locks").read().splitlines()
    return sum(1 for line in lines if f" {os.getpid()} " in line and int(line.split()[5].split(":")[-1]) in inodes)


def _write_run(log: SessionLog, session_id: int, prompt: str) -> None:
    request = GenerationRequest.from_prompt(prompt)
    run = log.start_run(log.add_prompt(session_id, request), pane=0, info=None, request=request, mode="fair",
                        decision=None)
    log.finish_run(run, RunResult.of(0, model="smollm2-135m", mode="fair", status="ok", text="hello"), [])


def test_a_dialog_on_the_logs_folder_keeps_the_logs_locks_and_later_runs_stay_visible(qtbot, tmp_path):
    db = tmp_path / "log.db"
    log = SessionLog.open(db)
    try:
        session = log.start_session()
        _write_run(log, session, "before the dialog")
        held = _our_locks(db)
        assert held > 0  # the app's connection holds the WAL's shared-memory locks
        dialog = _dialog(None, "Export session", str(tmp_path))
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.wait(1500)  # the dialog lists the folder (the log, its -wal and -shm) and fetches icons
        assert _our_locks(db) == held
        # Another FastSlow opens and closes the log: with the locks gone it would delete the WAL.
        subprocess.run([sys.executable, "-c", f"from app.store import SessionLog; SessionLog.open({str(db)!r}).close()"],
                       check=True, timeout=60)
        assert (tmp_path / "log.db-wal").exists()
        _write_run(log, session, "after the dialog")
        time.sleep(0.1)
        listed = subprocess.run([sys.executable, "-m", "app.cli", "log", "list", "--db", str(db)],
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert "after the dialog" in listed.stdout and "before the dialog" in listed.stdout
    finally:
        log.close()
