"""What the views are shown of the session: immutable snapshots the SessionController hands out.

A view never reads the session itself. It gets a PaneSnapshot whenever a pane's model or run state
changes, a LogState when it asks where runs go, and keeps each finished run as a FinishedRun. All
are frozen: a view can hold one as long as it likes and nothing changes it under its feet.

No Qt here: these are plain data, and the tests build them without a display.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from app.engines.types import ModelInfo
from app.hardware import FitEstimate
from app.live import LiveRun
from app.store import MemoryLog, SessionLog


class PaneLoad(Enum):
    """Where a pane's model stands."""

    EMPTY = "empty"  # nothing asked yet
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"  # error says why


class PaneActivity(Enum):
    """What a pane's Run/Cancel button does now, and whether its controls can be changed."""

    IDLE = "idle"  # Run, controls editable
    BLOCKED = "blocked"  # the session is busy elsewhere (loading, or the other panes still run): Run disabled
    RUNNING = "running"  # its run is on: the button cancels it
    CANCELLING = "cancelling"  # cancel was asked (its button or Esc); the run ends with what it has

    @property
    def running(self) -> bool:
        """Its run has not ended: its button says Cancel."""
        return self in (PaneActivity.RUNNING, PaneActivity.CANCELLING)


@dataclass(frozen=True)
class PaneSnapshot:
    index: int
    label: str  # the model's label ("" for a pane nothing was asked of)
    load: PaneLoad
    activity: PaneActivity
    info: ModelInfo | None = None
    fit: FitEstimate | None = None
    thinking_style: str = "none"
    pid: int | None = None  # its worker process, while loaded
    error: str | None = None  # why it failed to load


@dataclass(frozen=True)
class LogState:
    """Where runs go now, and what is wrong with that place."""

    log: SessionLog | MemoryLog | None  # the file, or memory once the file failed
    session_id: int | None  # this app's session in the log, once a run was written
    error: str | None  # the log's latest failure
    waiting: int  # writes the file refused for now (locked, full), to go in when it frees

    @property
    def in_memory(self) -> bool:
        return isinstance(self.log, MemoryLog)


@dataclass(frozen=True)
class FinishedRun:
    """One run that has ended this session, as the charts and the trade-off plot show it."""

    pane: int
    label: str  # the pane's name ("Fast", "Thinking", …)
    run: LiveRun  # done: its result is the record the log has
    kind: str  # "Fast · direct" and the like, the trade-off's legend
    correct: bool | None
