"""Writes each comparison's runs into the session log, a row as a run starts and completed as it
ends, and never loses a finished one.

A write the file refuses for a while (locked by another program, the disk full) is not given up:
it waits, in order, and is tried again in the background until it goes in. What still cannot be
written when the comparison is flushed, or when the next one begins, goes to a log in memory
(MemoryLog), which the app offers to save and the CLI saves to a recovery file. A file that fails
for good (read-only, corrupt…) gives way to memory at once, as does memory's own failure to nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.engines.types import GenerationRequest, ModelInfo
from app.record import RunResult
from app.store import MemoryLog, SessionLog, StoreError, TelemetrySample

TRANSIENT = ("locked", "full")  # the file may take the write a little later
RETRY_S = 0.5


@dataclass
class LoggedRun:
    """One run's row: what it is written from, and its id in the log once it is there."""

    pane: int
    info: ModelInfo | None
    request: GenerationRequest
    decision: Any
    row: int | None = None
    result: RunResult | None = None  # the finished record, once the run has ended
    channels: list[str] = field(default_factory=list)  # each generated token's channel
    series: list[TelemetrySample] = field(default_factory=list)
    ended: bool = False  # its end was handed over (written or waiting)
    complete: bool = False  # its row is complete in the current log
    rating: int | None = None  # a person's mark on its answer (1 right, -1 wrong), once given


@dataclass
class LoggedPrompt:
    """One comparison: the prompt's row and its runs' rows."""

    request: GenerationRequest
    known_answer: str | None
    mode: str
    runs: dict[tuple[int, int], LoggedRun]  # by (pane, sample)
    row: int | None = None


class LogWriter:
    """The session log as comparisons write it; safe to call from the panes' threads."""

    def __init__(self, log: SessionLog | MemoryLog | None) -> None:
        self.log = log
        self.error: StoreError | None = None  # the latest failure, for the app and the CLI to say
        self.session_id: int | None = None
        self._lock = threading.RLock()
        self._waiting: deque[Callable[[], None]] = deque()  # writes the file refused for now, in order
        self._retrier: threading.Thread | None = None
        self._open: list[LoggedPrompt] = []  # comparisons begun whose rows are not all complete yet

    # -- what the session calls ------------------------------------------------------------------

    def begin(self, prompt: LoggedPrompt) -> LoggedPrompt:
        """A comparison starts: its prompt's row and a `running` row for each of its runs. Several may
        be open at once (an eval's lanes, each on panes of its own); end() names which one a run is of."""
        with self._lock:
            if self._waiting:  # an earlier comparison's rows are still not in the file: to memory with them
                self._to_memory()
            self._open = [p for p in self._open if not all(run.complete for run in p.runs.values())]
            self._open.append(prompt)
            self._write(lambda: self._start_rows(prompt, prompt.runs.values()))
            return prompt

    def end(self, prompt: LoggedPrompt, pane: int, result: RunResult, channels: list[str],
            series: list[TelemetrySample]) -> None:
        """A run of `prompt` has ended: complete its row with its finished record, channels and telemetry."""
        with self._lock:
            run = prompt.runs.get(pane)
            if run is None:
                return
            run.result, run.channels, run.series, run.ended = result, list(channels), series, True
            self._write(lambda: self._finish_row(run))

    def rate(self, prompt: LoggedPrompt, key, rating: int | None) -> bool:
        """A person's mark on a finished run of `prompt`; False when there is no such run."""
        with self._lock:
            run = prompt.runs.get(key)
            if run is None or not run.ended:
                return False
            run.rating = rating
            self._write(lambda: self._rate_row(run))
            return True

    def _rate_row(self, run: LoggedRun) -> None:
        if run.row is not None and run.complete:
            self.log.rate_run(run.row, run.rating)

    @property
    def waiting(self) -> int:
        """How many writes wait for the file."""
        with self._lock:
            return len(self._waiting)

    def flush(self, wait_s: float) -> bool:
        """Wait up to wait_s for the writes the file refused; True when every row is in the file.
        Those still refused after it go to memory (the caller then saves it)."""
        deadline = time.monotonic() + wait_s
        while self.waiting and time.monotonic() < deadline:
            time.sleep(min(RETRY_S, max(deadline - time.monotonic(), 0.0)))
        with self._lock:
            if self._waiting:
                self._to_memory()
                return False
            return not isinstance(self.log, MemoryLog) or self.error is None

    # -- writing -------------------------------------------------------------------------------

    def _write(self, write: Callable[[], None]) -> None:
        if self.log is None:
            return
        if self._waiting:  # behind the writes that wait: rows go in in the order they were made
            self._waiting.append(write)
            return
        try:
            write()
        except StoreError as exc:
            self._failed(exc, write)

    def _failed(self, exc: StoreError, write: Callable[[], None]) -> None:
        self.error = exc
        if exc.kind in TRANSIENT and not isinstance(self.log, MemoryLog):
            self._waiting.append(write)
            self._start_retrier()
        elif isinstance(self.log, MemoryLog):  # even memory failed: stop logging, keep comparing
            self.log = None
        else:
            self._to_memory()

    def _start_retrier(self) -> None:
        if self._retrier is None or not self._retrier.is_alive():
            self._retrier = threading.Thread(target=self._retry, name="fastslow-log-retry", daemon=True)
            self._retrier.start()

    def _retry(self) -> None:
        while True:
            time.sleep(RETRY_S)
            with self._lock:
                if not self._waiting:
                    return
                try:
                    self._waiting[0]()
                except StoreError as exc:
                    if exc.kind not in TRANSIENT:
                        self._failed(exc, self._waiting.popleft())
                        return
                    continue
                self._waiting.popleft()

    def _to_memory(self) -> None:
        """Go on in memory, with the rows of the open comparisons the file does not have complete.
        MemoryLog.save_to() (File → Save runs kept in memory, or the CLI's recovery file) writes
        them to a file that works again."""
        self._waiting.clear()
        self.log, self.session_id = MemoryLog(), None
        # A run complete in the file stays so (memory gets the rest); a comparison all in the file is done.
        self._open = [p for p in self._open if not all(run.complete for run in p.runs.values())]
        for prompt in self._open:
            missing = [run for run in prompt.runs.values() if not run.complete]
            prompt.row = None
            for run in missing:
                run.row = None
            try:
                self._start_rows(prompt, missing)
                for run in missing:
                    if run.ended:
                        self._finish_row(run)
            except StoreError as exc:
                self.error, self.log = exc, None
                return

    def _start_rows(self, prompt: LoggedPrompt, runs) -> None:
        if self.session_id is None:
            self.session_id = self.log.start_session(mode=prompt.mode)
        if prompt.row is None:
            prompt.row = self.log.add_prompt(self.session_id, prompt.request, known_answer=prompt.known_answer)
        for run in runs:
            if run.row is None:
                run.row = self.log.start_run(prompt.row, pane=run.pane, info=run.info, request=run.request,
                                             mode=prompt.mode, decision=run.decision)

    def _finish_row(self, run: LoggedRun) -> None:
        if run.row is None or run.complete:
            return
        self.log.finish_run(run.row, run.result, run.channels)
        if run.series:
            self.log.add_telemetry(self.session_id, run.series, run_id=run.row)
        run.complete = True
        if run.rating is not None:  # marked while its row waited, or moved to memory
            self.log.rate_run(run.row, run.rating)
