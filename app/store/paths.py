"""Where the session log lives: --db, then $FASTSLOW_DB, then the settings' data folder, then the
user's data directory.

The most specific choice wins: a path given for this one start (--db) beats the environment
($FASTSLOW_DB, often set for a whole shell or a test), which beats what was saved once in the
settings, which beats the platform's default. Every caller resolves through resolve_db_path, so
the order lives here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from platformdirs import user_data_dir

ENV_VAR = "FASTSLOW_DB"
FILENAME = "fastslow.db"


def default_db_path() -> Path:
    """The per-user database, e.g. ~/.local/share/FastSlow/fastslow.db on Linux."""
    return Path(user_data_dir("FastSlow", appauthor=False)) / FILENAME


def resolve_db_path(
    cli_value: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    settings_value: str | os.PathLike | None = None,
) -> Path:
    """The path the user asked for, most specific first; `~` is expanded.

    cli_value: --db; env: the environment ($FASTSLOW_DB; os.environ when None); settings_value:
    the log in the settings' data folder (Settings.db_path()), used only when neither is given.
    """
    env = os.environ if env is None else env
    chosen = cli_value or env.get(ENV_VAR) or settings_value or default_db_path()
    return Path(chosen).expanduser()


def env_db_path(env: Mapping[str, str] | None = None) -> str | None:
    """$FASTSLOW_DB when it is set (and not empty): then it wins over the settings' data folder."""
    env = os.environ if env is None else env
    return env.get(ENV_VAR) or None


# -- private files -----------------------------------------------------------------------------
# Prompts are private: what the store creates is readable by its owner alone. Folders and files
# that already exist (a home folder, a file a user made on purpose) keep the mode they have.

PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_folder(folder: str | os.PathLike) -> None:
    """Create folder and its missing parents, each 0700; those that exist are left as they are."""
    missing = []
    current = Path(folder)
    while not current.exists() and current.parent != current:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_FOLDER_MODE)
        except FileExistsError:  # made by someone else meanwhile: theirs, with their mode
            if not path.is_dir():
                raise


def create_private_file(path: str | os.PathLike) -> bool:
    """Create path empty and 0600 unless it exists (then it is left alone); True if created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def open_private_for_writing(path: str | os.PathLike) -> int:
    """A descriptor to write path from its start: a new file is 0600, an existing one keeps its mode."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), PRIVATE_FILE_MODE)
