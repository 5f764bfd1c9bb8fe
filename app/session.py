"""A comparison: the same prompt through several loaded models, fair or live.

fair: panes run one after another, each with every core — clean, comparable numbers.
live: panes run at once with the cores split between them — watch them race; slower each.
Each RunResult says which mode produced it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

from app.cancellation import Cancellation
from app.engines.client import EngineClient
from app.engines.gguf_header import read_gguf_header
from app.engines.mlx_convert import mlx_chat_template
from app.engines.types import EngineError, Event, GenerationRequest, ModelInfo, ModelSpec, now
from app.reasoning.modes import thinking_request
from app.reasoning.parser import detect_style
from app.hardware import FitEstimate, MemoryState, estimate_fit, physical_cores
from app.log_writer import LoggedPrompt, LoggedRun, LogWriter
from app.runs import RunRecorder, RunResult, RunUpdate
from app.store import MemoryLog, SessionLog, StoreError, TelemetrySample
from app.telemetry import Detected, Sampler, detect_sources, power_series, split_phases

MODES = ("fair", "live")


@dataclass
class Pane:
    """One column of the comparison: a model spec, and once loaded its worker and info."""

    spec: ModelSpec
    client: EngineClient | None = None
    info: ModelInfo | None = None
    fit: FitEstimate | None = None
    load_error: EngineError | None = None
    thinking_style: str = "none"

    @property
    def label(self) -> str:
        return self.spec.label


class Session:
    """Loads each pane's model in its own worker and runs prompts through them."""

    def __init__(
        self,
        specs: list[ModelSpec],
        mode: str = "fair",
        cores: int | None = None,
        memory: MemoryState | None = None,  # for the fit check; None reads this machine's
        tdp_w: float | None = None,  # the CPU's TDP for the energy estimate, when no counter is readable
        sample_hz: float = 10.0,
        log: SessionLog | MemoryLog | None = None,  # where runs are written as they start and end
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.cores = cores or physical_cores()
        self.panes = [Pane(spec) for spec in specs]
        self.memory = memory
        # The latest comparison's own state, for its log rows; callers get what happened from stream().
        self._recorders: dict[int, RunRecorder] = {}
        self._requests: list[GenerationRequest] = []  # what each pane was asked, after planning
        self._decisions: list[Any] = []  # the router's decision per pane, where it was asked
        self._cancellation: Cancellation | None = None
        self._known_answer: str | None = None
        self.tdp_w, self.sample_hz = tdp_w, sample_hz
        self.power: Detected | None = None
        self.sampler: Sampler | None = None
        self.log = log  # written through a LogWriter: a busy file is waited for, a failing one replaced by memory

    def threads_per_pane(self, running: int | None = None) -> int:
        """Fair: every core for each pane in turn; live: the cores split between the panes running."""
        if self.mode == "fair":
            return self.cores
        return max(1, self.cores // max(1, running or len(self.panes)))

    # -- loading ---------------------------------------------------------------------------

    def load(self, force: bool = False) -> None:
        """Load every pane; a pane that cannot load keeps its error and the others go on."""
        for pane in self.panes:
            if pane.load_error is not None:  # e.g. the name did not resolve to a model
                continue
            try:
                self._load_pane(pane, force)
            except EngineError as exc:
                pane.load_error = exc
        self._start_telemetry()

    def load_single(self, force: bool = False) -> Pane:
        """Load a session's one model and return its pane; a model that cannot load raises its error
        (the one-model commands have nothing to go on with)."""
        self.load(force)
        pane = self.panes[0]
        if pane.load_error is not None:
            raise pane.load_error
        return pane

    def restart_telemetry(self) -> None:
        """Apply a new TDP or sampling rate: a fresh sampler over the loaded workers."""
        self._start_telemetry()

    def _start_telemetry(self) -> None:
        """Sample CPU, memory and power for the loaded workers from now until close()."""
        if self.sampler is not None:
            self.sampler.stop()
            self.power.close()
        self.power = detect_sources(self.tdp_w)
        # Full rate while a run goes on; one sample a second between runs, when nothing is measured.
        self.sampler = Sampler(self.power.sources, 1.0 / self.sample_hz, idle_interval_s=max(1.0, 1.0 / self.sample_hz))
        self.sampler.start([p.client.pid for p in self.panes if p.client is not None])

    def load_pane(self, index: int, spec: ModelSpec, force: bool = False) -> Pane:
        """Put another model in one pane (the app's model picker); the other panes stay loaded.

        Raises EngineError when it cannot load; the pane is then empty, with the error kept.
        """
        old = self.panes[index]
        if old.client is not None:
            if self.sampler is not None:
                self.sampler.remove_pid(old.client.pid)
            old.client.close()
        pane = self.panes[index] = Pane(spec)
        try:
            self._load_pane(pane, force)
        except EngineError as exc:
            pane.load_error = exc
            raise
        if self.sampler is None:
            self._start_telemetry()
        else:
            self.sampler.add_pid(pane.client.pid)
        return pane

    def _load_pane(self, pane: Pane, force: bool) -> None:
        header = None
        if pane.spec.engine == "mlx":  # a folder, not a GGUF: no header, so no fit estimate
            template = pane.spec.chat_template or mlx_chat_template(pane.spec.path)
        else:
            header = read_gguf_header(pane.spec.path)
            n_ctx = min(pane.spec.n_ctx, header.context_length or pane.spec.n_ctx)
            pane.fit = estimate_fit(header, n_ctx, pane.spec.n_gpu_layers, memory=self.memory)
            template = pane.spec.chat_template or header.chat_template
        pane.thinking_style = pane.spec.thinking or detect_style(template)
        if pane.fit is not None and pane.fit.verdict == "too_big" and not force:
            raise EngineError(f"{pane.label} does not fit: {pane.fit.message()}", kind="does_not_fit")
        # Load with every core; live mode narrows it per request.
        spec = replace(pane.spec, n_threads=pane.spec.n_threads or self.cores)
        client = EngineClient()
        pane.info = client.load(spec, header)
        pane.client = client

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
        asked = [replace(r, n_threads=r.n_threads or self.threads_per_pane(len(chosen))) for r in asked]
        self._requests = [self.pane_request(pane, r) for pane, r in zip(self.panes, asked)]
        self._decisions = list(decisions) if decisions is not None else [None] * len(self.panes)
        self._cancellation = cancellation = cancellation or Cancellation()
        self._known_answer = known_answer
        self._recorders = {}
        for i in chosen:
            pane, mine = self.panes[i], self._requests[i]
            style = "scaffold" if mine.strategy == "scaffold" else pane.thinking_style
            recorder = RunRecorder(i, pane.info, self.mode, now(), style)
            recorder.result.thinking_budget, recorder.result.strategy = mine.thinking_budget, mine.strategy
            recorder.result.thinking_min = mine.thinking_min
            recorder.max_tokens = mine.max_tokens
            self._recorders[i] = recorder
        self._writer.begin(LoggedPrompt(asked[0], known_answer, self.mode, {
            i: LoggedRun(i, self._recorders[i], self.panes[i].info, self._requests[i], self._decisions[i])
            for i in chosen}))
        for i in chosen:
            pane = self.panes[i]
            if pane.client is None:
                error = pane.load_error or EngineError("the model is not loaded", kind="not_loaded")
                self._recorders[i].result.model = pane.label
                self._recorders[i].fail(error.kind, str(error))
                self._writer.end(i, [])
                yield self._recorders[i].closing_update()
        runnable = [i for i in chosen if self.panes[i].client is not None]
        if self.mode == "fair":
            for i in runnable:
                yield from self._run_one(i, runnable, cancellation)
        else:
            yield from self._run_together(runnable, cancellation)

    @staticmethod
    def pane_request(pane: Pane, request: GenerationRequest) -> GenerationRequest:
        """The plan for one pane: asked to think, a model that cannot is scaffolded instead."""
        if request.thinking and pane.thinking_style == "none" and request.strategy == "native":
            return thinking_request(request, pane.thinking_style)
        return request

    def _run_one(self, i: int, running: list[int], cancellation: Cancellation) -> Iterator[RunUpdate]:
        recorder, client = self._recorders[i], self.panes[i].client
        if cancellation.cancelled(i):  # Esc before its turn came: it never starts
            yield from self._close_run(i, running, cancelled_before_start=True)
            return
        if self.sampler is not None:
            self.sampler.sample_now()  # bracket the run, so even a short one has readings
        pid = client.pid
        recorder.t_submit = now()
        events = cancellation.start(i, lambda: client.generate(self._requests[i]), client.cancel)
        if events is None:  # cancelled while the sample above was taken
            yield from self._close_run(i, running, cancelled_before_start=True)
            return
        try:
            with self.sampler.active() if self.sampler is not None else contextlib.nullcontext():
                for event in events:
                    yield recorder.feed(event)
        finally:
            cancellation.finished(i)
        if self.sampler is not None:
            if client.pid != pid:  # a stuck worker was stopped and started again (EngineClient's watchdog)
                self.sampler.remove_pid(pid)
                if client.pid is not None:
                    self.sampler.add_pid(client.pid)
            self.sampler.sample_now()
        yield from self._close_run(i, running)

    def _close_run(self, i: int, running: list[int], cancelled_before_start: bool = False) -> Iterator[RunUpdate]:
        """Complete the run's record (right or wrong, energy) and its row in the log, then say so.

        The row is completed as soon as this run ends, energy included (its window is sampled by
        now), not after the other panes: a crash of the app later loses nothing that finished.
        """
        recorder = self._recorders[i]
        if cancelled_before_start:
            recorder.cancel_unstarted()
        else:
            recorder.mark(self._known_answer)
            self._attach_energy(i, running)
        self._writer.end(i, self._run_series(i))
        yield recorder.closing_update()

    def pids_sharing_with(self, i: int, running) -> list[int]:
        """The other workers whose CPU time pane i's energy is shared with: those running beside it
        in live mode, none in fair mode."""
        if self.mode != "live":
            return []
        return [self.panes[j].client.pid for j in running if j != i and self.panes[j].client is not None]

    def _attach_energy(self, i: int, running: list[int]) -> None:
        """Energy over the run's window, split into thinking and answer; shared by CPU time in live mode."""
        client = self.panes[i].client
        recorder, r = self._recorders[i], self._recorders[i].result
        if self.sampler is None or client is None or r.total_s is None:
            return
        samples = self.sampler.samples
        t0, t1 = recorder.t_submit, recorder.t_submit + r.total_s
        if samples:  # the sample that closed the run's window
            r.on_mains, r.battery_percent = samples[-1].on_mains, samples[-1].battery_percent
        others = self.pids_sharing_with(i, running)
        boundary = None
        if r.n_thinking_tokens:  # a thought that never closed is thinking to the end
            boundary = t0 + r.ttfat_s if r.ttfat_s is not None else t1
        phases = split_phases(samples, t0, boundary, t1, r.n_thinking_tokens, r.n_answer_tokens, client.pid, others)
        if phases is not None:
            for key, value in phases.flat().items():
                setattr(r, key, value)
            if self.sampler.failures:  # a source that stopped is missing from here on: say so with the figure
                r.energy_approximate = True
                r.energy_detail["notes"] = [*r.energy_detail.get("notes", []), *self.lost_sources()]
        last = next((s.procs[client.pid] for s in reversed(samples) if client.pid in s.procs), None)
        r.peak_rss_bytes = last.peak_rss if last else None

    def lost_sources(self) -> list[str]:
        """Each power source that stopped answering this session, and that energy leaves it out since."""
        failures = self.sampler.failures if self.sampler is not None else []
        return [f"{reason} — energy leaves it out from then on" for _name, reason in failures]

    def _run_together(self, indices: list[int], cancellation: Cancellation) -> Iterator[RunUpdate]:
        updates: queue.Queue = queue.Queue()
        done = object()

        def pump(i: int) -> None:
            try:
                for update in self._run_one(i, indices, cancellation):
                    updates.put(update)  # immutable: the consumer reads it while this thread goes on
            finally:
                updates.put(done)

        threads = [threading.Thread(target=pump, args=(i,), daemon=True) for i in indices]
        for thread in threads:
            thread.start()
        remaining = len(threads)
        while remaining:
            item = updates.get()
            if item is done:
                remaining -= 1
            else:
                yield item
        for thread in threads:
            thread.join()

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
            if update.closing:
                results[update.pane] = update.result
        return [results[i] for i in sorted(results)]

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

    def flush_log(self, wait_s: float) -> bool:
        """Wait up to wait_s for the rows the file refused for now; True when every row is in it.
        Otherwise they are in memory now (self.log is a MemoryLog), to be saved."""
        return self._writer.flush(wait_s)

    def _run_series(self, i: int) -> list[TelemetrySample]:
        """The run's window of telemetry, as stored series: the worker's CPU and memory, the power."""
        recorder, r = self._recorders[i], self._recorders[i].result
        client = self.panes[i].client
        if self.sampler is None or r.total_s is None or client is None:
            return []
        t0, t1 = recorder.t_submit, recorder.t_submit + r.total_s
        samples = [s for s in self.sampler.samples if t0 <= s.t <= t1]
        rows = []
        for sample in samples:
            t = sample.t - t0
            rows.append(TelemetrySample(t, "system_cpu_percent", sample.cpu_percent, "%"))
            proc = sample.procs.get(client.pid)
            if proc is not None:
                rows.append(TelemetrySample(t, "worker_cpu_percent", proc.cpu_percent, "% of a core"))
                rows.append(TelemetrySample(t, "worker_rss_bytes", float(proc.rss), "B"))
        ts, watts, label = power_series(samples)
        rows += [TelemetrySample(t - t0, "power_w", w, "W", label) for t, w in zip(ts, watts)]
        return rows

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
