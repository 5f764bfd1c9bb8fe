"""The desktop bundle, built here with PyInstaller: its --self-test passes, and the app in it runs a
comparison in a real X server. Prints the build time and the bundle's size."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.model  # runs the command or the app on a model (not in `make check`)

pytest.importorskip("PyInstaller", reason="the bundle test needs PyInstaller (the test extra has it)")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    started = time.monotonic()
    built = subprocess.run(
        [sys.executable, "-m", "PyInstaller", str(ROOT / "packaging" / "fastslow.spec"), "--noconfirm",
         "--distpath", str(out / "dist"), "--workpath", str(out / "build")],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    folder = out / "dist" / "FastSlow"
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"\n[bench] PyInstaller bundle built in {time.monotonic() - started:.0f} s: {size / 2**20:.0f} MiB in {folder}")
    return folder


def _clean_env(tmp_path: Path) -> dict:
    """As on a user's machine: no checkout on the path, a fresh home (settings, log, models)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FASTSLOW_DB", "FASTSLOW_CONFIG")}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    return env


def test_the_bundle_passes_its_self_test(bundle, tmp_path):
    done = subprocess.run([str(bundle / "fastslow"), "--self-test"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=_clean_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(bundle, linux)" in done.stdout and "self-test passed" in done.stdout
    assert str(bundle) in done.stdout  # the model came from inside the bundle, not from this checkout
    assert "generate 8 tokens" in done.stdout


def test_the_bundled_app_compares_on_first_start_in_a_real_x_server(bundle, tmp_path, xvfb_display):
    shot = tmp_path / "bundle.png"
    # First start: the welcome question is already in the editor; --screenshot runs it.
    done = subprocess.run([str(bundle / "fastslow"), "--screenshot", str(shot)], capture_output=True,
                          text=True, timeout=240, cwd=tmp_path,
                          env={**_clean_env(tmp_path), "DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "xcb"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert shot.read_bytes().startswith(b"\x89PNG")
    logs = list((tmp_path / "data").rglob("fastslow.db"))
    assert logs, "the bundled app wrote its session log into the user's data folder"
    from app.store import SessionLog

    with SessionLog.open(logs[0]) as log:
        runs = log.list_runs()
    assert [r.status for r in runs] == ["ok", "ok"] and runs[0].prompt.startswith("A train leaves")
