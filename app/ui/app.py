"""`fastslow-app`: open the window on the models of the settings (the bundled pair on a first start)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app.exit_codes import EXIT_BAD_INPUT
from app.settings import load_settings, save_settings, settings_path
from app.store import open_log, resolve_db_path


ICON = Path(__file__).resolve().parents[2] / "packaging" / "icon.png"  # beside app/ in a checkout and in a bundle
FIRST_PROMPT = "A train leaves at 3:40 pm and the trip takes 2 hours 35 minutes. When does it arrive?"


def _no_display() -> str | None:
    """On Linux without a display Qt would abort; say what to do instead."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        return ("fastslow-app: no display found (DISPLAY is not set). Run it in a desktop session, "
                "or try `xvfb-run fastslow-app`, or use the command line: `fastslow demo`.")
    return None


def save_screenshot(window, path: str) -> bool:
    """What the screen shows (the X server's pixels under Xvfb), else the window's own rendering."""
    from PySide6.QtWidgets import QApplication

    window.repaint()
    QApplication.processEvents()
    screen = window.screen()
    image = screen.grabWindow(window.winId()) if QApplication.platformName() == "xcb" else window.grab()
    return image.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastslow-app", description="FastSlow: fast and thinking models side by side")
    parser.add_argument("--db", help="session log (default: $FASTSLOW_DB, else the settings' data folder, else the platform's)")
    parser.add_argument("--screenshot", metavar="PNG", help="after the first comparison, save the window to PNG and quit")
    parser.add_argument("--prompt", help="put this prompt in the editor (with --screenshot: run it)")
    parser.add_argument("--self-test", action="store_true",
                        help="headless check of this installation: load the bundled model, generate, log; exit 0 if it works")
    args = parser.parse_args(argv)
    if args.self_test:  # before any Qt import: it must run where no display is
        from app.selftest import run_self_test

        return run_self_test()
    problem = _no_display()
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
    except ImportError:
        print("fastslow-app: the desktop app needs Qt: pip install 'fastslow[gui]'", file=sys.stderr)
        return EXIT_BAD_INPUT
    from app.ui.window import MainWindow

    first_start = not settings_path().exists()
    loaded = load_settings()
    notices = [loaded.problem] if loaded.problem else []
    if first_start:
        notices.append("Welcome: both panes run the bundled SmolLM2 135M (Fast answers directly, Thinking "
                       "reasons first); each says when its model is ready. Press Ctrl+Enter to compare; more "
                       "models are in the Models tab.")
    # --db, then $FASTSLOW_DB, then the settings' data folder, then the platform's (app.store.paths).
    log, log_error = open_log(resolve_db_path(args.db, settings_value=loaded.settings.db_path()))
    if log_error is not None:
        notices.append(f"The session log cannot be used ({log_error}); runs are kept in memory for now.")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("FastSlow")
    if ICON.is_file():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(ICON)))
    window = MainWindow(loaded.settings, log, notices, settings_path=loaded.path)
    if args.prompt or first_start:
        window.prompt.setPlainText(args.prompt or FIRST_PROMPT)
    if args.screenshot:
        window.models_ready.connect(lambda: window.run_all())
        # After the run's last repaint and the controls re-enabled, not in the middle of it.
        window.run_done.connect(lambda: QTimer.singleShot(700, lambda: (save_screenshot(window, args.screenshot), window.close())))
    window.show()
    window.load_default_models()
    if first_start:
        try:  # remembered, so the welcome shows once
            save_settings(loaded.settings, loaded.path)
        except (OSError, ValueError):
            pass
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
