"""The app's bridge to the Qt-free session: loads models and runs prompts off the GUI thread.

Long work runs in superqt generator workers; a run's updates (immutable RunUpdates) come back to
the GUI thread in batches (at most one per BATCH_S, and at every phase change and run end), so the
GUI never handles a signal per token. Views keep their own state from the updates (app/live.py);
nothing they read is touched by the worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal
from superqt.utils import thread_worker

from app.cancellation import Cancellation
from app.engines.types import EngineError, Failed, Finished, GenerationRequest, ModelSpec, PromptDone, Started, now
from app.session import Session
from app.store import MemoryLog, SessionLog

BATCH_S = 0.03  # ~30 updates a second at most: smooth to the eye, cheap for the event loop


class SessionController(QObject):
    pane_loading = Signal(int, str)  # pane, model label
    pane_loaded = Signal(int, object)  # pane, Pane (info, fit, thinking style)
    pane_load_failed = Signal(int, str)  # pane, the message
    run_started = Signal()
    updates = Signal(object)  # list[RunUpdate], in arrival order
    run_finished = Signal(object)  # list[RunResult], pane order
    run_failed = Signal(str)
    busy_changed = Signal(bool)
    loads_done = Signal()  # a load_models() call has finished, whatever each pane's outcome

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._worker = None
        self._busy = False
        self._closed = False
        self._cancellation: Cancellation | None = None  # the running comparison's

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def log(self) -> SessionLog | MemoryLog | None:
        return self.session.log

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _start(self, worker, then=None) -> None:
        self._worker = worker
        self._set_busy(True)
        worker.finished.connect(lambda: self._on_worker_finished(then))
        worker.start()

    def _on_worker_finished(self, then) -> None:
        self._worker = None
        self._set_busy(False)
        if then is not None:  # after busy is cleared, so a listener may start the next task
            then()

    # -- loading ------------------------------------------------------------------------------

    def load_models(self, specs: dict[int, ModelSpec], force: bool = False) -> bool:
        """Load these panes' models, one after another, off the GUI thread; False if busy."""
        if self._busy or self._closed:
            return False
        worker = _load_worker(self.session, specs, force)
        worker.yielded.connect(self._on_load_step)
        self._start(worker, then=self.loads_done.emit)
        return True

    def _on_load_step(self, step: tuple) -> None:
        what, index, payload = step
        if what == "loading":
            self.pane_loading.emit(index, payload)
        elif what == "loaded":
            self.pane_loaded.emit(index, payload)
        else:
            self.pane_load_failed.emit(index, payload)

    # -- running ------------------------------------------------------------------------------

    def run(
        self, requests: list[GenerationRequest], decisions: list[Any] | None = None, only: list[int] | None = None,
        known_answer: str | None = None,
    ) -> bool:
        """Run one request per pane (or only some panes); False (and nothing starts) while busy."""
        if self._busy or self._closed:
            return False
        self._cancellation = Cancellation()
        worker = _run_worker(self.session, requests, decisions, only, self._cancellation, known_answer)
        worker.yielded.connect(self.updates.emit)
        worker.returned.connect(self.run_finished.emit)
        worker.errored.connect(lambda exc: self.run_failed.emit(_message(exc)))
        self.run_started.emit()
        self._start(worker)
        return True

    def cancel(self, panes: Sequence[int] | None = None) -> None:
        """Stop these panes (None: every pane, those still waiting included); each ends with what it
        has, marked cancelled."""
        if self._cancellation is not None:
            self._cancellation.cancel(panes)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Cancel, wait for the worker thread, then stop every worker process (no orphans)."""
        if self._closed:
            return
        self._closed = True
        self.cancel()
        self.session.cancel()
        deadline = time.monotonic() + timeout_s
        while self._worker is not None and time.monotonic() < deadline:
            # A load cannot be interrupted, but it ends; a run ends within a token of cancel().
            self.session.cancel()
            QCoreApplication.processEvents()
            time.sleep(0.01)
        self.session.close()
        if self.session.log is not None:
            self.session.log.close()


@thread_worker(start_thread=False, ignore_errors=True)  # errored is handled: no re-raise
def _load_worker(session: Session, specs: dict[int, ModelSpec], force: bool):
    for index, spec in specs.items():
        yield "loading", index, spec.label
        try:
            pane = session.load_pane(index, spec, force)
        except EngineError as exc:
            yield "failed", index, str(exc)
        except Exception as exc:  # a load must never take the app down; say what happened
            yield "failed", index, _message(exc)
        else:
            yield "loaded", index, pane


@thread_worker(start_thread=False, ignore_errors=True)  # errored is handled: no re-raise
def _run_worker(session: Session, requests: list[GenerationRequest], decisions: list[Any] | None, only,
                cancellation: Cancellation, known_answer: str | None):
    batch: list = []
    results = {}
    last = now()
    for update in session.stream(requests, decisions, only, cancellation, known_answer):
        batch.append(update)
        if update.closing:
            results[update.pane] = update.result
        # Phase changes and run ends go at once (the stats change); tokens are gathered for up to BATCH_S.
        urgent = update.closing or isinstance(update.event, (Started, PromptDone, Finished, Failed))
        if urgent or now() - last >= BATCH_S:
            yield batch
            batch, last = [], now()
    if batch:
        yield batch
    return [results[i] for i in sorted(results)]


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
