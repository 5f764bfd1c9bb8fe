"""SessionLog: every session, prompt and run in SQLite, written as it happens.

A run row is inserted as `running` when the run starts and completed when it ends, each in its
own committed transaction, in WAL mode: a crash (even `kill -9`) loses nothing that finished, and
the next open marks the orphans `interrupted`. Every sqlite3 failure leaves as a StoreError with
a kind and one clear sentence; MemoryLog offers the same API without a file, to save later.

The file, its WAL and SHM and the folders the log creates are their owner's alone (0600, 0700):
prompts are private.
What comes in is checked against one typed schema (fit_record: the record's dataclasses below and
RunResult); a record that does not fit is refused with a sentence naming it, and nothing is imported.
Reading never writes: list, show and export open the file read-only (open(read_only=True)), so a
read-only or full disk still reads; a file a newer FastSlow wrote is refused, never rewritten.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import re
import sqlite3
import sys
import threading
import types
import typing
import uuid
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import psutil
from sqlite_utils import Database

from app import __version__
from app.engines.types import GenerationRequest, Message, ModelInfo
from app.record import RunResult, Status, model_conditions
from app.store.codec import BOOL_COLUMNS, JSON_COLUMNS, MAYBE_BOOL_COLUMNS, RunColumns, row_to_run, run_to_row
from app.store import schema
from app.store.paths import create_private_file, make_private_folder, resolve_db_path

RECORD_FORMAT = "fastslow-run"
RECORD_VERSION = 1  # of the JSONL record; bump when its shape changes
CHANNELS = ("answer", "thinking")  # token channel codes, append-only: the index is what is stored
MEMORY = ":memory:"

_JSON_RUN_COLUMNS = ("route_reasons", "params", "model_info") + JSON_COLUMNS
_PRIVATE_RUN_COLUMNS = ("id", "prompt_id", "session_id", "writer")


class StoreError(Exception):
    """The log cannot do what was asked. `kind`: locked, read_only, corrupt, full, cant_open,
    newer_schema, not_found, bad_import or io; the message is one sentence a user can act on."""

    def __init__(self, message: str, kind: str = "io", index: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.index = index  # for bad_import: which record (1-based)

    @property
    def message(self) -> str:
        return str(self)


@dataclass
class SessionSummary:
    id: int
    uid: str
    started_at: str
    mode: str | None
    app_version: str | None
    n_prompts: int
    n_runs: int


@dataclass
class RunSummary:
    """One line of `fastslow log list` and the History tab. Every field but `prompt` is the runs
    column of its name (list_runs selects them so)."""

    id: int
    session_id: int
    created_at: str
    prompt: str
    pane: int
    model: str
    mode: str
    status: str
    n_generated: int
    ttft_s: float | None
    decode_tps: float | None
    total_s: float | None
    energy_j: float | None
    energy_source: str | None
    # What kind of run it was (see app.store.report.kind_name), what the router decided, how it ended.
    strategy: str = "native"
    thinking_style: str = "none"
    n_thinking_tokens: int = 0
    route: str | None = None
    route_budget: int | None = None
    finish_reason: str | None = None
    correct: bool | None = None  # against the prompt's known answer; None when there was none
    no_answer: str = ""  # why a finished run has no answer; "" when it answered
    rating: int | None = None  # a person's mark: 1 right, -1 wrong; None when not marked

    @property
    def right(self) -> bool | None:
        """Whether its answer was right: a person's mark, else the known answer's; None: not checked."""
        return self.rating > 0 if self.rating else self.correct


@dataclass(frozen=True)
class TelemetrySample:
    t_s: float
    name: str  # cpu_percent, rss_bytes, power_w ...
    value: float
    unit: str = ""
    source: str = ""  # measured:nvml, estimated:tdp ...


# -- the record's schema -----------------------------------------------------------------------
# One record per run (records(), a JSONL line): {"format", "version", "session", "prompt", "run",
# "timeline", "telemetry"}. Each part is typed by a dataclass: the run by RunResult (its result)
# and RunPlan (the other runs columns), the rest below. An import is checked against these types,
# and so is every value read back (a file changed by another tool says it is damaged).

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what an SQLite INTEGER holds
MAX_JSON_DEPTH = 64  # free-form JSON (host, request, params...) nests no deeper
STATUSES = tuple(status.value for status in Status)  # running, ok, cancelled, failed, interrupted
_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone half of a pair: no valid UTF-8 holds it


@dataclass
class RunPlan:
    """The runs columns beside RunResult's: identity, times and the router's plan."""

    uid: str
    created_at: str
    id: int | None = None  # the exporting file's id: not kept, the importing file numbers its own
    finished_at: str | None = None
    route: str | None = None
    route_budget: int | None = None
    route_confidence: float | None = None
    route_reasons: list[str] | None = None
    params: dict | None = None  # JSON: the request this pane ran
    model_info: dict | None = None  # JSON: what the load produced
    rating: int | None = None  # a person's mark on the answer: 1 right, -1 wrong


@dataclass
class SessionEntry:
    uid: str
    started_at: str
    id: int | None = None
    mode: str | None = None
    app_version: str | None = None
    host: dict | None = None


@dataclass
class PromptEntry:
    uid: str
    created_at: str
    text: str
    messages: list[Message]
    request: dict  # JSON: the GenerationRequest as asked
    id: int | None = None
    known_answer: str | None = None


@dataclass
class Timeline:
    t: list[float] = field(default_factory=list)  # each token's time, from submit
    channel: list[str] = field(default_factory=list)  # each token's channel, one of CHANNELS


class RecordUnfit(ValueError):
    """A value that does not fit the record's schema; the message says where and why."""


class RecordTooNew(RecordUnfit):
    """A record of a version newer than this build reads."""


def _describe(value: Any) -> str:
    """A value as a sentence names it: short, and printable whatever it holds."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else "a number too large for 64 bits"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return repr(value) if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        short = value if len(value) <= 30 else value[:29] + "…"
        return f"the text {ascii(short) if _SURROGATE.search(short) else repr(short)}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _unfit(where: str, expected: str, value: Any) -> RecordUnfit:
    return RecordUnfit(f"{where} must be {expected}, not {_describe(value)}")


def _is_int64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX


_INT_WORDS, _FLOAT_WORDS, _STR_WORDS, _BOOL_WORDS = (
    "a whole number that fits in 64 bits", "a finite number", "text", "true or false")


def _fit_int(value: Any, where: str, expected: str = _INT_WORDS) -> int:
    if not _is_int64(value):
        raise _unfit(where, expected, value)
    return value


def _fit_float(value: Any, where: str, expected: str = _FLOAT_WORDS) -> float:
    if isinstance(value, float) and math.isfinite(value):
        return value
    if not _is_int64(value):
        raise _unfit(where, expected, value)
    return float(value)


def _fit_str(value: Any, where: str, expected: str = _STR_WORDS) -> str:
    if not isinstance(value, str):
        raise _unfit(where, expected, value)
    if _SURROGATE.search(value):
        raise RecordUnfit(f"{where} is not valid text (it holds half of a UTF-16 surrogate pair)")
    return value


def _fit_bool(value: Any, where: str, expected: str = _BOOL_WORDS) -> bool:
    if not isinstance(value, bool):
        raise _unfit(where, expected, value)
    return value


def _fit_json(value: Any, where: str) -> Any:
    """Any JSON value: finite numbers, 64-bit integers, valid text, nested at most MAX_JSON_DEPTH."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise RecordUnfit(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels")
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            _fit_int(item, where)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise RecordUnfit(f"{where} holds {_describe(item)}, which is not a finite number")
        elif isinstance(item, str):
            _fit_str(item, where)
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise RecordUnfit(f"{where} has a key that is not text ({_describe(key)})")
                _fit_str(key, where)
                stack.append((inner, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((inner, depth + 1) for inner in item)
        else:
            raise RecordUnfit(f"{where} holds {_describe(item)}, which JSON cannot hold")
    return value


_SCALARS: dict[Any, tuple[Callable[..., Any], str]] = {
    bool: (_fit_bool, _BOOL_WORDS), int: (_fit_int, _INT_WORDS), float: (_fit_float, _FLOAT_WORDS),
    str: (_fit_str, _STR_WORDS),
}


Fitter = Callable[..., Any]  # (value, where it is[, expected]) -> the value, or RecordUnfit


@functools.cache
def _fitter(tp: Any) -> Fitter:
    """What checks a value against the type tp (a dataclass field's): it returns the value (ints made
    floats where a float is wanted) or raises RecordUnfit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):  # X | None: the only union the records use
        [inner] = [a for a in args if a is not type(None)]
        fit_inner, or_null = _fitter(inner), f"{_expected(inner)} or null"

        def fit_optional(value: Any, where: str) -> Any:
            return None if value is None else fit_inner(value, where, or_null)

        return fit_optional
    if tp in _SCALARS:
        return _SCALARS[tp][0]
    if tp is dict:
        def fit_object(value: Any, where: str, expected: str = "a JSON object") -> dict:
            if not isinstance(value, dict):
                raise _unfit(where, expected, value)
            return _fit_json(value, where)

        return fit_object
    if origin is list:
        [inner] = args
        fit_item = _fitter(inner)

        def fit_list(value: Any, where: str, expected: str = "a list") -> list:
            if not isinstance(value, (list, tuple)):
                raise _unfit(where, expected, value)
            # The timeline's thousands of items: checked at C speed when they are all fine.
            kinds = set(map(type, value))
            if inner is float and kinds <= {float} and all(map(math.isfinite, value)):
                return list(value)
            if inner is str and kinds <= {str} and not _SURROGATE.search("".join(value)):
                return list(value)
            return [fit_item(item, f"{where}[{i}]") for i, item in enumerate(value)]

        return fit_list
    if is_dataclass(tp):
        def fit_dataclass(value: Any, where: str, expected: str = "a JSON object") -> dict:
            return _fit_fields(value, where, tp, expected=expected)

        return fit_dataclass
    raise TypeError(f"the record schema has no rule for {tp!r}")  # pragma: no cover - a new field type


def _fit(value: Any, tp: Any, where: str) -> Any:
    return _fitter(tp)(value, where)


def _expected(tp: Any) -> str:
    if tp in _SCALARS:
        return _SCALARS[tp][1]
    return "a JSON object" if tp in (dict,) or is_dataclass(tp) else "a list"


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_REQUIRED = object()


@functools.cache
def _field_plan(cls: type, skip: frozenset[str]) -> list[tuple[str, Fitter, Any, Any]]:
    """(name, fitter, default, default factory) for each field of the dataclass cls but `skip`."""
    hints = _hints(cls)
    return [(f.name, _fitter(hints[f.name]),
             _REQUIRED if f.default is MISSING and f.default_factory is MISSING else f.default,
             None if f.default_factory is MISSING else f.default_factory)
            for f in fields(cls) if f.name not in skip]


def _fit_fields(value: Any, where: str, cls: type, skip: frozenset[str] = frozenset(),
                expected: str = "a JSON object") -> dict:
    """value as the fields of the dataclass cls: each present one checked, each absent one given its
    default (a field without one must be present). Keys cls does not know are dropped."""
    if not isinstance(value, dict):
        raise _unfit(where, expected, value)
    out = {}
    for name, fit, default, factory in _field_plan(cls, skip):
        if name in value:
            out[name] = fit(value[name], f"{where}.{name}")
        elif factory is not None:
            out[name] = factory()
        elif default is not _REQUIRED:
            out[name] = default
        else:
            raise RecordUnfit(f"{where}.{name} is missing")
    return out


def fit_record(record: Any) -> dict:
    """The record checked against the schema, complete (absent fields given their defaults).

    Raises RecordUnfit with one sentence naming the first value that does not fit.
    """
    if not isinstance(record, dict):
        raise _unfit("the record", "a JSON object", record)
    if record.get("format") != RECORD_FORMAT:
        raise RecordUnfit(f"format is {_describe(record.get('format'))}, not {RECORD_FORMAT!r}")
    version = _fit_int(record.get("version"), "version")
    if version > RECORD_VERSION:
        raise RecordTooNew(f"version {version} is newer than this FastSlow reads ({RECORD_VERSION}); "
                           "upgrade FastSlow")
    if version < 1:
        raise RecordUnfit(f"version {version} is not a record version (they start at 1)")
    missing = next((part for part in ("session", "prompt", "run") if part not in record), None)
    if missing:
        raise RecordUnfit(f"{missing} is missing")
    run = record["run"]
    fitted = {
        "format": RECORD_FORMAT, "version": version,
        "session": _fit_fields(record["session"], "session", SessionEntry),
        "prompt": _fit_fields(record["prompt"], "prompt", PromptEntry),
        "run": {**_fit_fields(run, "run", RunPlan),
                **_fit_fields(run, "run", RunColumns)},
        "timeline": _fit_fields(record.get("timeline") or {}, "timeline", Timeline),
        "telemetry": _fit(record.get("telemetry") or [], list[TelemetrySample], "telemetry"),
    }
    run = fitted["run"]
    if run["status"] not in STATUSES:
        raise RecordUnfit(f"run.status must be one of {', '.join(STATUSES)}, not {_describe(run['status'])}")
    if run["energy_j"] is not None and not run["energy_source"]:
        raise RecordUnfit("run.energy_j has no run.energy_source: energy is never a bare number")
    timeline = fitted["timeline"]
    if len(timeline["t"]) != len(timeline["channel"]):
        raise RecordUnfit(f"timeline.t has {len(timeline['t'])} times for {len(timeline['channel'])} channels")
    if unknown := next((c for c in timeline["channel"] if c not in CHANNELS), None):
        raise RecordUnfit(f"timeline.channel must hold only {' or '.join(CHANNELS)}, not {_describe(unknown)}")
    return fitted


# What a value read back from SQLite must be: its column's type, no more (SQLite keeps ±Infinity,
# which an export writes as null, so a read does not refuse it).
_READ_TYPES: dict[Any, tuple[Callable[[Any], bool], str]] = {
    int: (_is_int64, _INT_WORDS),
    float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    str: (lambda v: isinstance(v, str), _STR_WORDS),
    bool: (lambda v: isinstance(v, bool), _BOOL_WORDS),
}
Check = tuple[str, Callable[[Any], bool], str, bool]  # name, test, what it must be, nullable


def _scalar_checks(types_by_name: dict[str, Any]) -> list[Check]:
    """(name, test, words, nullable) for each scalar field: what a row read back is checked against."""
    checks = []
    for name, tp in types_by_name.items():
        union = typing.get_origin(tp) in (typing.Union, types.UnionType)
        args = typing.get_args(tp) if union else (tp,)
        base = next(a for a in args if a is not type(None))
        if base in _READ_TYPES:
            test, words = _READ_TYPES[base]
            nullable = type(None) in args
            checks.append((name, test, words + (" or null" if nullable else ""), nullable))
    return checks


# The runs columns as read back, with their types, to check each row cheaply (no JSON walk).
_RUN_CHECKS = _scalar_checks({**_hints(RunPlan), **_hints(RunColumns)})
_SUMMARY_CHECKS = _scalar_checks({**_hints(RunSummary), "correct": int | None})  # SQLite's 0/1, made bool after


def _check_row(values: dict, checks: list[Check], where: str) -> None:
    """Each scalar value of a row read back is of its field's type, or RecordUnfit."""
    for name, test, words, nullable in checks:
        value = values.get(name)
        if value is None and (nullable or name not in values):
            continue
        if not test(value):
            raise _unfit(f"{where}.{name}", words, value)


def json_safe(value: Any) -> Any:
    """value with each NaN and ±Infinity written as None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# -- errors ------------------------------------------------------------------------------------

# SQLite primary result codes (the low byte of an extended code).
_KINDS_BY_CODE = {5: "locked", 6: "locked", 8: "read_only", 10: "io", 11: "corrupt", 13: "full",
                  14: "cant_open", 26: "corrupt"}
# Python 3.10 has no sqlite_errorcode: fall back to SQLite's fixed messages.
_KINDS_BY_TEXT = {"locked": "locked", "readonly": "read_only", "malformed": "corrupt",
                  "not a database": "corrupt", "is full": "full", "unable to open": "cant_open"}
_ADVICE = {
    "locked": "is locked by another program; close it, or choose another file with --db",
    "read_only": "is read-only; fix its permissions, or choose another file with --db",
    "corrupt": "is not a readable SQLite database (corrupt?); move it aside, or choose another file with --db",
    "full": "cannot grow: the disk is full; free some space, or choose another file with --db",
    "cant_open": "cannot be opened; check that its folder exists and is writable, or use --db",
    "io": "could not be read or written",
}


def store_error(exc: BaseException, path: str) -> StoreError:
    """Turn a sqlite3 or OS error into a StoreError with a sentence that says what to do."""
    kind = _KINDS_BY_CODE.get((getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF)
    text = str(exc).lower()
    if isinstance(exc, OSError):  # the folder could not be made: a file in the way, no permission
        kind = "cant_open"
    if kind is None:
        kind = next((k for needle, k in _KINDS_BY_TEXT.items() if needle in text), "io")
    return StoreError(f"the session log {path} {_ADVICE[kind]} ({exc})", kind=kind)


_F = TypeVar("_F", bound=Callable[..., Any])
_L = TypeVar("_L", bound="SessionLog")


def _guarded(method: _F) -> _F:
    """One thread at a time on the shared connection; sqlite3 errors become StoreErrors."""

    @functools.wraps(method)
    def wrapper(self: SessionLog, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from exc

    return wrapper  # type: ignore[return-value]


# -- small codecs ------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _uid() -> str:
    return uuid.uuid4().hex


def encode_timeline(times: Sequence[float], channels: Sequence[str]) -> tuple[bytes, bytes]:
    """Token times as float64 little-endian (exact round-trip), channels as one byte each."""
    t = array("d", times)
    if sys.byteorder == "big":
        t.byteswap()
    return t.tobytes(), bytes(CHANNELS.index(c) for c in channels)


def decode_timeline(times: bytes, channels: bytes) -> tuple[list[float], list[str]]:
    t = array("d")
    t.frombytes(times)
    if sys.byteorder == "big":
        t.byteswap()
    return t.tolist(), [CHANNELS[c] for c in channels]


def _writer_token() -> str:
    """This process, in a way that survives pid reuse: pid and start time."""
    return f"{os.getpid()}:{psutil.Process().create_time():.3f}"


def _writer_alive(token: str | None) -> bool:
    try:
        pid, started = token.split(":")  # type: ignore[union-attr]
        return f"{psutil.Process(int(pid)).create_time():.3f}" == started
    except (AttributeError, ValueError, psutil.NoSuchProcess):
        return False
    except psutil.Error:  # access denied: it exists; leave its runs alone
        return True


def _connect(path: str, timeout: float) -> sqlite3.Connection:
    # One connection shared by the panes' threads, serialised by SessionLog's lock.
    return sqlite3.connect(path, timeout=timeout, check_same_thread=False)


def _connect_read_only(path: str, timeout: float, immutable: bool) -> sqlite3.Connection:
    """A connection that cannot write (mode=ro). `immutable`: SQLite takes no lock and creates no
    -wal or -shm file, which a plain read-only open of a WAL database does; only for a file whose
    WAL holds nothing (all it has is in the file itself)."""
    uri = Path(path).absolute().as_uri() + "?mode=ro" + ("&immutable=1" if immutable else "")
    return sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)


def _signature(path: str) -> tuple[int, int, int] | None:
    """What changes when a writer checkpoints into the file: its inode, size and modification time."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _holds_data(path: str) -> bool:
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False


@functools.cache
def _expected_columns() -> dict[str, frozenset[str]]:
    """Each table this build's migrations make, and its columns."""
    db = Database(memory=True, execute_plugins=False)
    schema.migrations.apply(db)
    return {t.name: frozenset(t.columns_dict) for t in db.tables if not t.name.startswith("_")}


def _request_json(request: GenerationRequest | None) -> str | None:
    return None if request is None else json.dumps(asdict(request), ensure_ascii=False)


# -- the log -----------------------------------------------------------------------------------


class SessionLog:
    """The session log on one SQLite file. Safe to share between threads."""

    def __init__(self, db: Database, path: str, read_only: bool = False) -> None:
        self.db, self.path = db, path  # use SessionLog.open()
        self.read_only = read_only
        self._lock = threading.RLock()
        self._writer = _writer_token()
        self._unfinished: set[int] = set()
        self._run_columns = set(db["runs"].columns_dict)
        self._signature: tuple[int, int, int] | None = None  # an immutable read's file, as it was

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, timeout: float = 5.0,
             read_only: bool = False) -> SessionLog:
        """Open (creating and upgrading as needed) the log at path, --db, $FASTSLOW_DB or the default.

        read_only: only to read (list, show, export): nothing is created, upgraded or written, so
        a read-only or full disk still reads; a file that does not exist reads as an empty log.
        Raises StoreError when the file cannot serve as a log; the app can go on with MemoryLog.
        """
        target = MEMORY if str(path) == MEMORY else str(resolve_db_path(path))
        if read_only and target != MEMORY:
            return cls._open_read_only(target, timeout)
        try:
            if target != MEMORY:
                make_private_folder(Path(target).parent)
                create_private_file(target)  # SQLite gives its -wal and -shm the file's mode
            db = Database(_connect(target, timeout), execute_plugins=False)
        except (OSError, sqlite3.Error) as exc:
            raise store_error(exc, target) from exc
        try:
            cls._prepare(db, target)
        except BaseException as exc:
            db.close()
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise store_error(exc, target) from exc
            raise
        return cls(db, target)

    @classmethod
    def _open_read_only(cls, target: str, timeout: float) -> SessionLog:
        if not os.path.lexists(target):  # nothing logged there yet: read it as empty, create nothing
            db = Database(_connect(MEMORY, 0), execute_plugins=False)
            SessionLog._prepare(db, MEMORY)
            return cls(db, target, read_only=True)
        # A WAL that holds nothing: the file alone is the log, read without locks or new files;
        # close() checks that no writer checkpointed into it meanwhile (taken first, so none can
        # slip in between).
        signature = _signature(target)
        quiet = not _holds_data(target + "-wal") and not _holds_data(target + "-journal")
        try:
            conn = _connect_read_only(target, timeout, immutable=quiet)
        except sqlite3.Error as exc:
            raise store_error(exc, target) from exc
        db = Database(conn, execute_plugins=False)
        try:
            SessionLog._refuse_newer(db, target)
            if schema.migrations.pending(db):
                # An older file: upgrade a copy in memory, leave the file as it is.
                memory = sqlite3.connect(MEMORY, check_same_thread=False)
                conn.backup(memory)
                conn.close()
                db = Database(memory, execute_plugins=False)
                schema.migrations.apply(db)
            SessionLog._check_shape(db, target)
        except BaseException as exc:
            db.close()
            if isinstance(exc, sqlite3.Error):
                raise store_error(exc, target) from exc
            raise
        log = cls(db, target, read_only=True)
        log._signature = signature if quiet else None
        return log

    @staticmethod
    def _prepare(db: Database, path: str) -> None:
        if path != MEMORY:
            db.enable_wal()  # readers never block the writer; a commit is one append
        # NORMAL is durable against a crash of the app (WAL); only power loss may drop the last commits.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        SessionLog._refuse_newer(db, path)
        # IMMEDIATE takes the write lock now, so a locked file fails here, cleanly.
        db.execute("BEGIN IMMEDIATE")
        try:
            schema.migrations.apply(db)
            SessionLog._check_shape(db, path)
            _mark_interrupted(db, lambda token: not _writer_alive(token))
            # Always a write, so a read-only file is found out now rather than mid-run; it also
            # lets any SQLite tool read the schema version.
            db.execute(f"PRAGMA user_version = {len(schema.migrations.applied(db))}")
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise

    @staticmethod
    def _refuse_newer(db: Database, path: str) -> None:
        """A file a newer FastSlow wrote is never rewritten: it names a migration this build does not
        know, or its user_version (the count of migrations applied) is beyond this build's."""
        newer = schema.unknown_applied(db)
        if newer:
            raise StoreError(
                f"the session log {path} was written by a newer FastSlow (it has migration "
                f"{newer[-1]}); upgrade FastSlow, or choose another file with --db",
                kind="newer_schema",
            )
        version, known = db.execute("PRAGMA user_version").fetchone()[0], len(schema.known_names())
        if version > known:
            raise StoreError(
                f"the session log {path} was written by a newer FastSlow (its schema version is "
                f"{version}, this one knows up to {known}); upgrade FastSlow, or choose another file with --db",
                kind="newer_schema",
            )

    @staticmethod
    def _check_shape(db: Database, path: str) -> None:
        """Every table and column the migrations make is there (another tool may have dropped one)."""
        for table, expected in _expected_columns().items():
            have = {row[1] for row in db.execute(f"PRAGMA table_info([{table}])").fetchall()}
            missing = sorted(expected - have)
            if missing:
                lacks = f"has no table {table}" if not have else f"table {table} has no column {missing[0]}"
                raise StoreError(
                    f"the session log {path} is damaged or was not written by this version of FastSlow "
                    f"({lacks}); move it aside, or choose another file with --db",
                    kind="corrupt",
                )

    @_guarded
    def close(self) -> None:
        """Close the file; runs this log started and never finished are marked interrupted."""
        if self._unfinished:
            with self._write():
                ids = set(self._unfinished)
                _mark_interrupted(self.db, lambda token: True, ids)
            self._unfinished.clear()
        self.db.close()
        if self._signature is not None and _signature(self.path) != self._signature:
            self._signature = None
            raise StoreError(f"the session log {self.path} was written to while it was read; try again",
                             kind="locked")

    def __enter__(self: _L) -> _L:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------------

    @_guarded
    def start_session(self, mode: str = "fair") -> int:
        host = {"platform": platform.platform(), "machine": platform.machine(),
                "python": platform.python_version()}
        with self._write():
            return self.db["sessions"].insert(
                {"uid": _uid(), "started_at": _now(), "mode": mode, "app_version": __version__,
                 "host": json.dumps(host)}
            ).last_pk

    @_guarded
    def add_prompt(self, session_id: int, request: GenerationRequest, known_answer: str | None = None) -> int:
        self._require("sessions", session_id)
        users = [m.content for m in request.messages if m.role == "user"]
        with self._write():
            return self.db["prompts"].insert(
                {
                    "uid": _uid(),
                    "session_id": session_id,
                    "created_at": _now(),
                    "text": users[-1] if users else "",
                    "messages": json.dumps([asdict(m) for m in request.messages], ensure_ascii=False),
                    "request": _request_json(request),
                    "known_answer": known_answer.strip() if known_answer and known_answer.strip() else None,
                }
            ).last_pk

    @_guarded
    def start_run(
        self,
        prompt_id: int,
        pane: int,
        info: ModelInfo | None = None,
        request: GenerationRequest | None = None,
        mode: str = "fair",
        decision: Any = None,
    ) -> int:
        """Insert the run as `running`. `decision`: the router's Decision (route, budget,
        confidence, reasons), read by attribute so the store needs no router import."""
        prompt = self._require("prompts", prompt_id)
        row: dict[str, Any] = {
            "uid": _uid(), "prompt_id": prompt_id, "session_id": prompt["session_id"],
            "created_at": _now(), "writer": self._writer, "pane": pane, "mode": mode,
            "status": "running", "params": _request_json(request),
            "thinking_budget": request.thinking_budget if request else None,
            "thinking_min": request.thinking_min if request else None,
        }
        if info is not None:
            row.update(model=info.name, **model_conditions(info),
                       model_info=json.dumps(asdict(info), ensure_ascii=False))
        if decision is not None:
            row.update(route=getattr(decision, "route", None), route_budget=getattr(decision, "budget", None),
                       route_confidence=getattr(decision, "confidence", None),
                       route_reasons=json.dumps(list(getattr(decision, "reasons", ())), ensure_ascii=False))
        with self._write():
            run_id = self.db["runs"].insert(row).last_pk
        self._unfinished.add(run_id)
        return run_id

    @_guarded
    def finish_run(
        self,
        run_id: int,
        result: RunResult,
        channels: Sequence[str] | None = None,
    ) -> None:
        """Complete the run with its result and token timeline (channel "answer" unless given)."""
        if result.energy_j is not None and not result.energy_source:
            raise ValueError("energy needs its source (e.g. 'measured:nvml'); never a bare number")
        self._require("runs", run_id)
        times = list(result.token_times_s)
        channels = list(channels) if channels is not None else ["answer"] * len(times)
        if len(channels) != len(times):
            raise ValueError(f"{len(channels)} channels for {len(times)} token times")
        values = {k: v for k, v in run_to_row(result).items() if k in self._run_columns}
        values["finished_at"] = _now()
        blob_t, blob_c = encode_timeline(times, channels)
        with self._write():
            self.db["runs"].update(run_id, values)
            self.db["token_timelines"].upsert(
                {"run_id": run_id, "n_tokens": len(times), "times": blob_t, "channels": blob_c}, pk="run_id"
            )
        self._unfinished.discard(run_id)

    @_guarded
    def add_telemetry(
        self, session_id: int, samples: Iterable[TelemetrySample], run_id: int | None = None
    ) -> int:
        """Store a batch of samples (a series), optionally attributed to one run; returns the count."""
        self._require("sessions", session_id)
        if run_id is not None:
            self._require("runs", run_id)
        rows = [{"session_id": session_id, "run_id": run_id, **asdict(s)} for s in samples]
        with self._write():
            self.db["telemetry_samples"].insert_all(rows)
        return len(rows)

    # -- reads ---------------------------------------------------------------------------------

    @_guarded
    def get_run(self, run_id: int) -> RunResult:
        """The run as a RunResult, equal to the one given to finish_run."""
        return result_from_record(self._record(run_id))

    @_guarded
    def run_record(self, run_id: int) -> dict:
        """Everything about one run: session, prompt, plan, result, timeline and telemetry."""
        return self._record(run_id)

    @_guarded
    def sessions(self) -> list[SessionSummary]:
        sql = """SELECT s.id, s.uid, s.started_at, s.mode, s.app_version,
                   (SELECT count(*) FROM prompts p WHERE p.session_id = s.id) AS n_prompts,
                   (SELECT count(*) FROM runs r WHERE r.session_id = s.id) AS n_runs
                 FROM sessions s ORDER BY s.id"""
        return [SessionSummary(**row) for row in self._rows(sql)]

    @_guarded
    def list_runs(self, session_id: int | None = None, limit: int | None = None,
                  model: tuple[str, str] | None = None, checked: bool = False) -> list[RunSummary]:
        """Runs, newest first (at most `limit`, when given); `model`: only those of this (name, path)
        (a served model's path is its server's URL: the same id on two servers is two models);
        `checked`: only finished runs whose answer was marked right or wrong (RunSummary.right)."""
        names = [f.name for f in fields(RunSummary) if f.name != "prompt"]
        clauses, params = [], []
        if session_id is not None:
            self._check_id("session", session_id)
            clauses.append("r.session_id = ?")
            params.append(session_id)
        if model is not None:
            clauses.append("r.model = ? AND r.model_path = ?")
            params += list(model)
        if checked:
            clauses.append("r.status = 'ok' AND (r.correct IS NOT NULL OR r.rating IS NOT NULL)")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (f"SELECT {', '.join('r.' + n for n in names)}, p.text AS prompt FROM runs r "
               f"JOIN prompts p ON p.id = r.prompt_id {where} ORDER BY r.id DESC")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, min(int(limit), INT64_MAX)))
        runs = []
        for row in self._rows(sql, params):
            self._check_read(row, _SUMMARY_CHECKS, row["id"])
            runs.append(RunSummary(**{**row, "correct": None if row["correct"] is None else bool(row["correct"])}))
        return runs

    @_guarded
    def rate_run(self, run_id: int, rating: int | None) -> None:
        """A person's mark on a run's answer: 1 right, -1 wrong, None to take it back."""
        if rating not in (1, -1, None):
            raise ValueError(f"a rating is 1 (right), -1 (wrong) or None, not {rating!r}")
        self._require("runs", run_id)
        with self._write():
            self.db["runs"].update(run_id, {"rating": rating})

    @_guarded
    def latest_session_id(self) -> int | None:
        row = self.db.execute("SELECT max(id) FROM sessions").fetchone()
        return row[0]

    def records(self, session_id: int | None = None) -> Iterator[dict]:
        """One complete record per run (the JSONL shape), oldest first; streams, holding the lock."""
        if session_id is not None:
            self._check_id("session", session_id)
        with self._lock:
            try:
                yield from self._records(session_id)
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from exc

    @_guarded
    def import_records(self, records: Iterable[dict]) -> tuple[int, int]:
        """Add records (from records() or a JSONL export), all or nothing.

        Each record is checked against the record's schema (fit_record) first: one that does not
        fit is refused with a sentence naming it, and nothing is imported. Sessions, prompts and
        runs are matched by uid, so importing twice adds nothing the second time. Returns
        (imported, skipped).
        """
        imported = skipped = 0
        with self._write():
            for index, record in enumerate(records, start=1):
                try:
                    added = self._import_one(fit_record(record))
                except RecordTooNew as exc:
                    raise StoreError(f"record {index} was written by a newer FastSlow ({exc})",
                                     kind="bad_import", index=index) from exc
                except RecordUnfit as exc:
                    raise StoreError(f"record {index} is not a FastSlow run record ({exc})",
                                     kind="bad_import", index=index) from exc
                except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
                    raise StoreError(f"record {index} is not a FastSlow run record ({exc})",
                                     kind="bad_import", index=index) from exc
                imported, skipped = imported + added, skipped + (not added)
        return imported, skipped

    @_guarded
    def vacuum_into(self, path: str) -> None:
        """A compact, consistent copy of the whole file (VACUUM INTO), taken while the log is open."""
        self.db.execute("VACUUM INTO ?", [path])

    # -- internals -----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[None]:
        if self.read_only:
            raise StoreError(f"the session log {self.path} was opened only to read", kind="read_only")
        # IMMEDIATE takes the write lock up front, waiting up to the busy timeout; a deferred
        # BEGIN that reads first can fail at once with "locked" when another connection commits.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.rollback()
            raise
        self.db.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence = ()) -> Iterator[dict]:
        # Plain cursor: sqlite-utils' query() wraps each SELECT in a savepoint, too slow for exports.
        cursor = self.db.conn.execute(sql, params)
        keys = [d[0] for d in cursor.description]
        return (dict(zip(keys, row)) for row in cursor)

    def _require(self, table: str, pk: int) -> dict:
        self._check_id(table[:-1], pk)
        rows = list(self.db[table].rows_where("id = ?", [pk]))
        if not rows:
            raise StoreError(f"there is no {table[:-1]} {pk} in the session log {self.path}", kind="not_found")
        return rows[0]

    def _check_id(self, what: str, pk: Any) -> None:
        """An id SQLite cannot hold (beyond 64 bits, not a whole number) names nothing in the log."""
        if not _is_int64(pk):
            shown = pk if isinstance(pk, int) and pk.bit_length() <= 1024 else _describe(pk)
            raise StoreError(f"there is no {what} {shown} in the session log {self.path} "
                             f"(ids are whole numbers up to {INT64_MAX})", kind="not_found")

    def _check_read(self, values: dict, checks: list[Check], run_id: Any) -> None:
        try:
            _check_row(values, checks, "run")
        except RecordUnfit as exc:
            raise self._damaged(run_id, exc) from exc

    def _damaged(self, run_id: Any, exc: BaseException) -> StoreError:
        return StoreError(f"the session log {self.path} is damaged: run {run_id} cannot be read ({exc}); "
                          "repair it with an SQLite tool, or choose another file with --db", kind="corrupt")

    def _record(self, run_id: int) -> dict:
        self._require("runs", run_id)
        [record] = self._records(None, run_id)  # drained, so no cursor stays open
        return record

    def _records(self, session_id: int | None, run_id: int | None = None) -> Iterator[dict]:
        # One joined query, streamed: 10,000 runs export in about a second.
        clauses, params = [], []
        if session_id is not None:
            clauses.append("r.session_id = ?"); params.append(session_id)
        if run_id is not None:
            clauses.append("r.id = ?"); params.append(run_id)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"""SELECT r.*, t.times AS _times, t.channels AS _channels,
                   s.uid AS _s_uid, s.started_at AS _s_started_at, s.mode AS _s_mode,
                   s.app_version AS _s_app_version, s.host AS _s_host,
                   p.uid AS _p_uid, p.created_at AS _p_created_at, p.text AS _p_text,
                   p.messages AS _p_messages, p.request AS _p_request, p.known_answer AS _p_known_answer
                 FROM runs r JOIN prompts p ON p.id = r.prompt_id JOIN sessions s ON s.id = r.session_id
                 LEFT JOIN token_timelines t ON t.run_id = r.id {where} ORDER BY r.id"""
        for row in self._rows(sql, params):
            try:
                record = self._row_to_record(row)
                _check_row(record["run"], _RUN_CHECKS, "run")
            except (RecordUnfit, ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
                raise self._damaged(row.get("id"), exc) from exc
            yield record

    def _row_to_record(self, row: dict) -> dict:
        times, channels = decode_timeline(row.pop("_times") or b"", row.pop("_channels") or b"")
        session = {"id": row["session_id"], "uid": row.pop("_s_uid"), "started_at": row.pop("_s_started_at"),
                   "mode": row.pop("_s_mode"), "app_version": row.pop("_s_app_version"),
                   "host": json.loads(row.pop("_s_host") or "null")}
        prompt = {"id": row["prompt_id"], "uid": row.pop("_p_uid"), "created_at": row.pop("_p_created_at"),
                  "text": row.pop("_p_text"), "messages": json.loads(row.pop("_p_messages")),
                  "request": json.loads(row.pop("_p_request")), "known_answer": row.pop("_p_known_answer")}
        run = {k: v for k, v in row.items() if k not in _PRIVATE_RUN_COLUMNS[1:]}
        for name in _JSON_RUN_COLUMNS:
            run[name] = json.loads(run[name]) if run[name] is not None else None
        for name in BOOL_COLUMNS + MAYBE_BOOL_COLUMNS:  # SQLite keeps 0/1
            if run[name] is None and name in MAYBE_BOOL_COLUMNS:
                continue
            if run[name] not in (0, 1):
                raise RecordUnfit(f"run.{name} must be 0 or 1, not {_describe(run[name])}")
            run[name] = bool(run[name])
        telemetry = [
            {k: s[k] for k in ("t_s", "name", "value", "unit", "source")}
            for s in self._rows("SELECT * FROM telemetry_samples WHERE run_id = ? ORDER BY id", [row["id"]])
        ]
        return {"format": RECORD_FORMAT, "version": RECORD_VERSION, "session": session, "prompt": prompt,
                "run": run, "timeline": {"t": times, "channel": channels}, "telemetry": telemetry}

    def _import_one(self, record: dict) -> bool:
        """Add one record, already fitted to the schema (fit_record); False when its run is here."""
        run = record["run"]
        if self.db.execute("SELECT 1 FROM runs WHERE uid = ?", [run["uid"]]).fetchone():
            return False
        s, p = record["session"], record["prompt"]
        session_id = self._id_for_uid("sessions", s["uid"], lambda: {
            "uid": s["uid"], "started_at": s["started_at"], "mode": s["mode"],
            "app_version": s["app_version"], "host": json.dumps(s["host"], ensure_ascii=False)})
        prompt_id = self._id_for_uid("prompts", p["uid"], lambda: {
            "uid": p["uid"], "session_id": session_id, "created_at": p["created_at"], "text": p["text"],
            "messages": json.dumps(p["messages"], ensure_ascii=False),
            "request": json.dumps(p["request"], ensure_ascii=False), "known_answer": p["known_answer"]})
        row = {k: v for k, v in run.items() if k in self._run_columns and k not in _PRIVATE_RUN_COLUMNS}
        for name in _JSON_RUN_COLUMNS:
            if row.get(name) is not None:
                row[name] = json.dumps(row[name], ensure_ascii=False)
        if row["status"] == "running":  # exported mid-run by another process: it never finished here
            row["status"] = "interrupted"
        row.update(prompt_id=prompt_id, session_id=session_id)
        run_id = self.db["runs"].insert(row).last_pk
        timeline = record["timeline"]
        blob_t, blob_c = encode_timeline(timeline["t"], timeline["channel"])
        self.db["token_timelines"].insert(
            {"run_id": run_id, "n_tokens": len(timeline["t"]), "times": blob_t, "channels": blob_c})
        self.db["telemetry_samples"].insert_all(
            {"session_id": session_id, "run_id": run_id, **sample} for sample in record["telemetry"])
        return True

    def _id_for_uid(self, table: str, uid: str, make_row: Callable[[], dict]) -> int:
        found = self.db.execute(f"SELECT id FROM {table} WHERE uid = ?", [uid]).fetchone()
        return found[0] if found else self.db[table].insert(make_row()).last_pk


def _mark_interrupted(db: Database, is_orphan: Callable[[str | None], bool], ids: set[int] | None = None) -> int:
    """Mark `running` rows whose writer is gone as interrupted; returns how many."""
    rows = db.execute("SELECT id, writer FROM runs WHERE status = 'running'").fetchall()
    orphans = [rid for rid, writer in rows if (ids is None or rid in ids) and is_orphan(writer)]
    for rid in orphans:
        db.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, error_kind = 'interrupted', "
            "error = 'the app stopped before this run finished' WHERE id = ?", [_now(), rid])
    return len(orphans)


def result_from_record(record: dict) -> RunResult:
    """The RunResult inside a run record (from records(), run_record() or a JSONL line)."""
    return row_to_run(record["run"], record["timeline"]["t"])


class MemoryLog(SessionLog):
    """The same log in memory, for when the file is unusable; save_to() flushes it later."""

    def __init__(self, db: Database | None = None, path: str = MEMORY) -> None:
        if db is None:
            db = Database(_connect(MEMORY, 0), execute_plugins=False)
            SessionLog._prepare(db, MEMORY)
        super().__init__(db, path)

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, timeout: float = 5.0,
             read_only: bool = False) -> MemoryLog:
        return cls()

    def save_to(self, log: SessionLog) -> tuple[int, int]:
        """Copy every run into `log` (a SessionLog that works again); returns (imported, skipped).

        Runs still running are copied as interrupted. Safe to call again: uids make it idempotent.
        """
        # As a JSONL export would carry them: SQLite keeps ±Infinity, JSON (and the schema) does not.
        return log.import_records([json_safe(record) for record in self.records()])


def open_log(path: str | os.PathLike | None = None, timeout: float = 5.0) -> tuple[SessionLog, StoreError | None]:
    """The log at path, or a MemoryLog and the reason when the file cannot be used: the app goes on."""
    try:
        return SessionLog.open(path, timeout=timeout), None
    except StoreError as exc:
        return MemoryLog(), exc
