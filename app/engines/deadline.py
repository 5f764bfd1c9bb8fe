"""A time limit, and the cancel flag, for work in the worker that never polls: rendering a chat
template. A template with nested loops must not hang a pane for good, nor outlast a cancel.

On POSIX, in the worker's main thread, a 0.1 s interval timer checks the cancel flag and the
deadline and raises Interrupted inside the rendering. Elsewhere (Windows, other threads) nothing is
armed here, and the client's watchdog (app/engines/client.py) ends a cancelled run that does not
stop by killing and restarting its worker.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

RENDER_LIMIT_S = 5.0  # a real chat template renders in milliseconds
_TICK_S = 0.1


class Interrupted(Exception):
    """The guarded work was cancelled (`cancelled` True) or ran out of time."""

    def __init__(self, message: str, cancelled: bool) -> None:
        super().__init__(message)
        self.cancelled = cancelled


def _armable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def interruptible(cancel_flag, limit_s: float, what: str) -> Iterator[None]:
    """Run the block, raising Interrupted within _TICK_S of a cancel or of `limit_s` passing."""
    if not _armable():
        yield
        return
    deadline = time.monotonic() + limit_s

    def tick(_signum, _frame) -> None:
        if cancel_flag.value:
            raise Interrupted(f"{what} was cancelled", cancelled=True)
        if time.monotonic() > deadline:
            raise Interrupted(f"{what} took longer than {limit_s:g} s", cancelled=False)

    previous = signal.signal(signal.SIGALRM, tick)
    signal.setitimer(signal.ITIMER_REAL, _TICK_S, _TICK_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
