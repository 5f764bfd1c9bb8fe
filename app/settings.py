"""The app's settings: what a user sets once (threads, GPU layers, context, telemetry, TDP, data folder).

A plain dataclass saved as JSON in the user's config folder (platformdirs), or at $FASTSLOW_CONFIG.
A file that cannot be read is set aside (renamed *.bad) and the defaults are used, with the reason
kept in `Loaded.problem` for the app to show: a broken settings file never stops the app.

One schema covers every field: its type comes from the dataclass annotation (a bool is not an
int, a float must be finite, an int is taken where a float is asked) and its bounds from
`problems()`. Values that would only hurt are refused, in words: more threads than the machine has
logical CPUs, a context beyond MAX_N_CTX, a data folder that is not a full path or lies in the
kernel's virtual filesystems, fewer than two or more than MAX_PANES panes. `check_data_dir` goes
further for the dialog: it creates the folder and writes in it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import psutil
from platformdirs import user_config_dir

from app.catalog import DEFAULT_MODELS

ENV_VAR = "FASTSLOW_CONFIG"
MODES = ("fair", "live")
ROUTERS = ("heuristic", "classifier")
# Twice the largest trained context in models/catalog.toml (131072): room for a model added by
# hand, while a typo like 999999 is refused. Each model is capped at its own trained context anyway.
MAX_N_CTX = 262_144
# More layers than any model has (the settings dialog's range): -1 asks for all of them.
MAX_GPU_LAYERS = 1000
MIN_TDP_W, MAX_TDP_W = 1, 2000
# What one more right answer is worth, in direct answers' energy: what Auto weighs thinking's cost against.
THINK_WORTH, MIN_THINK_WORTH, MAX_THINK_WORTH = 10.0, 0.1, 1000.0
MIN_PANES, MAX_PANES = 2, 4
SETTINGS_FORMAT = 2  # 2: n_gpu_layers defaults to offloading what fits (1 stored 0, the CPU, by default)
# The kernel's virtual filesystems: nothing written there is kept (or it cannot be written at all).
VIRTUAL_DIRS = ("/proc", "/sys", "/dev")
LEAVE_EMPTY = "or leave it empty for the platform's data folder"


def logical_cpus() -> int:
    """The logical CPUs this machine has: more llama.cpp threads than these only wait for each other."""
    return psutil.cpu_count(logical=True) or 1


@dataclass
class Settings:
    n_threads: int | None = None  # None: every physical core
    n_gpu_layers: int | None = None  # layers offloaded to the GPU; None: as many as fit; -1: all; 0: the CPU
    n_ctx: int = 4096  # the model's own context when smaller
    sample_hz: float = 10.0  # telemetry rate
    tdp_w: float | None = None  # the CPU's TDP for the energy estimate; None: guessed from the CPU
    data_dir: str | None = None  # where the session log lives; None: the platform's data folder
    mode: str = "fair"  # fair: panes one after another; live: at once
    max_tokens: int = 512
    router: str = "heuristic"  # what Auto mode asks: "heuristic" (hand-set) or "classifier" (trained)
    # Auto thinks when the right answers thinking is expected to add pay for its cost: one more right
    # answer is worth up to this many direct answers' energy (routing/evidence.py).
    think_worth: float = THINK_WORTH
    # The fast pane answers directly and the thinking pane reasons first, on the same bundled model by
    # default: the difference is then the thinking alone. (Gemma 3 270M, also bundled, is a base model
    # that does not follow the chat format; it measures speed, not answers.)
    pane_models: list[str] = field(default_factory=lambda: [DEFAULT_MODELS[0], DEFAULT_MODELS[0]])

    def problems(self) -> list[str]:
        """What is wrong with these values, in words; empty when they can be used.

        Types first (the bounds below can only be judged on values of the right type)."""
        found = type_problems(self)
        if found:
            return found
        if self.n_threads is not None and self.n_threads < 1:
            found.append("threads must be 1 or more (or empty for all cores)")
        elif self.n_threads is not None and self.n_threads > (cpus := logical_cpus()):
            found.append(f"this machine has {cpus} logical CPUs, so threads must be {cpus} or fewer "
                         f"(or empty for all cores), not {self.n_threads}")
        if self.n_gpu_layers is not None and not -1 <= self.n_gpu_layers <= MAX_GPU_LAYERS:
            found.append(f"GPU layers must be empty (as many as fit), -1 (all) or 0 to {MAX_GPU_LAYERS}, "
                         f"not {self.n_gpu_layers}")
        if self.n_ctx < 256:
            found.append("the context must be at least 256 tokens")
        elif self.n_ctx > MAX_N_CTX:
            found.append(f"the context must be at most {MAX_N_CTX} tokens, not {self.n_ctx} "
                         "(each model is capped at its own trained context anyway)")
        if not 0.5 <= self.sample_hz <= 100:
            found.append("the telemetry rate must be between 0.5 and 100 per second")
        if self.tdp_w is not None and not MIN_TDP_W <= self.tdp_w <= MAX_TDP_W:
            found.append(f"the TDP must be between {MIN_TDP_W} and {MAX_TDP_W} W (or empty to guess it)")
        if self.mode not in MODES:
            found.append(f"the mode must be one of {', '.join(MODES)}")
        if self.router not in ROUTERS:
            found.append(f"the router must be one of {', '.join(ROUTERS)}")
        if not MIN_THINK_WORTH <= self.think_worth <= MAX_THINK_WORTH:
            found.append(f"what one more right answer is worth must be {MIN_THINK_WORTH:g} to {MAX_THINK_WORTH:g} "
                         f"direct answers, not {self.think_worth}")
        if not 1 <= self.max_tokens <= MAX_N_CTX:
            found.append(f"max tokens must be 1 to {MAX_N_CTX}, not {self.max_tokens}")
        if len(self.pane_models) < MIN_PANES:
            found.append("the app needs at least two panes")
        elif len(self.pane_models) > MAX_PANES:
            found.append(f"the app has at most {MAX_PANES} panes, not {len(self.pane_models)}")
        if any(not name.strip() for name in self.pane_models):
            found.append("each pane's model must be named (a catalog id or a .gguf path), not left empty")
        if self.data_dir:  # "" is the platform's data folder, as None
            wrong = data_dir_problem(self.data_dir)
            if wrong:
                found.append(wrong)
        return found

    def db_path(self) -> Path | None:
        """The session log inside the chosen data folder; None leaves the choice to the store."""
        return Path(self.data_dir).expanduser() / "fastslow.db" if self.data_dir else None


def type_problems(settings: Settings) -> list[str]:
    """Each field whose value is not of its annotated type, in words (the schema's first half)."""
    hints = typing.get_type_hints(Settings)
    found = []
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if not _is_a(value, hints[f.name]):
            found.append(f"{f.name} must be {_type_words(hints[f.name])}, not {_shown(value)}")
        elif not all(_encodes(text) for text in (value if isinstance(value, list) else [value])
                     if isinstance(text, str)):
            found.append(f"{f.name} holds a lone surrogate (\\u{ord(_first_surrogate(value)):x}), which "
                         "is not text a file name or a model name can have")
    return found


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_surrogate(value: object) -> str:
    texts = value if isinstance(value, list) else [value]
    return next(ch for text in texts if isinstance(text, str) for ch in text if "\ud800" <= ch <= "\udfff")


def _is_a(value: object, hint: object) -> bool:
    """Whether value is of the annotated type: bool is not int, floats are finite, ints pass as floats."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_is_a(value, part) for part in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # an int of any size is finite; math.isfinite would overflow on a huge one
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value))
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_is_a(v, item) for v in value)
    raise TypeError(f"the settings schema does not know the type {hint!r}")  # a new field's type: teach _is_a


def _type_words(hint: object) -> str:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        parts = typing.get_args(hint)
        return " or ".join(_type_words(p) for p in parts if p is not type(None)) + (
            " or null" if type(None) in parts else "")
    if typing.get_origin(hint) is list:
        return f"a list of {_type_words(typing.get_args(hint)[0]).removeprefix('a ')}s"
    return {int: "a whole number", float: "a finite number", str: "a string", bool: "true or false"}[hint]


def _shown(value: object) -> str:
    """A value as the file has it, cut short: the reason names what was wrong."""
    try:
        text = json.dumps(value, allow_nan=True)
    except Exception:  # noqa: BLE001 - nested too deeply to write back: its kind says enough
        text = f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def settings_from(data: object) -> Settings:
    """Settings from a settings file's parsed JSON; ValueError says why they cannot be used.

    Unknown keys are a newer version's and are left alone; a missing key takes its default."""
    if not isinstance(data, dict):
        raise ValueError("it does not hold a JSON object")
    if data.get("format", 1) == 1 and type(data.get("n_gpu_layers")) is int and data["n_gpu_layers"] == 0:
        # Format 1 wrote the old default, 0 (the CPU), whether or not the user chose it. Offload is
        # the default now; a user who wants the CPU sets 0 again and format 2 keeps it.
        data = {k: v for k, v in data.items() if k != "n_gpu_layers"}
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in data.items() if k in known})
    wrong = settings.problems()
    if wrong:
        raise ValueError("; ".join(wrong))
    hints = typing.get_type_hints(Settings)
    for f in fields(Settings):  # 5 where a float is asked is 5.0: the value is then of its type
        value = getattr(settings, f.name)
        if float in _members(hints[f.name]) and isinstance(value, int):
            setattr(settings, f.name, float(value))
    return settings


def _members(hint: object) -> tuple:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def data_dir_problem(data_dir: str) -> str | None:
    """Why `data_dir` can never hold the log, judged from its path alone (nothing is created)."""
    if "\0" in data_dir:
        return f"the data folder cannot contain a NUL character; choose a folder, {LEAVE_EMPTY}"
    try:
        folder = Path(data_dir).expanduser()
    except RuntimeError:  # ~someone, and this machine has no such user
        return (f"the data folder {data_dir!r} starts with the home folder of a user this machine does "
                f"not have; choose a folder, {LEAVE_EMPTY}")
    if not folder.is_absolute():
        return (f"the data folder must be a full path, not {data_dir!r}, which would depend on where "
                f"the app starts; choose a folder, {LEAVE_EMPTY}")
    if os.name == "posix":
        real = Path(os.path.realpath(folder))  # a link into /proc is as bad as /proc
        for virtual in map(Path, VIRTUAL_DIRS):
            if real == virtual or virtual in real.parents:
                return (f"the data folder {folder} is inside {virtual}, a virtual filesystem of the kernel "
                        f"that cannot keep the log; choose a folder in your home directory, {LEAVE_EMPTY}")
    return None


def check_data_dir(data_dir: str | None) -> str | None:
    """Why `data_dir` cannot hold the log, in one sentence; None when it can (or is empty).

    Beyond `data_dir_problem`, this touches the disk: the folder is created if missing and a
    scratch file is written in it and removed, so a folder that is a file, cannot be created or
    cannot be written is caught when it is chosen, not at the next start.
    """
    if not data_dir:
        return None
    wrong = data_dir_problem(data_dir)
    if wrong:
        return wrong
    folder = Path(data_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        return f"the data folder {folder} is a file, not a folder; choose a folder, {LEAVE_EMPTY}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return (f"the data folder {folder} cannot be created ({exc.strerror or exc}); choose a folder "
                f"you can write to, {LEAVE_EMPTY}")
    try:
        _write_probe(folder)
    except OSError as exc:
        return (f"the data folder {folder} cannot be written to ({exc.strerror or exc}); fix its "
                f"permissions, choose another folder, {LEAVE_EMPTY}")
    return None


def _write_probe(folder: Path) -> None:
    """Create and remove a scratch file in folder; raises OSError when that cannot be done."""
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".fastslow-probe-"):
        pass


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
        settings = settings_from(json.loads(path.read_text(encoding="utf-8")))
    except Exception as exc:  # noqa: BLE001 - whatever is in the file, the app starts (README)
        reason = ("it is nested too deeply to read" if isinstance(exc, RecursionError)
                  else str(exc) or type(exc).__name__)
        aside = path.with_suffix(path.suffix + ".bad")
        try:
            path.replace(aside)
            kept = f"; it was kept as {aside.name}"
        except OSError:
            kept = ""
        return Loaded(Settings(), path, f"The settings in {path} could not be used ({reason}){kept}. Defaults are in use.")
    return Loaded(settings, path)


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write atomically (a crash mid-write leaves the old file); raises ValueError for bad values."""
    wrong = settings.problems()
    if wrong:
        raise ValueError("; ".join(wrong))
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"format": SETTINGS_FORMAT, **asdict(settings)}, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path
