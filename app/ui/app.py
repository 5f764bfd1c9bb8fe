"""`fastslow-app`: open the window on the models of the settings (the bundled pair on a first start)."""

from __future__ import annotations

import argparse
import os
import sys

from app.settings import load_settings
from app.store import open_log


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
    parser.add_argument("--db", help="session log (default: the settings' data folder, $FASTSLOW_DB or the platform's)")
    parser.add_argument("--screenshot", metavar="PNG", help="after the first comparison, save the window to PNG and quit")
    parser.add_argument("--prompt", help="put this prompt in the editor (with --screenshot: run it)")
    args = parser.parse_args(argv)
    problem = _no_display()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
    except ImportError:
        print("fastslow-app: the desktop app needs Qt: pip install 'fastslow[gui]'", file=sys.stderr)
        return 2
    from app.ui.window import MainWindow

    loaded = load_settings()
    notices = [loaded.problem] if loaded.problem else []
    log, log_error = open_log(args.db or loaded.settings.db_path())
    if log_error is not None:
        notices.append(f"The session log cannot be used ({log_error}); runs are kept in memory for now.")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("FastSlow")
    window = MainWindow(loaded.settings, log, notices, settings_path=loaded.path)
    if args.prompt:
        window.prompt.setPlainText(args.prompt)
    if args.screenshot:
        window.models_ready.connect(lambda: window.run_all())
        # After the run's last repaint and the controls re-enabled, not in the middle of it.
        window.run_done.connect(lambda: QTimer.singleShot(700, lambda: (save_screenshot(window, args.screenshot), window.close())))
    window.show()
    window.load_default_models()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
