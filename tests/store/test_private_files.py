"""Prompts are private: the log, its WAL and SHM and every export are created 0600, the folders the
log creates 0700, whatever the umask lets through (022 here); what exists already keeps its mode."""

from __future__ import annotations

import os
import stat
import sys

import pytest
from store_helpers import finished_run

from app.engines.types import GenerationRequest
from app.store import SessionLog
from app.store.export import FORMATS, export

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def umask_022():
    old = os.umask(0o022)  # the common default: new files 0644, folders 0755
    yield
    os.umask(old)


def test_the_log_its_wal_and_shm_and_the_folders_it_makes_are_private(tmp_path):
    tmp_path.chmod(0o755)
    path = tmp_path / "data" / "FastSlow" / "log.db"
    with SessionLog.open(path) as log:
        request = GenerationRequest.from_prompt("a private question")
        finished_run(log, log.add_prompt(log.start_session(), request), request)
        for name in ("log.db", "log.db-wal", "log.db-shm"):
            assert mode(path.parent / name) == 0o600, name
    assert mode(tmp_path / "data") == 0o700 and mode(tmp_path / "data" / "FastSlow") == 0o700
    assert mode(tmp_path) == 0o755  # the user's folder, not the log's: left as it was


def test_an_existing_folder_and_file_keep_their_modes(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    SessionLog.open(folder / "new.db").close()
    assert mode(folder) == 0o755 and mode(folder / "new.db") == 0o600
    chosen = folder / "chosen.db"
    SessionLog.open(chosen).close()
    chosen.chmod(0o640)  # the user's own choice
    SessionLog.open(chosen).close()
    assert mode(chosen) == 0o640


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_export_is_created_private(tmp_path, log, prompt_id, request_, fmt):
    finished_run(log, prompt_id, request_)
    out = tmp_path / f"runs.{fmt}"
    assert export(log, fmt, out) == 1
    assert mode(out) == 0o600


def test_an_export_over_an_existing_file_keeps_its_mode(tmp_path, log, prompt_id, request_):
    finished_run(log, prompt_id, request_)
    out = tmp_path / "runs.csv"
    out.write_text("old")
    out.chmod(0o644)
    export(log, "csv", out)
    assert mode(out) == 0o644 and out.read_text().startswith("id,")


def test_an_export_to_stdout_makes_no_file(tmp_path, log, prompt_id, request_, capsys, monkeypatch):
    finished_run(log, prompt_id, request_)
    monkeypatch.chdir(tmp_path)
    export(log, "jsonl", "-")
    assert capsys.readouterr().out.count("\n") == 1
    assert not (tmp_path / "-").exists()
