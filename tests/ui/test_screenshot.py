"""The app in a real X server (Xvfb): start it, let it compare, save what the screen shows.

The PNG is kept in test-artifacts/ for a person to look at (the README shows one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.model  # runs the command or the app on a model (not in `make check`)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PROMPT = "A train leaves at 3:40 pm and the trip takes 2 hours 35 minutes. When does it arrive?"


def test_the_app_runs_a_comparison_in_a_real_x_server_and_saves_a_screenshot(xvfb_display, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "fastslow-window.png"
    shot.unlink(missing_ok=True)
    env = {**os.environ, "DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "xcb",
           "FASTSLOW_DB": str(tmp_path / "log.db"), "FASTSLOW_CONFIG": str(tmp_path / "settings.json")}
    done = subprocess.run(
        [sys.executable, "-m", "app.ui.app", "--screenshot", str(shot), "--prompt", PROMPT, "--db", str(tmp_path / "log.db")],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    from PySide6.QtGui import QImage

    image = QImage(str(shot))
    assert (image.width(), image.height()) == (1400, 920)
    # Not a blank frame: a real window has many distinct colours (text, charts, widgets).
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 50
    from app.store import SessionLog

    with SessionLog.open(tmp_path / "log.db") as log:
        assert [r.status for r in log.list_runs()] == ["ok", "ok"]
