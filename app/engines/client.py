"""EngineClient: the parent's handle on one worker process, itself an Engine."""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
from multiprocessing.connection import wait
from typing import Iterator

from app.engines.gguf_header import GGUFInfo, read_gguf_header
from app.engines.mlx_convert import check_mlx_folder
from app.engines.types import (
    EngineError,
    Event,
    Failed,
    Finished,
    GenerationRequest,
    ModelInfo,
    ModelSpec,
    now,
)
from app.engines.worker import worker_main

_CLOSE_TIMEOUT_S = 5.0


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


class EngineClient:
    """Loads a model in its own spawned worker and streams its events back.

    The GGUF header is read and validated here, in the parent, so a bad file never reaches
    llama.cpp. Cancel flips a byte in shared memory that the worker polls; no message needed.
    """

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._process = None
        self._conn = None
        self._cancel = self._ctx.RawValue(ctypes.c_byte, 0)
        self._busy = False
        self.info: ModelInfo | None = None
        self.label = ""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def load(self, spec: ModelSpec, header: GGUFInfo | None = None) -> ModelInfo:
        """Start the worker and load `spec`; `header` is the file's, when the caller already read it."""
        if spec.engine == "mlx":
            check_mlx_folder(spec.path)  # a clear message before any worker starts
        elif header is None:
            read_gguf_header(spec.path)  # raises GGUFError with a clear message
        self.label = spec.label
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        self._process = self._ctx.Process(
            target=worker_main,
            args=(child_conn, self._cancel),
            name=f"fastslow-worker[{spec.label}]",
            daemon=True,
        )
        self._process.start()
        child_conn.close()
        self._conn = parent_conn
        self._conn.send(("load", spec))
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
        self._busy = True
        return self._events()

    def _events(self) -> Iterator[Event]:
        try:
            while self._busy:
                try:
                    batch = self._receive()
                except EngineError as exc:
                    self._busy = False
                    yield Failed(now(), exc.kind, str(exc))
                    return
                for event in batch:
                    if isinstance(event, (Finished, Failed)):
                        self._busy = False
                    yield event
        finally:
            if self._busy:  # the caller walked away mid-stream: stop the worker, drop the rest
                self._drain()

    def _drain(self) -> None:
        self.cancel()
        try:
            while not isinstance(self._receive()[-1], (Finished, Failed)):
                pass
        except EngineError:
            pass
        self._busy = False

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

    def close(self) -> None:
        if self._process is None:
            return
        if self._process.is_alive():
            try:
                if self._busy:
                    self.cancel()
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
