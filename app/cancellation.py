"""Which panes of one comparison are cancelled: Esc stops every pane, a pane's own button only its own.

A pane that has not started yet (fair mode runs them in turn) must never start once cancelled, and a
pane that is starting must still see a cancel that comes a moment later. Starting and cancelling
take one lock, so each happens wholly before or wholly after the other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


class Cancellation:
    """One comparison's cancel state, shared by the thread that runs it and the one that cancels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._all = False
        self._panes: set[int] = set()
        self._stops: dict[int, Callable[[], None]] = {}  # the panes running now: how to stop each

    def cancel(self, panes: Iterable[int] | None = None) -> None:
        """Cancel these panes (None: every pane, those not started included); running ones stop now."""
        with self._lock:
            if panes is None:
                self._all = True
                targets = list(self._stops)
            else:
                targets = list(panes)
                self._panes.update(targets)
            for pane in targets:
                if pane in self._stops:
                    self._stops[pane]()  # flips a flag the engine polls: cheap, safe under the lock

    def cancelled(self, pane: int) -> bool:
        with self._lock:
            return self._all or pane in self._panes

    def start(self, pane: int, begin: Callable[[], T], stop: Callable[[], None]) -> T | None:
        """begin() (which arms the engine and sends the request) unless the pane is cancelled: then None."""
        with self._lock:
            if self._all or pane in self._panes:
                return None
            started = begin()
            self._stops[pane] = stop
            return started

    def finished(self, pane: int) -> None:
        with self._lock:
            self._stops.pop(pane, None)
