"""kill -9 in the middle of a run: every finished run survives, the file checks out, the orphan is marked."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.store import SessionLog

pytestmark = pytest.mark.model  # runs the command or the app on a model (not in `make check`)

ROOT = Path(__file__).resolve().parents[2]

# The app, reduced to its writes: runs back to back, each reported once it is finished.
WRITER = """
import sys, time
from app.engines.types import GenerationRequest
from app.runs import RunResult
from app.store import SessionLog
log = SessionLog.open(sys.argv[1])
request = GenerationRequest.from_prompt("count")
prompt = log.add_prompt(log.start_session(), request)
while True:
    run_id = log.start_run(prompt, pane=0, request=request)
    print("started", run_id, flush=True)
    if run_id > 50:
        time.sleep(60)  # generating: the parent kills us here
    log.finish_run(run_id, RunResult.of(pane=0, model="m", mode="fair", status="ok", text="y" * 5000,
                                     token_times_s=[i / 100 for i in range(300)]))
    print("finished", run_id, flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is a POSIX signal")
def test_kill_9_mid_run_loses_no_finished_run(tmp_path):
    path = tmp_path / "log.db"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True)
    finished: list[int] = []
    for line in child.stdout:
        word, run_id = line.split()
        if word == "finished":
            finished.append(int(run_id))
        elif len(finished) == 50:  # run 51 is generating: kill it mid-run
            child.kill()  # SIGKILL
            break
    child.wait()
    child.stdout.close()

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with SessionLog.open(path) as log:
        runs = {r.id: r.status for r in log.list_runs()}
        assert all(runs[i] == "ok" for i in finished)
        assert "interrupted" in runs.values() and "running" not in runs.values()
        assert log.get_run(finished[-1]).token_times_s == tuple(i / 100 for i in range(300))


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is a POSIX signal")
def test_kill_9_of_fastslow_compare_mid_run_keeps_the_finished_pane_and_stops_the_workers(tmp_path):
    """The real app, not a stand-in: pane 1 has finished, pane 2 is generating, then SIGKILL."""
    import os
    import signal
    import time

    import psutil

    path = tmp_path / "log.db"
    child = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "compare", "Write a long story about a lighthouse keeper.",
         "-m", "smollm2-135m", "-m", "smollm2-135m", "--max-tokens", "4000", "--db", str(path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    workers = []
    headers = 0
    for line in child.stdout:
        if line.startswith("── [2"):
            headers += 1
        if headers and line.strip() and not line.startswith("──"):  # pane 2 is writing
            workers = psutil.Process(child.pid).children(recursive=True)
            time.sleep(0.5)
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    child.stdout.close()
    assert workers, "the comparison never reached its second pane"

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with SessionLog.open(path) as log:  # the next start marks the orphan
        runs = sorted(log.list_runs(), key=lambda r: r.pane)
        assert [(r.pane, r.status) for r in runs] == [(0, "ok"), (1, "interrupted")]
        assert log.get_run(runs[0].id).n_generated > 0
    # The workers notice their parent is gone and exit: no orphans left generating.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers):
        time.sleep(0.1)
    alive = [w.pid for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers outlived the app: {alive}"
