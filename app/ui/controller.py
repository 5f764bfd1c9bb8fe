"""The one door between the views and the Qt-free session.

The window says what the user wants (load these models, run, cancel, new settings) through the
controller's methods and shows what comes back: PaneSnapshots whenever a pane's model or run state
changes, a LogState when it asks, the live figures, and the runs' immutable updates. No view holds
or reads the session (tests/ui/test_controller.py checks the source).

Long work runs in superqt generator workers; a run's updates (immutable RunUpdates) come back to
the GUI thread in batches (at most one per BATCH_S, and at every phase change and run end), so the
GUI never handles a signal per token. Views keep their own state from the updates (app/live.py);
nothing they read is touched by the worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal
from superqt.utils import thread_worker

from app import doctor
from app.cancellation import Cancellation
from app.expected_cost import expected_cost
from app.route_between import Between, route_between
from app.routing.evidence import ModelRecord
from app.engines.types import EngineError, Failed, Finished, GenerationRequest, ModelSpec, PromptDone, Started, now
from app.hardware import physical_cores
from app.live import LiveRun, LiveStats, live_stats
from app.record import energy_domains
from app.runs import RunUpdate
from app.session import Pane, Session
from app.settings import Settings
from app.store import MemoryLog, SessionLog
from app.telemetry import Sample
from app.telemetry.load import background_cores, threads_warning
from app.ui.snapshots import LogState, PaneActivity, PaneLoad, PaneSnapshot

BATCH_S = 0.03  # ~30 updates a second at most: smooth to the eye, cheap for the event loop


class SessionController(QObject):
    pane_changed = Signal(object)  # PaneSnapshot: its model or its run state changed
    updates = Signal(object)  # list[RunUpdate], in arrival order
    run_finished = Signal(object)  # list[RunResult], pane order
    run_failed = Signal(str)
    busy_changed = Signal(bool)
    loads_done = Signal()  # a load_models() call has finished, whatever each pane's outcome

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._worker = None
        self._busy = False
        self._closed = False
        self._cancellation: Cancellation | None = None  # the running comparison's
        self._running: set[int] = set()  # the running comparison's panes that have not ended
        self._open_samples: dict[int, int] = {}  # per running pane, its samples not ended yet
        self._cancelling: set[int] = set()
        self._panes = [PaneSnapshot(i, "", PaneLoad.EMPTY, PaneActivity.IDLE) for i in range(len(session.panes))]
        self._gpu_probe = doctor.GpuProbe()  # the system's GPU tools answer while the models load

    @classmethod
    def with_empty_panes(
        cls, n_panes: int, settings: Settings, log: SessionLog | MemoryLog, parent: QObject | None = None,
    ) -> SessionController:
        """A session of n panes with nothing loaded yet; a pane run before its model loads fails saying so."""
        session = Session([], mode=settings.mode, cores=settings.n_threads, tdp_w=settings.tdp_w,
                          sample_hz=settings.sample_hz, log=log)
        for _ in range(n_panes):
            session.panes.append(_empty_pane())
        return cls(session, parent)

    # -- what the views read --------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def running(self) -> frozenset[int]:
        """The running comparison's panes whose run has not ended yet."""
        return frozenset(self._running)

    @property
    def mode(self) -> str:
        return self._session.mode

    def pane(self, index: int) -> PaneSnapshot:
        return self._panes[index]

    def panes(self) -> tuple[PaneSnapshot, ...]:
        return tuple(self._panes)

    def log_state(self) -> LogState:
        s = self._session
        error = s.log_error
        return LogState(s.log, s.log_session_id, str(error) if error is not None else None, s.log_waiting)

    def route_between(self, prompt: str, router: str, max_tokens: int, fast: int = 0, slow: int = 1) -> Between | None:
        """Which of two loaded panes answers `prompt` (fast directly, slow thinking), with each side's
        expected cost from its model's runs in the log; None until both have a model."""
        panes = self._session.panes
        if max(fast, slow) >= len(panes) or any(panes[i].info is None for i in (fast, slow)):
            return None
        log = self._session.log
        return route_between(prompt, expected_cost(log, panes[fast].spec, thinking=False),
                             expected_cost(log, panes[slow].spec, thinking=True), fast, slow, router, max_tokens)

    def model_record(self, pane: int) -> ModelRecord | None:
        """The pane's model's record of checked answers (what Auto knows of it); None before it loads."""
        panes = self._session.panes
        return self._session.model_record(pane) if pane < len(panes) and panes[pane].info is not None else None

    def mark(self, pane: int, rating: int | None) -> None:
        """A person's mark on the pane's latest answer (1 right, -1 wrong, None none), into the log.
        Raises ValueError when it has no finished answer to mark."""
        self._session.rate(pane, rating)

    def mark_stored(self, log: SessionLog, run_id: int, rating: int | None) -> None:
        """A person's mark on a run reopened from the history (`log`: where it was read from)."""
        self._session.rate_stored(log, run_id, rating)

    def samples(self) -> Sequence[Sample]:
        """The sampler's readings so far (none before a model has loaded)."""
        sampler = self._session.sampler
        return sampler.samples if sampler is not None else []

    def live_figures(self, runs: Mapping[int, LiveRun], t: float) -> dict[int, LiveStats]:
        """Each unfinished run's figures at time t, with its own worker's share of the power."""
        s, samples = self._session, self.samples()
        running = [i for i, run in runs.items() if run.started and not run.done]
        figures = {}
        for i, run in runs.items():
            if run.done:
                continue  # its figures are final, shown once from its record
            client = s.panes[i].client  # read now, not at load: a stuck worker may have been restarted
            pid = client.pid if client is not None else None
            info = s.panes[i].info
            domains = energy_domains(info.engine, info.n_gpu_layers_offloaded, info.device) if info is not None else None
            figures[i] = live_stats(run, t, samples, pid, s.pids_sharing_with(i, running), domains,
                                    s.pids_sharing_with(i, running, same_server=True))
        return figures

    def lost_sources(self) -> list[str]:
        """Each power source that stopped answering, and that energy leaves it out since."""
        return self._session.lost_sources()

    def gpu_mismatches(self) -> list[str]:
        """A GPU here that the loaded llama.cpp's build leaves idle, each with its fix (`doctor.at_load`).
        The system's GPU tools were asked once, on a thread of their own, when the controller began."""
        infos = [p.info for p in self._session.panes]
        return [m.line for m in doctor.at_load(infos, self._gpu_probe.gpus())]

    def load_warning(self, seconds: float = 3.0) -> str:
        """Before a run: a sentence when other programs' load over the last seconds leaves fewer free
        CPUs than a pane's threads (llama.cpp's threads would wait on it), else ""."""
        samples = self.samples()
        threads = [p.info.n_threads for p in self._session.panes if p.info is not None and p.info.n_threads]
        if len(samples) < 2 or not threads:
            return ""
        t1 = samples[-1].t
        background = background_cores(samples, t1 - seconds, t1)
        return threads_warning(max(threads), samples[-1].logical_cpus, background)

    def energy_fixes(self) -> list[tuple[str, str]]:
        """(source, how to unlock it) for each power counter this machine has but cannot read."""
        power = self._session.power
        return list(power.fixable) if power is not None else []

    # -- settings -------------------------------------------------------------------------------

    def apply_settings(self, settings: Settings) -> bool:
        """Threads from the next run; a new TDP or sampling rate restarts telemetry now, unless a
        task is running. True when it restarted (a fresh sampler: its lost sources are its own)."""
        s = self._session
        s.cores = settings.n_threads or physical_cores()
        restart = (settings.tdp_w, settings.sample_hz) != (s.tdp_w, s.sample_hz)
        s.tdp_w, s.sample_hz = settings.tdp_w, settings.sample_hz
        if restart and not self._busy and s.sampler is not None:
            s.restart_telemetry()
            return True
        return False

    def flush_log(self, wait_s: float) -> bool:
        """Wait up to wait_s for writes the log file refused for now; True when every row is in it
        (otherwise they are kept in memory, and log_state() says so)."""
        return self._session.flush_log(wait_s)

    # -- busy, and each pane's run state --------------------------------------------------------

    def _set_pane(self, snapshot: PaneSnapshot) -> None:
        if snapshot != self._panes[snapshot.index]:
            self._panes[snapshot.index] = snapshot
            self.pane_changed.emit(snapshot)

    def _activity(self, index: int) -> PaneActivity:
        if index in self._running:
            return PaneActivity.CANCELLING if index in self._cancelling else PaneActivity.RUNNING
        return PaneActivity.BLOCKED if self._busy else PaneActivity.IDLE

    def _refresh_activities(self) -> None:
        for snapshot in list(self._panes):
            self._set_pane(replace(snapshot, activity=self._activity(snapshot.index)))

    def _refresh_pids(self) -> None:
        """A worker stuck past a cancel is started again under a new pid: the snapshots follow it
        (read between tasks, when no worker thread touches the session)."""
        for snapshot in list(self._panes):
            if snapshot.load is PaneLoad.LOADED:
                client = self._session.panes[snapshot.index].client
                self._set_pane(replace(snapshot, pid=client.pid if client is not None else None))

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            if not busy:
                self._running.clear()
                self._cancelling.clear()
            self._refresh_activities()
            self.busy_changed.emit(busy)

    def _start(self, worker, then=None) -> None:
        self._worker = worker
        self._set_busy(True)
        worker.finished.connect(lambda: self._on_worker_finished(then))
        worker.start()

    def _on_worker_finished(self, then) -> None:
        self._worker = None
        self._cancellation = None
        self._refresh_pids()
        self._set_busy(False)
        if then is not None:  # after busy is cleared, so a listener may start the next task
            then()

    # -- loading ------------------------------------------------------------------------------

    def load_models(self, specs: dict[int, ModelSpec], force: bool = False) -> bool:
        """Load these panes' models, one after another, off the GUI thread; False if busy."""
        if self._busy or self._closed:
            return False
        worker = _load_worker(self._session, specs, force)
        worker.yielded.connect(self._on_load_step)
        self._start(worker, then=self.loads_done.emit)
        return True

    def _on_load_step(self, step: tuple) -> None:
        what, index, payload = step
        activity = self._activity(index)
        if what == "loading":  # the old model is still in the session's pane: only the new one's name
            self._set_pane(PaneSnapshot(index, payload, PaneLoad.LOADING, activity))
        elif what == "loaded":
            self._set_pane(_snapshot(index, payload, PaneLoad.LOADED, activity))
        else:  # the session keeps the failed pane, with what was learnt before it failed (fit, style)
            failed = _snapshot(index, self._session.panes[index], PaneLoad.FAILED, activity, error=payload)
            self._set_pane(replace(failed, label=self._panes[index].label))

    # -- running ------------------------------------------------------------------------------

    def run(
        self, requests: list[GenerationRequest], decisions: list[Any] | None = None, only: list[int] | None = None,
        known_answer: str | None = None, mode: str | None = None,
    ) -> bool:
        """Run one request per pane (or only some panes), fair or live (mode; default as last time);
        False (and nothing starts) while busy."""
        if self._busy or self._closed:
            return False
        if mode is not None:
            self._session.mode = mode
        self._cancellation = Cancellation()
        self._running = set(range(len(self._panes)) if only is None else only)
        self._open_samples = {i: max(1, requests[i].n_samples) for i in self._running}
        worker = _run_worker(self._session, requests, decisions, only, self._cancellation, known_answer)
        worker.yielded.connect(self._on_updates)
        worker.returned.connect(self.run_finished.emit)
        worker.errored.connect(lambda exc: self.run_failed.emit(_message(exc)))
        self._start(worker)
        return True

    def _on_updates(self, batch: list[RunUpdate]) -> None:
        self.updates.emit(batch)  # first: a pane shows its result, then its button becomes Run
        for update in batch:
            if update.closing:
                self._open_samples[update.pane] = self._open_samples.get(update.pane, 1) - 1
        # A pane has ended when its last sample has (k samples, majority: each closes on its own).
        ended = {update.pane for update in batch if update.closing and self._open_samples.get(update.pane, 0) <= 0}
        if ended & self._running:
            self._running -= ended
            self._refresh_activities()

    def cancel(self, panes: Sequence[int] | None = None) -> bool:
        """Stop these panes (None: every pane, those still waiting included); each ends with what it
        has, marked cancelled. False when none of them is running."""
        if self._cancellation is None:
            return False
        targets = self._running if panes is None else self._running & set(panes)
        if panes is not None and not targets:
            return False
        self._cancellation.cancel(panes)
        self._cancelling |= targets
        self._refresh_activities()
        return True

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Cancel, wait for the worker thread, then stop every worker process (no orphans)."""
        if self._closed:
            return
        self._closed = True
        self.cancel()
        session = self._session
        session.cancel()
        deadline = time.monotonic() + timeout_s
        while self._worker is not None and time.monotonic() < deadline:
            # A load cannot be interrupted, but it ends; a run ends within a token of cancel().
            session.cancel()
            QCoreApplication.processEvents()
            time.sleep(0.01)
        session.close()
        if session.log is not None:
            session.log.close()


def _snapshot(index: int, pane: Pane, load: PaneLoad, activity: PaneActivity, error: str | None = None) -> PaneSnapshot:
    pid = pane.client.pid if pane.client is not None else None
    return PaneSnapshot(index, pane.label, load, activity, pane.info, pane.fit, pane.thinking_style, pid, error)


def _empty_pane() -> Pane:
    pane = Pane(ModelSpec(path=""))
    pane.load_error = EngineError("no model is loaded in this pane yet", kind="not_loaded")
    return pane


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
        if update.closing and update.sample == 0:  # a pane's first sample; the others come in the updates
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
