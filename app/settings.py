"""The app's settings: what a user sets once (threads, GPU layers, context, telemetry, TDP, data folder).

A plain dataclass saved as JSON in the user's config folder (platformdirs), or at $FASTSLOW_CONFIG.
A file that cannot be read is set aside (renamed *.bad) and the defaults are used, with the reason
kept in `Loaded.problem` for the app to show: a broken settings file never stops the app.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from platformdirs import user_config_dir

from app.catalog import DEFAULT_MODELS

ENV_VAR = "FASTSLOW_CONFIG"
MODES = ("fair", "live")
ROUTERS = ("heuristic", "classifier")


@dataclass
class Settings:
    n_threads: int | None = None  # None: every physical core
    n_gpu_layers: int = 0  # layers offloaded to the GPU; -1 = all
    n_ctx: int = 4096  # the model's own context when smaller
    sample_hz: float = 10.0  # telemetry rate
    tdp_w: float | None = None  # the CPU's TDP for the energy estimate; None: guessed from the CPU
    data_dir: str | None = None  # where the session log lives; None: the platform's data folder
    mode: str = "fair"  # fair: panes one after another; live: at once
    max_tokens: int = 512
    router: str = "heuristic"  # what Auto mode asks: "heuristic" (hand-set) or "classifier" (trained)
    # The fast pane answers directly and the thinking pane reasons first, on the same bundled model by
    # default: the difference is then the thinking alone. (Gemma 3 270M, also bundled, is a base model
    # that does not follow the chat format; it measures speed, not answers.)
    pane_models: list[str] = field(default_factory=lambda: [DEFAULT_MODELS[0], DEFAULT_MODELS[0]])

    def problems(self) -> list[str]:
        """What is wrong with these values, in words; empty when they can be used."""
        found = []
        if self.n_threads is not None and self.n_threads < 1:
            found.append("threads must be 1 or more (or empty for all cores)")
        if self.n_gpu_layers < -1:
            found.append("GPU layers must be -1 (all), 0 or more")
        if self.n_ctx < 256:
            found.append("the context must be at least 256 tokens")
        if not 0.5 <= self.sample_hz <= 100:
            found.append("the telemetry rate must be between 0.5 and 100 per second")
        if self.tdp_w is not None and not 1 <= self.tdp_w <= 2000:
            found.append("the TDP must be between 1 and 2000 W (or empty to guess it)")
        if self.mode not in MODES:
            found.append(f"the mode must be one of {', '.join(MODES)}")
        if self.router not in ROUTERS:
            found.append(f"the router must be one of {', '.join(ROUTERS)}")
        if self.max_tokens < 1:
            found.append("max tokens must be 1 or more")
        if len(self.pane_models) < 2:
            found.append("the app needs at least two panes")
        return found

    def db_path(self) -> Path | None:
        """The session log inside the chosen data folder; None leaves the choice to the store."""
        return Path(self.data_dir).expanduser() / "fastslow.db" if self.data_dir else None


@dataclass
class Loaded:
    settings: Settings
    path: Path
    problem: str | None = None  # why the file was not used, if it was not


def settings_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or Path(user_config_dir("FastSlow", appauthor=False)) / "settings.json")


def load_settings(path: Path | None = None) -> Loaded:
    path = path or settings_path()
    if not path.exists():
        return Loaded(Settings(), path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("it does not hold a JSON object")
        known = {f.name for f in fields(Settings)}
        settings = Settings(**{k: v for k, v in data.items() if k in known})  # unknown keys: a newer version's
        wrong = settings.problems()
        if wrong:
            raise ValueError("; ".join(wrong))
    except (OSError, ValueError, TypeError) as exc:
        aside = path.with_suffix(path.suffix + ".bad")
        try:
            path.replace(aside)
            kept = f"; it was kept as {aside.name}"
        except OSError:
            kept = ""
        return Loaded(Settings(), path, f"The settings in {path} could not be used ({exc}){kept}. Defaults are in use.")
    return Loaded(settings, path)


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write atomically (a crash mid-write leaves the old file); raises ValueError for bad values."""
    wrong = settings.problems()
    if wrong:
        raise ValueError("; ".join(wrong))
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
    tmp.replace(path)
    return path
