"""`fastslow compare` never loses a finished run to a busy or unusable log file.

A file locked by another program mid-run is waited for and the runs land in their own rows; a
file that cannot be used at all leaves the runs in a recovery file that `fastslow log import` takes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from app.store import SessionLog

pytestmark = pytest.mark.model  # runs the command or the app on a model (not in `make check`)

PROMPT = "Write a short story about a lighthouse keeper."


def _rows(db):
    with SessionLog.open(db) as log:
        return sorted((r.pane, r.status, r.n_generated) for r in log.list_runs())


@pytest.mark.timeout(600)  # its waits are bounded by their own deadlines, which a loaded machine stretches
def test_a_log_locked_by_another_program_mid_run_is_waited_for_and_the_runs_land_in_their_rows(tmp_path):
    db = tmp_path / "log.db"
    child = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "compare", PROMPT, "-m", "smollm2-135m", "--max-tokens", "120",
         "--temperature", "0", "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    said: list[str] = []
    reading = threading.Thread(target=lambda: said.extend(iter(child.stderr.readline, "")), daemon=True)
    reading.start()
    reader = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the run has started: its row is there, `running`
        try:
            reader = reader or sqlite3.connect(db, timeout=5)
            if reader.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0]:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    reader.execute("BEGIN EXCLUSIVE")  # another program holds the file while the run ends…
    # The run must end (120 tokens) before the command meets the lock: on a loaded machine that
    # takes minutes, so this wait has its own deadline rather than what is left of the first.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any("the session log is busy" in line for line in said):
        time.sleep(0.1)  # …until the command has waited its own 5 s and says it keeps waiting
    reader.rollback()
    reader.close()
    out = child.stdout.read()
    child.wait(timeout=180)
    reading.join(timeout=10)
    err = "".join(said)
    assert child.returncode == 0, err
    assert "the session log is busy" in err and "waiting up to 60 s" in err
    assert _rows(db) == [(0, "ok", 120)], out  # its own row, complete: not `interrupted 0 tok`
    assert "recovery" not in err


def test_runs_a_log_file_cannot_take_are_saved_to_a_recovery_file_that_log_import_takes(tmp_path):
    db = tmp_path / "log.db"
    SessionLog.open(db).close()
    locker = sqlite3.connect(db)
    locker.execute("BEGIN EXCLUSIVE")  # held for the whole command: the file cannot be opened
    try:
        out = subprocess.run(
            [sys.executable, "-m", "app.cli", "compare", "Say hi.", "-m", "smollm2-135m", "--max-tokens", "6",
             "--temperature", "0", "--db", str(db)],
            capture_output=True, text=True, timeout=240)
    finally:
        locker.rollback()
        locker.close()
    assert out.returncode == 0, out.stderr
    [recovery] = list(tmp_path.glob("fastslow-recovery-*.jsonl"))
    assert f"the runs are saved in {recovery}: `fastslow log import {recovery}`" in out.stderr
    assert oct(recovery.stat().st_mode & 0o777) == "0o600"  # prompts are private
    imported = subprocess.run([sys.executable, "-m", "app.cli", "log", "import", str(recovery), "--db", str(db)],
                              capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr
    assert _rows(db) == [(0, "ok", 6)]
