"""A comparison: the same prompt through several loaded models, fair or live.

The session only coordinates: panes load through app/panes.py (an injectable engine factory), a
schedule (app/scheduling.py: Fair or Live) orders the runs, a RunRecorder per run turns events
into updates and a frozen record, app/run_energy.py prices the finished run from the telemetry,
and the LogWriter stores it. stream() hands back everything that happened as RunUpdates; a
comparison's own state lives in that call, never in the session.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable, Collection, Iterator, Sequence

from app.cancellation import Cancellation
from app.engines.types import EngineError, Failed, Finished, GenerationRequest, ModelSpec, Token, now
from app.hardware import MemoryState, physical_cores
from app.log_writer import LoggedPrompt, LoggedRun, LogWriter
from app.model_record import record_for
from app.panes import EngineFactory, Pane, load_pane, worker_engine
from app.run_energy import run_series, token_share, with_energy
from app.routing.evidence import ModelRecord
from app.runs import RunRecorder, RunResult, RunUpdate
from app.scheduling import MODES, schedule
from app.store import MemoryLog, SessionLog, StoreError
from app.telemetry import Detected, Sampler, detect_sources

__all__ = ["MODES", "Pane", "Session"]


@dataclass(frozen=True)
class _Comparison:
    """One stream() call's plan: what each pane was asked, and how it is stopped and judged."""

    requests: list[GenerationRequest]
    chosen: list[int]
    cancellation: Cancellation
    known_answer: str | None
    logged: LoggedPrompt  # its rows in the session log


class Session:
    """Loads each pane's model in its own engine and runs prompts through them."""

    def __init__(
        self,
        specs: list[ModelSpec],
        mode: str = "fair",
        cores: int | None = None,
        memory: MemoryState | None = None,  # for the fit check; None reads this machine's
        tdp_w: float | None = None,  # the CPU's TDP for the energy estimate, when no counter is readable
        sample_hz: float = 10.0,
        log: SessionLog | MemoryLog | None = None,  # where runs are written as they start and end
        make_engine: EngineFactory = worker_engine,  # a stand-in engine in tests
    ) -> None:
        self.mode = mode
        self.cores = cores or physical_cores()
        self.panes = [Pane(spec) for spec in specs]
        self.memory = memory
        self.make_engine = make_engine
        self._cancellation: Cancellation | None = None  # the latest comparison's, for cancel()
        self._logged: LoggedPrompt | None = None  # the latest comparison's rows, for rate()
        self._records: dict[tuple[str, str], ModelRecord | None] = {}  # each model's record, until a run ends
        self.tdp_w, self.sample_hz = tdp_w, sample_hz
        self.power: Detected | None = None
        self.sampler: Sampler | None = None
        self.log = log  # written through a LogWriter: a busy file is waited for, a failing one replaced by memory
        # Which panes run now, and for each run which others ran at some moment beside it (its energy is
        # shared with those by CPU time): a live comparison's panes, or an eval's lanes (ask() on each).
        self._runs_lock = threading.Lock()
        self._running: set[int] = set()
        self._beside: dict[int, set[int]] = {}

    @property
    def mode(self) -> str:
        return self._schedule.name

    @mode.setter
    def mode(self, mode: str) -> None:
        self._schedule = schedule(mode)  # a ValueError names the modes

    def threads_per_pane(self, running: int | None = None) -> int:
        """Fair: every core for each pane in turn; live: the cores split between the panes running."""
        return self._schedule.threads(self.cores, running or len(self.panes))

    # -- loading ---------------------------------------------------------------------------

    def load(self, force: bool = False) -> None:
        """Load every pane; a pane that cannot load keeps its error and the others go on."""
        for i, pane in enumerate(self.panes):
            if pane.load_error is None:  # else e.g. the name did not resolve to a model
                self.panes[i] = load_pane(pane.spec, self.cores, self.make_engine, self.memory, force)
        self._start_telemetry()

    def load_single(self, force: bool = False) -> Pane:
        """Load a session's one model and return its pane; a model that cannot load raises its error
        (the one-model commands have nothing to go on with)."""
        self.load(force)
        pane = self.panes[0]
        if pane.load_error is not None:
            raise pane.load_error
        return pane

    def load_lanes(self, force: bool = False) -> Pane:
        """Load every pane at once (an eval's lanes: each the same served model, a worker and a
        connection of its own) and return the first; any that cannot load raises its error."""
        with ThreadPoolExecutor(max_workers=len(self.panes)) as pool:
            loaded = list(pool.map(
                lambda pane: load_pane(pane.spec, self.cores, self.make_engine, self.memory, force), self.panes))
        self.panes = loaded
        self._start_telemetry()
        failed = next((pane.load_error for pane in loaded if pane.load_error is not None), None)
        if failed is not None:
            raise failed
        return loaded[0]

    def restart_telemetry(self) -> None:
        """Apply a new TDP or sampling rate: a fresh sampler over the loaded workers."""
        self._start_telemetry()

    def _start_telemetry(self) -> None:
        """Sample CPU, memory and power for the loaded workers from now until close()."""
        if self.sampler is not None:
            self.sampler.stop()
            self.power.close()
        # A served model's GPUs count where their power is published (telemetry/server_power.py).
        servers = [(p.spec.path, p.info.device) for p in self.panes if p.info is not None and not p.uses_local_cores]
        self.power = detect_sources(self.tdp_w, servers=servers)
        # Full rate while a run goes on; one sample a second between runs, when nothing is measured.
        self.sampler = Sampler(self.power.sources, 1.0 / self.sample_hz, idle_interval_s=max(1.0, 1.0 / self.sample_hz))
        self.sampler.start([p.pid for p in self.panes if p.pid is not None])

    def load_pane(self, index: int, spec: ModelSpec, force: bool = False) -> Pane:
        """Put another model in one pane (the app's model picker); the other panes stay loaded.

        Raises EngineError when it cannot load; the pane is then empty, with the error kept.
        """
        old = self.panes[index]
        if old.client is not None:
            if self.sampler is not None:
                self.sampler.remove_pid(old.client.pid)
            old.client.close()
        pane = self.panes[index] = load_pane(spec, self.cores, self.make_engine, self.memory, force)
        if pane.load_error is not None:
            raise pane.load_error
        if self.sampler is None or not pane.uses_local_cores:  # a served model: its server's GPUs too
            self._start_telemetry()
        else:
            self.sampler.add_pid(pane.pid)
        return pane

    # -- running ---------------------------------------------------------------------------

    def stream(
        self,
        request: GenerationRequest | Sequence[GenerationRequest],
        decisions: Sequence[Any] | None = None,
        only: Sequence[int] | None = None,
        cancellation: Cancellation | None = None,
        known_answer: str | None = None,
    ) -> Iterator[RunUpdate]:
        """Yield each pane's RunUpdates as events arrive; every pane's last is its closing update,
        which carries its finished RunResult (a pane that did not load gets only that one).

        request: one for every pane, or one per pane (each pane's own mode, budget and sampling).
        decisions: the router's Decision per pane (None where it was not asked), stored with the run.
        only: the panes to run (the app's per-pane Run button); default every pane.
        cancellation: what the caller cancels through (Esc: every pane; a pane's button: its own);
        session.cancel() reaches the latest stream's too.
        known_answer: each finished run is marked right or wrong against it, and it is stored.
        """
        asked = [request] * len(self.panes) if isinstance(request, GenerationRequest) else list(request)
        if len(asked) != len(self.panes):
            raise ValueError(f"{len(asked)} requests for {len(self.panes)} panes")
        chosen = sorted(set(range(len(self.panes)) if only is None else only))
        local = [i for i in chosen if self.panes[i].uses_local_cores]  # a served pane decodes elsewhere
        asked = [replace(r, n_threads=r.n_threads or self.threads_per_pane(max(1, len(local)))) for r in asked]
        self._cancellation = cancellation = cancellation or Cancellation()
        planned = [pane.plan(r) for pane, r in zip(self.panes, asked)]
        decided = list(decisions) if decisions is not None else [None] * len(self.panes)
        # A run per pane, or per sample where a pane is asked for k (each its own record and log row).
        recorders = {i: [self._recorder(i, planned[i], j) for j in range(max(1, planned[i].n_samples))]
                     for i in chosen}
        logged = self._writer.begin(LoggedPrompt(asked[0], known_answer, self.mode, {
            (i, r.sample): LoggedRun(i, self.panes[i].info, r.request, decided[i]) for i in chosen
            for r in recorders[i]}))
        plan = _Comparison(planned, chosen, cancellation, known_answer, logged)
        self._logged = logged  # the latest comparison: what a person's right/wrong mark is of
        runnable = []
        for i in chosen:
            if self.panes[i].client is None:
                error = self.panes[i].load_error or EngineError("the model is not loaded", kind="not_loaded")
                for r in recorders[i]:
                    yield self._close(i, r.fail(error.kind, str(error)), r, plan)
            else:
                runnable.append(i)
        yield from self._schedule.run(runnable, lambda i: self._run_one(i, recorders[i], plan))

    def _recorder(self, i: int, request: GenerationRequest, sample: int = 0) -> RunRecorder:
        """A run's recorder; of k samples, sample's own (its seed and limits), each its own log row."""
        pane = self.panes[i]
        style = "scaffold" if request.strategy == "scaffold" else pane.thinking_style
        k = request.n_samples
        own = request.for_sample(sample) if k > 1 else request
        return RunRecorder(i, pane.info, self.mode, now(), style, own, label=pane.label, sample=sample, n_samples=k)

    def _run_one(self, i: int, recorders: list[RunRecorder], plan: _Comparison) -> Iterator[RunUpdate]:
        client, cancellation = self.panes[i].client, plan.cancellation
        if cancellation.cancelled(i):  # Esc before its turn came: it never starts
            for r in recorders:
                yield self._close(i, r.cancel_unstarted(), r, plan)
            return
        if self.sampler is not None:
            self.sampler.sample_now()  # bracket the run, so even a short one has readings
        pid = client.pid
        t_submit = now()
        for r in recorders:
            r.t_submit = t_submit
        events = cancellation.start(i, lambda: client.generate(plan.requests[i]), client.cancel)
        if events is None:  # cancelled while the sample above was taken
            for r in recorders:
                yield self._close(i, r.cancel_unstarted(), r, plan)
            return
        self._run_starts(i)
        try:
            with self.sampler.active() if self.sampler is not None else contextlib.nullcontext():
                for event in events:
                    for r in _fed(recorders, event):
                        yield r.feed(event)
        finally:
            cancellation.finished(i)
            self._run_ends(i)
        if self.sampler is not None:
            if client.pid != pid:  # a stuck worker was stopped and started again (EngineClient's watchdog)
                self.sampler.remove_pid(pid)
                if client.pid is not None:
                    self.sampler.add_pid(client.pid)
            self.sampler.sample_now()
        with self._runs_lock:
            beside = sorted(self._beside.pop(i, ()))
        records = [r.record() for r in recorders]
        for r in recorders:
            r.mark(plan.known_answer)
            yield self._close(i, self._priced(i, r, beside, records if len(recorders) > 1 else ()), r, plan)

    def _run_starts(self, i: int) -> None:
        with self._runs_lock:
            self._beside[i] = set(self._running)
            for j in self._running:
                self._beside[j].add(i)
            self._running.add(i)

    def _run_ends(self, i: int) -> None:
        with self._runs_lock:
            self._running.discard(i)

    def _priced(self, i: int, recorder: RunRecorder, beside: Sequence[int],
                batch: Sequence[RunResult] = ()) -> RunResult:
        """The finished record with what it cost: energy over its window, shared by CPU time with the
        runs that went on beside it (`beside`: live mode's other panes, an eval's other lanes); one of
        k samples decoded together takes its share of the batch's by tokens (`batch`: all k records)."""
        if self.sampler is None:
            return recorder.record()
        record = recorder.record()
        lost = self.lost_sources(record.conditions.energy_domains) if self.sampler.failures else ()
        # A server's GPUs are shared only with the runs beside on that server, not with local ones.
        return with_energy(record, self.sampler.samples, recorder.t_submit, self.panes[i].pid, self._pids(i, beside),
                           lost, server_share_with=self._pids(i, beside, same_server=True),
                           token_share=token_share(record, batch) if batch else None)

    def _close(self, i: int, result: RunResult, recorder: RunRecorder, plan: _Comparison) -> RunUpdate:
        """Complete the run's row in the log, then say so with the closing update.

        The row is completed as soon as this run ends, energy included (its window is sampled by
        now), not after the other panes: a crash of the app later loses nothing that finished.
        """
        samples = self.sampler.samples if self.sampler is not None else []
        series = run_series(result, samples, recorder.t_submit, self.panes[i].pid)
        self._writer.end(plan.logged, (i, recorder.sample), result, recorder.channels, series)
        self._records.clear()  # a checked run is evidence for its model's record
        return recorder.closing_update(result)

    def pids_sharing_with(self, i: int, running, same_server: bool = False) -> list[int]:
        """While pane i runs (the app's live figures): the other workers whose CPU time its energy is
        shared with, those running beside it in live mode, none in fair mode; `same_server`: only
        those on pane i's server (its GPUs' energy is shared with them alone)."""
        if not self._schedule.shares_cpu:
            return []
        return self._pids(i, [j for j in running if j != i], same_server)

    def _pids(self, i: int, beside, same_server: bool = False) -> list[int]:
        return [self.panes[j].pid for j in beside if self.panes[j].pid is not None and (
            not same_server or (not self.panes[j].uses_local_cores and self.panes[j].spec.path == self.panes[i].spec.path))]

    def lost_sources(self, domains: Collection[str] | None = None) -> list[str]:
        """Each power source that stopped answering this session, and that energy leaves it out since;
        with `domains`, only those measuring that hardware (a lost GPU does not touch a CPU run)."""
        failures = self.sampler.failures if self.sampler is not None else []
        domain_of = {s.info.name: s.info.domain for s in self.power.sources} if self.power is not None else {}
        return [f"{reason} — energy leaves it out from then on" for name, reason in failures
                if domains is None or domain_of.get(name) in domains]

    def compare(
        self,
        request: GenerationRequest | Sequence[GenerationRequest],
        on_update: Callable[[RunUpdate], None] | None = None,
        decisions: Sequence[Any] | None = None,
        known_answer: str | None = None,
    ) -> list[RunResult]:
        """Run every pane to the end; their finished RunResults in pane order."""
        results: dict[int, RunResult] = {}
        for update in self.stream(request, decisions, known_answer=known_answer):
            if on_update is not None:
                on_update(update)
            if update.closing and update.sample == 0:  # a pane's first sample stands for it here
                results[update.pane] = update.result
        return [results[i] for i in sorted(results)]

    def ask(self, pane: int, request: GenerationRequest, decision: Any = None,
            known_answer: str | None = None) -> RunResult:
        """Run one request on one pane to its end. Several threads may ask at once, each of its own
        pane (an eval's lanes on a served model): each call is a comparison of its own in the log."""
        return self.ask_samples(pane, request, decision, known_answer)[0]

    def ask_samples(self, pane: int, request: GenerationRequest, decision: Any = None,
                    known_answer: str | None = None) -> list[RunResult]:
        """ask(), for a request of n_samples: every sample's record, in sample order."""
        results: dict[int, RunResult] = {}
        decisions = [decision if i == pane else None for i in range(len(self.panes))]
        for update in self.stream(request, decisions, only=[pane], known_answer=known_answer):
            if update.closing:
                results[update.sample] = update.result
        return [results[j] for j in sorted(results)]

    def cancel(self, panes: Sequence[int] | None = None) -> None:
        """Cancel the latest comparison's panes (None: all, those not started yet included)."""
        if self._cancellation is not None:
            self._cancellation.cancel(panes)
        if panes is None:  # and any request in flight outside a comparison
            for pane in self.panes:
                if pane.client is not None:
                    pane.client.cancel()

    # -- the session log: a run row at the start (status running), completed at the end ----

    @property
    def log(self) -> SessionLog | MemoryLog | None:
        """Where runs are written now: the file, or memory once the file failed."""
        return self._writer.log

    @log.setter
    def log(self, log: SessionLog | MemoryLog | None) -> None:
        self._writer = LogWriter(log)
        self._records = {}

    @property
    def log_error(self) -> StoreError | None:
        """The log's latest failure (results then wait for it, or stay in memory), or None."""
        return self._writer.error

    @property
    def log_session_id(self) -> int | None:
        return self._writer.session_id

    @property
    def log_waiting(self) -> int:
        """Writes the log file refused for now (locked, full), kept to be written when it takes them."""
        return self._writer.waiting

    def model_record(self, i: int) -> ModelRecord | None:
        """Pane i's model's record (its checked runs in the log), for Auto to know the model it
        routes for; None without a log. Read again once a run ends or is marked (the app asks on
        every keystroke of the prompt)."""
        spec = self.panes[i].spec
        key = (spec.label, spec.path)
        record = self._records.get(key)  # a run ending on another thread may clear the cache meanwhile
        if record is None:
            record = self._records[key] = record_for(self.log, spec)
        return record

    def rate(self, pane: int, rating: int | None, sample: int = 0) -> None:
        """A person's mark on the latest comparison's answer of `pane`: 1 right, -1 wrong, None none.
        Raises ValueError when that pane has no finished run to mark."""
        if self._logged is None or not self._writer.rate(self._logged, (pane, sample), rating):
            raise ValueError("there is no finished answer in this pane to mark")
        self._records.clear()

    def rate_stored(self, log: SessionLog, run_id: int, rating: int | None) -> None:
        """A person's mark on a run already in `log` (one reopened from the history). Raises
        ValueError, saying why, when the log cannot take it."""
        try:
            log.rate_run(run_id, rating)
        except StoreError as exc:
            raise ValueError(f"the mark could not be stored: {exc}") from exc
        self._records.clear()

    def flush_log(self, wait_s: float) -> bool:
        """Wait up to wait_s for the rows the file refused for now; True when every row is in it.
        Otherwise they are in memory now (self.log is a MemoryLog), to be saved."""
        return self._writer.flush(wait_s)

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
            self.power.close()
            self.sampler = None
        for pane in self.panes:
            if pane.client is not None:
                pane.client.close()
                pane.client = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _fed(recorders: list[RunRecorder], event) -> list[RunRecorder]:
    """Which of a pane's recorders an event is for: a sample's token or end to its own; the start and
    the prompt to all; a failure to those still running (a finished sample keeps its ending)."""
    if len(recorders) == 1:
        return recorders
    if isinstance(event, (Token, Finished)):
        return [recorders[event.sample]] if 0 <= event.sample < len(recorders) else []
    return [r for r in recorders if not r.done]  # a failure, or a start or prompt of a later sample
