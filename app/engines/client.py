"""EngineClient: the parent's handle on one worker process, itself an Engine."""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
import threading
import types
from multiprocessing.connection import wait
from typing import Iterator

from app.engines.backends import Preflight, preflight
from app.engines.gguf_header import GGUFInfo
from app.engines.types import (
    EngineError,
    Event,
    Failed,
    Finished,
    GenerationRequest,
    ModelInfo,
    ModelSpec,
    Token,
    now,
)
from app.engines.worker_boot import boot

_CLOSE_TIMEOUT_S = 5.0
CANCEL_GRACE_S = 1.0  # a cancelled run that has not ended by then is stopped by restarting its worker


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = {
            "SIGKILL": " (killed from outside, often by the system running out of memory)",
            "SIGSEGV": " (a crash inside the engine)",
            "SIGABRT": " (the engine aborted)",
        }.get(name, "")
        return f"was killed by {name}{hint}"
    return f"exited with code {exitcode}"


_SPAWN_LOCK = threading.Lock()


def start_without_main(process: multiprocessing.process.BaseProcess) -> None:
    """Start a spawned process that does not re-import this process's main module first.

    spawn prepares a child by importing the parent's `__main__` (for targets defined there); the
    worker's target is in worker_boot, and the main module (the CLI, the window) would load numpy
    before the engine's libraries (worker_boot says why that crashed). A stand-in `__main__` with
    no file and no spec makes spawn prepare none; the lock keeps two starts from swapping at once.
    """
    with _SPAWN_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            if main is not None:
                sys.modules["__main__"] = main


class EngineClient:
    """Loads a model in its own spawned worker and streams its events back.

    The model is checked here, in the parent, by its backend's preflight (backends.py), so a bad
    file never reaches llama.cpp; the GGUF header it read is handed to the worker, not read again.
    Cancel flips a byte in shared memory that the worker polls; no message needed. A worker that
    does not end a cancelled run within CANCEL_GRACE_S (stuck where nothing polls) is killed and
    started again with the same model: the run ends cancelled, the pane stays usable.
    """

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._process = None
        self._conn = None
        self._cancel = self._ctx.RawValue(ctypes.c_byte, 0)
        self._busy = False
        self._lock = threading.Lock()  # busy, the request's number and the watchdog, between threads
        self._request_no = 0
        self._watchdog: threading.Timer | None = None
        self._stuck = False  # the watchdog killed the worker of the current request
        self._loaded: tuple[ModelSpec, Preflight] | None = None
        self.info: ModelInfo | None = None
        self.label = ""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def load(self, spec: ModelSpec, prepared: Preflight | GGUFInfo | None = None) -> ModelInfo:
        """Start the worker and load `spec`; `prepared` is the preflight the caller already ran.

        None: it is run here (a clear message before any worker starts). A bare GGUF header is
        taken as well, and not read again: kept for app/panes.py until it hands the preflight.
        """
        if not isinstance(prepared, Preflight):
            prepared = preflight(spec, prepared)
        self.label = spec.label
        self._loaded = (spec, prepared)
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        self._process = self._ctx.Process(
            target=boot,
            args=(child_conn, self._cancel, spec.engine),
            name=f"fastslow-worker[{spec.label}]",
            daemon=True,
        )
        start_without_main(self._process)
        child_conn.close()
        self._conn = parent_conn
        self._conn.send(("load", (spec, prepared.header)))
        reply, payload = self._receive()
        if reply == "error":
            kind, message = payload
            self.close()
            raise EngineError(message, kind=kind)
        self.info = payload
        return payload

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        """Send the request now, clearing an earlier cancel, and return its events as they come.

        Eager, not a generator: a caller that must not miss a cancel (app/cancellation.py) arms
        and sends in one step, under its own lock; a cancel after this returns is seen by the worker.
        """
        if self._conn is None:
            raise EngineError("no model is loaded: call load() first", kind="not_loaded")
        self._cancel.value = 0
        try:
            self._conn.send(("generate", request))
        except (BrokenPipeError, OSError):  # the worker is gone: say so as its stream would
            self._process.join(1.0)
            message = f"the worker running {self.label} {describe_exit(self._process.exitcode)}"
            return iter([Failed(now(), "worker_died", message)])
        with self._lock:
            self._busy, self._stuck = True, False
            self._request_no += 1
            self._stop_watchdog()
        return self._events()

    def _events(self) -> Iterator[Event]:
        generated = 0
        try:
            while self._busy:
                try:
                    batch = self._receive()
                except EngineError as exc:
                    with self._lock:
                        self._busy = False
                        stuck = self._stuck
                    if stuck:  # cancelled, and stopped by restarting the worker
                        yield Finished(now(), "cancelled", generated, 0.0)
                        self._restart()
                    else:
                        yield Failed(now(), exc.kind, str(exc))
                    return
                for event in batch:
                    if ended(event):
                        with self._lock:
                            self._busy = False
                            self._stop_watchdog()
                    elif isinstance(event, Token) and not event.injected:
                        generated += 1
                    yield event
        finally:
            if self._busy:  # the caller walked away mid-stream: stop the worker, drop the rest
                self._drain()

    def _drain(self) -> None:
        self.cancel()
        try:
            while not ended(self._receive()[-1]):
                pass
        except EngineError:
            if self._stuck:
                self._restart()
        with self._lock:
            self._busy = False
            self._stop_watchdog()

    def _receive(self):
        """The next message, or EngineError(kind="worker_died") if the process ended first."""
        ready = wait([self._conn, self._process.sentinel])
        if self._conn in ready:
            try:
                return self._conn.recv()
            except (EOFError, OSError):
                pass
        self._process.join(1.0)
        message = f"the worker running {self.label} {describe_exit(self._process.exitcode)}"
        raise EngineError(message, kind="worker_died")

    def cancel(self) -> None:
        self._cancel.value = 1
        with self._lock:
            if self._busy and self._watchdog is None:
                self._watchdog = threading.Timer(CANCEL_GRACE_S, self._kill_if_stuck, args=(self._request_no,))
                self._watchdog.daemon = True
                self._watchdog.start()

    def _kill_if_stuck(self, request_no: int) -> None:
        with self._lock:
            if not self._busy or request_no != self._request_no or self._process is None:
                return
            self._stuck = True
            self._process.kill()  # the reader sees the worker end, and ends the run cancelled

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _restart(self) -> None:
        """A fresh worker with the same model, after the watchdog stopped a stuck one."""
        spec, prepared = self._loaded
        self._close_process()
        try:
            self.load(spec, prepared)
        except EngineError:  # it loaded before; if it cannot now, the next request says so
            self._process = self._conn = None

    def close(self) -> None:
        with self._lock:
            self._stop_watchdog()
        self._close_process()

    def _close_process(self) -> None:
        if self._process is None:
            return
        if self._process.is_alive():
            try:
                if self._busy:
                    self._cancel.value = 1
                self._conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
            self._process.join(_CLOSE_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(_CLOSE_TIMEOUT_S)
        self._conn.close()
        self._process = None
        self._conn = None

    def __enter__(self) -> "EngineClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def ended(event) -> bool:
    """The request's last event: a failure, or the end of its reply (of its last sample, for k)."""
    return isinstance(event, Failed) or (isinstance(event, Finished) and event.final)
