"""The real window, offscreen, on the two bundled models; every test gets a fresh log and settings."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any Qt import: no display needed
pytest.importorskip("PySide6", reason="the GUI tests need the gui extra: pip install -e '.[gui]'")
pytest.importorskip("pytestqt", reason="the GUI tests need pytest-qt")

from app.settings import Settings  # noqa: E402
from app.store import SessionLog  # noqa: E402

LOAD_TIMEOUT_MS = 120_000
RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def ui_settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("FASTSLOW_CONFIG", str(tmp_path / "settings.json"))
    return Settings(max_tokens=24, n_ctx=2048)


@pytest.fixture
def ui_log(tmp_path):
    log = SessionLog.open(tmp_path / "ui.db")
    yield log
    log.close()


@pytest.fixture
def make_window(qtbot, ui_settings, ui_log, tmp_path):
    """A MainWindow with its models loaded; closed (workers stopped) at the end of the test."""
    from app.ui.window import MainWindow

    windows = []

    def make(settings: Settings | None = None, load: bool = True) -> MainWindow:
        window = MainWindow(settings or ui_settings, ui_log, settings_path=tmp_path / "settings.json")
        window.models.models_dir = tmp_path / "models"
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        if load:
            with qtbot.waitSignal(window.models_ready, timeout=LOAD_TIMEOUT_MS):
                window.load_default_models()
        return window

    yield make
    for window in windows:
        window.close()


@pytest.fixture
def window(make_window):
    return make_window()
