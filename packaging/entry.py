"""What PyInstaller freezes: the desktop app, and `--self-test` for a headless check of the bundle."""

import multiprocessing
import sys

if __name__ == "__main__":
    # Each model runs in a spawned worker: in a frozen app the worker starts this same executable,
    # and freeze_support() turns that start into the worker instead of a second window.
    multiprocessing.freeze_support()
    from app.ui.app import main

    sys.exit(main())
