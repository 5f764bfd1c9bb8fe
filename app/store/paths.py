"""Where the session log lives: --db, then $FASTSLOW_DB, then the user's data directory."""

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


def resolve_db_path(cli_value: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The path the user asked for, most specific first; `~` is expanded."""
    env = os.environ if env is None else env
    chosen = cli_value or env.get(ENV_VAR) or default_db_path()
    return Path(chosen).expanduser()
