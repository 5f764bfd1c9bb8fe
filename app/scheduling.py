"""How a comparison's panes share the machine: fair (one after another) or live (all at once).

Two small strategies instead of a mode string: each says how many threads a pane gets and runs the
panes' update streams in its own order, handing every update on as it comes.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, Sequence

from app.runs import RunUpdate

RunOne = Callable[[int], Iterator[RunUpdate]]


class Fair:
    """Panes one after another, each with every core: clean, comparable numbers."""

    name = "fair"
    shares_cpu = False  # a run's energy is its own: nothing ran beside it

    def threads(self, cores: int, n_running: int) -> int:
        return cores

    def run(self, panes: Sequence[int], run_one: RunOne) -> Iterator[RunUpdate]:
        for i in panes:
            yield from run_one(i)


class Live:
    """Panes at once, the cores split between them: watch them race (each slower than alone)."""

    name = "live"
    shares_cpu = True  # the window's energy is shared by CPU time with the runs beside it

    def threads(self, cores: int, n_running: int) -> int:
        return max(1, cores // max(1, n_running))

    def run(self, panes: Sequence[int], run_one: RunOne) -> Iterator[RunUpdate]:
        """One pump thread per pane; updates are immutable, so the reader takes them as they come
        while each pump goes on."""
        updates: queue.Queue = queue.Queue()
        done = object()

        def pump(i: int) -> None:
            try:
                for update in run_one(i):
                    updates.put(update)
            finally:
                updates.put(done)

        threads = [threading.Thread(target=pump, args=(i,), daemon=True) for i in panes]
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


SCHEDULES: dict[str, Fair | Live] = {"fair": Fair(), "live": Live()}
MODES = tuple(SCHEDULES)


def schedule(mode: str) -> Fair | Live:
    if mode not in SCHEDULES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return SCHEDULES[mode]
