"""Every way out of `fastslow compare` ends its runs' rows as what they were (the issue "Nothing
lost, nothing let in", case 12): Ctrl-C while it loads, Ctrl-C mid-run in fair and live mode, and a
reader that leaves (`| head`). A real process with real models; the rows are read back from --db."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.store import SessionLog

pytestmark = [
    pytest.mark.model,  # runs the command or the app on a model (not in `make check`)
    pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is a POSIX thing"),
]

ROOT = Path(__file__).resolve().parents[1]
LONG = ["Write a long story about a lighthouse keeper.", "-m", "smollm2-135m", "-m", "smollm2-135m",
        "--max-tokens", "4000", "--temperature", "0"]


def _with_default_sigint() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and a child keeps
    # that: give the app the SIGINT a terminal's Ctrl-C would reach it with, whoever runs the tests.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _compare(db: Path, *args: str, group: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "compare", *args, "--db", str(db)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_with_default_sigint, start_new_session=group,
    )


def _until_it_streams(child: subprocess.Popen, lines: int = 3) -> None:
    """Read stdout until the run has printed a few lines of its text (tokens are streaming)."""
    streamed = 0
    deadline = time.monotonic() + 180
    for line in child.stdout:
        if line.strip() and not line.startswith(("loading", "──")):
            streamed += 1
        if streamed >= lines:
            return
        assert time.monotonic() < deadline, "the comparison never streamed"
    raise AssertionError(f"the comparison ended before it streamed: {child.stderr.read()}")


def _finish(child: subprocess.Popen) -> tuple[str, str]:
    out, err = child.communicate(timeout=120)
    return out, err


def _rows(db: Path) -> list[tuple[int, str]]:
    with SessionLog.open(db) as log:  # opening marks rows left `running` as interrupted: none must be
        return sorted((r.pane, r.status) for r in log.list_runs())


@pytest.mark.parametrize("mode", ["--fair", "--live"])
def test_ctrl_c_mid_run_cancels_every_pane_and_its_row_ends_cancelled(tmp_path, mode):
    db = tmp_path / "log.db"
    child = _compare(db, *LONG, mode)
    _until_it_streams(child)
    child.send_signal(signal.SIGINT)
    out, err = _finish(child)
    assert child.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "fastslow: interrupted: the runs not yet finished were cancelled"
    assert _rows(db) == [(0, "cancelled"), (1, "cancelled")]
    assert "cancelled" in out  # the table still says what each pane did


def test_ctrl_c_while_the_models_load_says_interrupted_without_a_traceback(tmp_path):
    db = tmp_path / "log.db"
    child = _compare(db, *LONG)
    assert child.stdout.readline().startswith("loading ")
    child.send_signal(signal.SIGINT)  # the workers are starting: nothing has run yet
    out, err = _finish(child)
    assert child.returncode == 130, err
    assert err.strip() == "fastslow: interrupted"
    assert _rows(db) == []  # no row was started, none is left running


def test_a_reader_that_leaves_cancels_the_runs_and_their_rows_end_cancelled(tmp_path):
    # `fastslow compare … | head`: the pipe closes while pane 1 streams.
    db = tmp_path / "log.db"
    child = _compare(db, *LONG)
    _until_it_streams(child)
    child.stdout.close()
    child.wait(timeout=120)
    err = child.stderr.read()
    child.stderr.close()
    assert child.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert _rows(db) == [(0, "cancelled"), (1, "cancelled")]


def test_ctrl_c_from_a_terminal_reaches_the_workers_too_and_the_rows_still_end_cancelled(tmp_path):
    db = tmp_path / "log.db"
    child = _compare(db, *LONG, group=True)
    _until_it_streams(child)
    os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the foreground group
    out, err = _finish(child)
    assert child.returncode == 130 and "Traceback" not in err, err
    assert _rows(db) == [(0, "cancelled"), (1, "cancelled")]
