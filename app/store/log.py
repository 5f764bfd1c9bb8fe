"""SessionLog: every session, prompt and run in SQLite, written as it happens.

A run row is inserted as `running` when the run starts and completed when it ends, each in its
own committed transaction, in WAL mode: a crash (even `kill -9`) loses nothing that finished, and
the next open marks the orphans `interrupted`. Every sqlite3 failure leaves as a StoreError with
a kind and one clear sentence; MemoryLog offers the same API without a file, to save later.

The file, its WAL and SHM and the folders the log creates are their owner's alone (0600, 0700):
prompts are private.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sqlite3
import sys
import threading
import uuid
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import psutil
from sqlite_utils import Database

from app import __version__
from app.engines.types import GenerationRequest, ModelInfo
from app.runs import RunResult
from app.store import schema
from app.store.paths import create_private_file, make_private_folder, resolve_db_path

RECORD_FORMAT = "fastslow-run"
RECORD_VERSION = 1  # of the JSONL record; bump when its shape changes
CHANNELS = ("answer", "thinking")  # token channel codes, append-only: the index is what is stored
MEMORY = ":memory:"

# RunResult fields that live in their own table, and those stored as 0/1.
_TIMELINE_FIELD = "token_times_s"
_RESULT_FIELDS = [f.name for f in fields(RunResult) if f.name != _TIMELINE_FIELD]
_BOOL_FIELDS = {f.name for f in fields(RunResult) if f.type in ("bool", bool)}
_MAYBE_BOOL_FIELDS = {f.name for f in fields(RunResult) if f.type == "bool | None"}  # None: unknown
_DICT_FIELDS = tuple(f.name for f in fields(RunResult) if f.type in ("dict", dict))
_JSON_RUN_COLUMNS = ("route_reasons", "params", "model_info") + _DICT_FIELDS
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


@dataclass(frozen=True)
class TelemetrySample:
    t_s: float
    name: str  # cpu_percent, rss_bytes, power_w ...
    value: float
    unit: str = ""
    source: str = ""  # measured:nvml, estimated:tdp ...


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


def _request_json(request: GenerationRequest | None) -> str | None:
    return None if request is None else json.dumps(asdict(request), ensure_ascii=False)


# -- the log -----------------------------------------------------------------------------------


class SessionLog:
    """The session log on one SQLite file. Safe to share between threads."""

    def __init__(self, db: Database, path: str) -> None:
        self.db, self.path = db, path  # use SessionLog.open()
        self._lock = threading.RLock()
        self._writer = _writer_token()
        self._unfinished: set[int] = set()
        self._run_columns = set(db["runs"].columns_dict)

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, timeout: float = 5.0) -> SessionLog:
        """Open (creating and upgrading as needed) the log at path, --db, $FASTSLOW_DB or the default.

        Raises StoreError when the file cannot serve as a log; the app can go on with MemoryLog.
        """
        target = MEMORY if str(path) == MEMORY else str(resolve_db_path(path))
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

    @staticmethod
    def _prepare(db: Database, path: str) -> None:
        if path != MEMORY:
            db.enable_wal()  # readers never block the writer; a commit is one append
        # NORMAL is durable against a crash of the app (WAL); only power loss may drop the last commits.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        newer = schema.unknown_applied(db)
        if newer:
            raise StoreError(
                f"the session log {path} was written by a newer FastSlow (it has migration "
                f"{newer[-1]}); upgrade FastSlow, or choose another file with --db",
                kind="newer_schema",
            )
        # IMMEDIATE takes the write lock now, so a locked file fails here, cleanly.
        db.execute("BEGIN IMMEDIATE")
        try:
            schema.migrations.apply(db)
            _mark_interrupted(db, lambda token: not _writer_alive(token))
            # Always a write, so a read-only file is found out now rather than mid-run; it also
            # lets any SQLite tool read the schema version.
            db.execute(f"PRAGMA user_version = {len(schema.migrations.applied(db))}")
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise

    @_guarded
    def close(self) -> None:
        """Close the file; runs this log started and never finished are marked interrupted."""
        if self._unfinished:
            with self._write():
                ids = set(self._unfinished)
                _mark_interrupted(self.db, lambda token: True, ids)
            self._unfinished.clear()
        self.db.close()

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
            row.update(model=info.name, model_path=info.path, engine=info.engine,
                       backend=info.backend_used, quantization=info.quantization,
                       n_threads=info.n_threads, n_gpu_layers=info.n_gpu_layers_offloaded,
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
        values = {name: getattr(result, name) for name in _RESULT_FIELDS if name in self._run_columns}
        for name in _DICT_FIELDS:
            values[name] = json.dumps(values[name], ensure_ascii=False)
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
    def list_runs(self, session_id: int | None = None, limit: int | None = None) -> list[RunSummary]:
        """Runs, newest first."""
        names = [f.name for f in fields(RunSummary) if f.name != "prompt"]
        where, params = ("WHERE r.session_id = ?", [session_id]) if session_id is not None else ("", [])
        sql = (f"SELECT {', '.join('r.' + n for n in names)}, p.text AS prompt FROM runs r "
               f"JOIN prompts p ON p.id = r.prompt_id {where} ORDER BY r.id DESC")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [RunSummary(**{**row, "correct": None if row["correct"] is None else bool(row["correct"])})
                for row in self._rows(sql, params)]

    @_guarded
    def latest_session_id(self) -> int | None:
        row = self.db.execute("SELECT max(id) FROM sessions").fetchone()
        return row[0]

    def records(self, session_id: int | None = None) -> Iterator[dict]:
        """One complete record per run (the JSONL shape), oldest first; streams, holding the lock."""
        with self._lock:
            try:
                yield from self._records(session_id)
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from exc

    @_guarded
    def import_records(self, records: Iterable[dict]) -> tuple[int, int]:
        """Add records (from records() or a JSONL export), all or nothing.

        Sessions, prompts and runs are matched by uid, so importing twice adds nothing the second
        time. Returns (imported, skipped).
        """
        imported = skipped = 0
        with self._write():
            for index, record in enumerate(records, start=1):
                try:
                    added = self._import_one(record)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise StoreError(f"record {index} is not a FastSlow run record ({exc!r})",
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
        rows = list(self.db[table].rows_where("id = ?", [pk]))
        if not rows:
            raise StoreError(f"there is no {table[:-1]} {pk} in the session log {self.path}", kind="not_found")
        return rows[0]

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
            yield self._row_to_record(row)

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
        for name in _BOOL_FIELDS:  # SQLite keeps 0/1
            run[name] = bool(run[name])
        for name in _MAYBE_BOOL_FIELDS:
            run[name] = None if run[name] is None else bool(run[name])
        telemetry = [
            {k: s[k] for k in ("t_s", "name", "value", "unit", "source")}
            for s in self._rows("SELECT * FROM telemetry_samples WHERE run_id = ? ORDER BY id", [row["id"]])
        ]
        return {"format": RECORD_FORMAT, "version": RECORD_VERSION, "session": session, "prompt": prompt,
                "run": run, "timeline": {"t": times, "channel": channels}, "telemetry": telemetry}

    def _import_one(self, record: dict) -> bool:
        if record.get("format") != RECORD_FORMAT:
            raise ValueError(f"format is {record.get('format')!r}, not {RECORD_FORMAT!r}")
        if record["version"] > RECORD_VERSION:
            raise ValueError(f"version {record['version']} is newer than this FastSlow reads ({RECORD_VERSION})")
        run = record["run"]
        if self.db.execute("SELECT 1 FROM runs WHERE uid = ?", [run["uid"]]).fetchone():
            return False
        s, p = record["session"], record["prompt"]
        session_id = self._id_for_uid("sessions", s["uid"], lambda: {
            "uid": s["uid"], "started_at": s["started_at"], "mode": s.get("mode"),
            "app_version": s.get("app_version"), "host": json.dumps(s.get("host"))})
        prompt_id = self._id_for_uid("prompts", p["uid"], lambda: {
            "uid": p["uid"], "session_id": session_id, "created_at": p["created_at"], "text": p["text"],
            "messages": json.dumps(p["messages"], ensure_ascii=False),
            "request": json.dumps(p["request"], ensure_ascii=False), "known_answer": p.get("known_answer")})
        row = {k: v for k, v in run.items() if k in self._run_columns and k not in _PRIVATE_RUN_COLUMNS}
        for name in _JSON_RUN_COLUMNS:
            if row.get(name) is not None:
                row[name] = json.dumps(row[name], ensure_ascii=False)
        if row["status"] == "running":  # exported mid-run by another process: it never finished here
            row["status"] = "interrupted"
        row.update(prompt_id=prompt_id, session_id=session_id)
        run_id = self.db["runs"].insert(row).last_pk
        timeline = record.get("timeline") or {"t": [], "channel": []}
        blob_t, blob_c = encode_timeline(timeline["t"], timeline["channel"])
        self.db["token_timelines"].insert(
            {"run_id": run_id, "n_tokens": len(timeline["t"]), "times": blob_t, "channels": blob_c})
        self.db["telemetry_samples"].insert_all(
            {"session_id": session_id, "run_id": run_id, **TelemetrySample(**t).__dict__}
            for t in record.get("telemetry") or [])
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
    run = record["run"]
    values = {name: run[name] for name in _RESULT_FIELDS if name in run}
    return RunResult(**values, token_times_s=list(record["timeline"]["t"]))


class MemoryLog(SessionLog):
    """The same log in memory, for when the file is unusable; save_to() flushes it later."""

    def __init__(self, db: Database | None = None, path: str = MEMORY) -> None:
        if db is None:
            db = Database(_connect(MEMORY, 0), execute_plugins=False)
            SessionLog._prepare(db, MEMORY)
        super().__init__(db, path)

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, timeout: float = 5.0) -> MemoryLog:
        return cls()

    def save_to(self, log: SessionLog) -> tuple[int, int]:
        """Copy every run into `log` (a SessionLog that works again); returns (imported, skipped).

        Runs still running are copied as interrupted. Safe to call again: uids make it idempotent.
        """
        return log.import_records(list(self.records()))


def open_log(path: str | os.PathLike | None = None, timeout: float = 5.0) -> tuple[SessionLog, StoreError | None]:
    """The log at path, or a MemoryLog and the reason when the file cannot be used: the app goes on."""
    try:
        return SessionLog.open(path, timeout=timeout), None
    except StoreError as exc:
        return MemoryLog(), exc
