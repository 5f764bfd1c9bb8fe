"""The controller is the views' one door to the session, and what it hands them are snapshots.

No model here: the controller runs over a stand-in session with the members the window relies on,
so these tests take a second. The real window on real models is tests/ui/test_window.py's.
"""

from __future__ import annotations

import ast
import dataclasses
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.engines.types import EngineError, GenerationRequest, ModelSpec
from app.runs import RunUpdate
from app.store import MemoryLog
from app.ui.controller import SessionController
from app.ui.snapshots import FinishedRun, LogState, PaneActivity, PaneLoad, PaneSnapshot

ASK = GenerationRequest.from_prompt("hi")  # what the stand-in session is asked; it answers anything

UI = Path(__file__).resolve().parents[2] / "app" / "ui"


# -- the door: no view reads the session ---------------------------------------------------------


def _session_reads(path: Path) -> list[str]:
    """Each place in a module that reads an attribute called session or _session, or imports app.session."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("session", "_session"):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "app.session":
            found.append(f"{path.name}:{node.lineno} from app.session import …")
    return found


def test_no_view_reads_the_session_only_the_controller_does():
    views = [p for p in sorted(UI.glob("*.py")) if p.name != "controller.py"]
    assert any(p.name == "window.py" for p in views)
    assert [read for view in views for read in _session_reads(view)] == []
    assert _session_reads(UI / "controller.py"), "the check finds reads where there are some"


def test_snapshots_are_immutable():
    pane = PaneSnapshot(0, "m", PaneLoad.LOADED, PaneActivity.IDLE)
    state = LogState(MemoryLog(), None, None, 0)
    finished = FinishedRun(0, "Fast", SimpleNamespace(), "Fast · direct", None)
    for snapshot, field in ((pane, "activity"), (state, "waiting"), (finished, "correct")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(snapshot, field, None)
    assert state.in_memory and PaneActivity.CANCELLING.running and not PaneActivity.BLOCKED.running


# -- a stand-in session: the members the controller uses, no worker processes ---------------------


def _pane(label: str = "", pid: int | None = None, style: str = "none"):
    client = SimpleNamespace(pid=pid) if pid is not None else None
    info = SimpleNamespace(name=label) if pid is not None else None
    return SimpleNamespace(label=label, client=client, info=info, fit=None, thinking_style=style, load_error=None)


class StandIn:
    def __init__(self, n: int) -> None:
        self.panes = [_pane() for _ in range(n)]
        self.mode, self.cores, self.tdp_w, self.sample_hz = "fair", 4, None, 10.0
        self.sampler = self.power = None
        self.log, self.log_error, self.log_session_id, self.log_waiting = MemoryLog(), None, None, 0
        self.release = threading.Event()  # a run's panes end when this is set, or when cancelled

    def load_pane(self, index, spec, force=False):
        if spec.path == "bad":
            self.panes[index] = SimpleNamespace(**{**vars(_pane(spec.label)), "thinking_style": "think"})
            raise EngineError("not a GGUF file", kind="bad_model")
        pane = self.panes[index] = _pane(spec.label, pid=1000 + index, style="think")
        return pane

    def stream(self, requests, decisions, only, cancellation, known_answer):
        chosen = list(range(len(self.panes)) if only is None else only)
        for i in chosen:
            yield RunUpdate(i, 0.0)  # it started
        ended = set()
        deadline = time.monotonic() + 10
        while len(ended) < len(chosen) and time.monotonic() < deadline:
            for i in chosen:
                if i not in ended and (self.release.is_set() or cancellation.cancelled(i)):
                    ended.add(i)
                    yield RunUpdate(i, 0.0, result=SimpleNamespace(pane=i, cancelled=cancellation.cancelled(i)))
            time.sleep(0.01)

    def pids_sharing_with(self, i, running, same_server=False):
        return []

    def lost_sources(self):
        return []

    def cancel(self, panes=None):
        pass

    def close(self):
        pass


@pytest.fixture
def controller(qtbot):
    controller = SessionController(StandIn(2))
    seen: list[PaneSnapshot] = []
    controller.pane_changed.connect(seen.append)
    controller.seen = seen
    yield controller
    controller._session.release.set()
    controller.shutdown()


def test_loading_sends_each_pane_loading_then_loaded_or_failed_with_why(qtbot, controller):
    with qtbot.waitSignal(controller.loads_done, timeout=5000):
        assert controller.load_models({0: ModelSpec(path="good", name="good"), 1: ModelSpec(path="bad", name="broken")})
    loads = [(s.index, s.load, s.label) for s in controller.seen if s.load is not PaneLoad.EMPTY]
    assert (0, PaneLoad.LOADING, "good") in loads and (0, PaneLoad.LOADED, "good") in loads
    assert loads.index((0, PaneLoad.LOADING, "good")) < loads.index((0, PaneLoad.LOADED, "good"))
    good, bad = controller.panes()
    assert (good.load, good.pid, good.thinking_style, good.activity) == (PaneLoad.LOADED, 1000, "think", PaneActivity.IDLE)
    assert (bad.load, bad.label, bad.error, bad.pid) == (PaneLoad.FAILED, "broken", "not a GGUF file", None)
    assert bad.thinking_style == "think"  # what was learnt before it failed is kept
    assert PaneActivity.BLOCKED in {s.activity for s in controller.seen}  # while loading, no pane can run


def test_a_run_moves_each_pane_through_running_cancelling_and_back_to_idle(qtbot, controller):
    finished = []
    controller.run_finished.connect(finished.extend)
    assert controller.cancel() is False  # nothing runs yet
    assert controller.run([ASK, ASK], only=[1], mode="live")
    assert controller._session.mode == "live"
    assert [p.activity for p in controller.panes()] == [PaneActivity.BLOCKED, PaneActivity.RUNNING]
    assert controller.running == {1} and controller.run([ASK, ASK]) is False  # busy: refused
    assert controller.cancel([0]) is False  # pane 0 is not in this comparison
    assert controller.cancel([1])
    assert controller.pane(1).activity is PaneActivity.CANCELLING
    qtbot.waitUntil(lambda: not controller.busy, timeout=5000)
    assert [(r.pane, r.cancelled) for r in finished] == [(1, True)]
    assert controller.pane(1).pid is None  # nothing loaded in the stand-in: no worker to follow
    assert [p.activity for p in controller.panes()] == [PaneActivity.IDLE, PaneActivity.IDLE]
    after_end = [s.activity for s in controller.seen if s.index == 1]
    assert after_end[-3:] == [PaneActivity.CANCELLING, PaneActivity.BLOCKED, PaneActivity.IDLE]


def test_a_worker_started_again_under_a_new_pid_is_followed_once_the_run_ends(qtbot, controller):
    with qtbot.waitSignal(controller.loads_done, timeout=5000):
        controller.load_models({0: ModelSpec(path="good", name="good")})
    assert controller.pane(0).pid == 1000
    controller._session.panes[0].client.pid = 2000  # the watchdog restarted a stuck worker mid-run
    controller._session.release.set()
    assert controller.run([ASK, ASK], only=[0])
    qtbot.waitUntil(lambda: not controller.busy, timeout=5000)
    assert controller.pane(0).pid == 2000 and controller.pane(0).load is PaneLoad.LOADED


def test_the_log_state_says_where_runs_go_and_what_waits(controller):
    session = controller._session
    session.log_error, session.log_waiting, session.log_session_id = OSError("locked"), 3, 7
    state = controller.log_state()
    assert (state.in_memory, state.error, state.waiting, state.session_id) == (True, "locked", 3, 7)


def test_a_panes_button_runs_or_cancels_by_its_state_not_its_text(qtbot):
    from app.ui.pane import PaneView
    from app.ui.window import DEFAULT_PLANS

    view = PaneView(0, "Fast", DEFAULT_PLANS[0])
    qtbot.addWidget(view)
    clicked = []
    view.run_clicked.connect(lambda i: clicked.append("run"))
    view.cancel_clicked.connect(lambda i: clicked.append("cancel"))
    view.set_activity(PaneActivity.BLOCKED)
    assert not view.run_button.isEnabled() and not view.mode.isEnabled()
    view.set_activity(PaneActivity.RUNNING)
    assert view.run_button.text() == "Cancel" and view.run_button.isEnabled()
    view.run_button.setText("Run")  # what the button says does not decide what it does
    view.run_button.click()
    view.set_activity(PaneActivity.CANCELLING)
    view.run_button.click()
    view.set_activity(PaneActivity.IDLE)
    assert view.run_button.text() == "Run" and view.mode.isEnabled()
    view.run_button.click()
    assert clicked == ["cancel", "cancel", "run"]
