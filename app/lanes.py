"""An eval's or a sweep's requests, N at a time: jobs spread over lanes, one pane each.

A job asks one or more requests in turn (a self-consistency vote, a cascade) and returns what it
made of them. Each lane is a pane of the session holding the same served model, with its own
worker and connection; a lane takes the next job as soon as it is free, so a server that batches
concurrent requests (vLLM, SGLang, llama-server's slots) is kept busy. One lane runs the jobs in
the caller's thread, one after another, exactly as a plain sequential loop would.

Results come back in the jobs' order; `on_done` hears each as it finishes (in finishing order, one
at a time), so a file written there keeps every finished job whatever happens next. A job that
raises stops the lanes from taking new jobs; the jobs in flight finish, then the error is raised.
Ctrl-C cancels the runs in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from app.engines.types import GenerationRequest, ModelSpec
from app.runs import RunResult
from app.session import Session

T = TypeVar("T")
WAIT_S = 0.2  # how often the waiting caller wakes (so Ctrl-C is taken at once)


class Ask:
    """A lane's pane: ask(request, decision) runs one request to its end; ask.samples(request, …) a
    request of n_samples, every sample's record (llama.cpp decodes them together)."""

    def __init__(self, session: Session, pane: int, guard: Callable[[], None] | None = None) -> None:
        self.session, self.pane, self.guard = session, pane, guard

    def __call__(self, request: GenerationRequest, decision: Any = None, known_answer: str | None = None) -> RunResult:
        return self.samples(request, decision, known_answer)[0]

    def samples(self, request: GenerationRequest, decision: Any = None,
                known_answer: str | None = None) -> list[RunResult]:
        if self.guard is not None:
            self.guard()
        return self.session.ask_samples(self.pane, request, decision, known_answer)


Job = Callable[[Ask], T]


def run_lanes(
    session: Session, jobs: Sequence[Job[T]], on_done: Callable[[T], None] | None = None,
    lanes: int | None = None,
) -> list[T]:
    """Every job, each on the first free lane; `lanes`: how many of the session's panes (default all)."""
    n = min(lanes or len(session.panes), len(session.panes), max(1, len(jobs)))
    if n <= 1:
        ask = Ask(session, 0)
        results = []
        for job in jobs:
            results.append(job(ask))
            if on_done is not None:
                on_done(results[-1])
        return results
    return _Lanes(session, jobs, on_done).run(n)


class _Lanes:
    def __init__(self, session: Session, jobs: Sequence[Job[Any]], on_done) -> None:
        self.session, self.jobs, self.on_done = session, jobs, on_done
        self.results: list[Any] = [None] * len(jobs)
        self.lock = threading.Lock()
        self.next = 0
        self.error: BaseException | None = None
        self.interrupted = False  # Ctrl-C: a job in flight asks nothing more

    def run(self, n: int) -> list[Any]:
        threads = [threading.Thread(target=self._lane, args=(i,), name=f"fastslow-lane-{i}", daemon=True)
                   for i in range(n)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(WAIT_S)
        except KeyboardInterrupt:  # stop taking jobs, cancel what runs, and leave once the lanes have
            with self.lock:
                self.next, self.interrupted = len(self.jobs), True
            self.session.cancel()
            for thread in threads:
                thread.join()
            raise
        if self.error is not None:
            raise self.error
        return self.results

    def _take(self) -> int | None:
        with self.lock:
            if self.error is not None or self.next >= len(self.jobs):
                return None
            self.next += 1
            return self.next - 1

    def _lane(self, pane: int) -> None:
        def guard() -> None:
            if self.interrupted:
                raise _Interrupted()

        ask = Ask(self.session, pane, guard)
        while (index := self._take()) is not None:
            try:
                result = self.jobs[index](ask)
            except _Interrupted:
                return
            except BaseException as exc:  # noqa: BLE001 — handed to the caller's thread, raised there
                with self.lock:
                    self.error = self.error or exc
                return
            with self.lock:
                self.results[index] = result
                if self.on_done is not None:
                    try:
                        self.on_done(result)
                    except BaseException as exc:  # noqa: BLE001 — e.g. the results file failed: stop
                        self.error = self.error or exc
                        return


class _Interrupted(Exception):
    """Raised in a lane whose job would ask again after Ctrl-C."""


def lanes_refused(spec: ModelSpec, parallel: int) -> str | None:
    """Why `parallel` requests at once cannot go to this model, in one sentence; None when they can."""
    if parallel > 1 and spec.engine != "remote":
        return (f"{parallel} requests at once go to a served model only (remote:<url>#<model>): {spec.label} "
                "runs on this machine, where copies of it would split its cores and memory and each run "
                "slower; run it with --parallel 1")
    return None
