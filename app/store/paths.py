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
