"""The History tab lists what a person needs to tell runs apart: the model, fair or live, direct or
thinking (scaffolded where the model cannot think), the router's route, how the run ended and
whether it was right; not the number of the pane it sat in. No models are loaded: the runs are
written to a fresh log as the app writes them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.engines.types import GenerationRequest
from app.runs import RunResult
from app.store import SessionLog
from app.ui.history import COLUMNS, HistoryView

NO_ANSWER = "max tokens (24) ran out before the answer: raise max tokens"


@pytest.fixture
def log(tmp_path):
    """One live comparison with a known answer: a direct run (wrong) and a scaffolded thinking run the
    router sent to think, which ran out of tokens before it answered."""
    log = SessionLog.open(tmp_path / "history.db")
    request = GenerationRequest.from_prompt("A train leaves at 3:40 pm and takes 2 h 35 min. When?", max_tokens=24)
    prompt_id = log.add_prompt(log.start_session(mode="live"), request, known_answer="6:15 pm")
    fast = RunResult.of(pane=0, model="smollm2-135m", mode="live", status="ok", finish_reason="stop", text="360",
                     n_generated=3, correct=False)
    slow = RunResult.of(pane=1, model="smollm2-135m", mode="live", status="ok", finish_reason="length",
                     strategy="scaffold", thinking="3:40 plus…", n_generated=24, n_thinking_tokens=24,
                     correct=False, no_answer=NO_ANSWER)
    think = SimpleNamespace(route="think", budget=256, confidence=0.8, reasons=("arithmetic",))
    for result, decision in ((fast, None), (slow, think)):
        run_id = log.start_run(prompt_id, pane=result.pane, request=request, mode="live", decision=decision)
        log.finish_run(run_id, result)
    yield log
    log.close()


@pytest.fixture
def history(qtbot, log):
    view = HistoryView(log)
    qtbot.addWidget(view)
    view.refresh()
    return view


def row(view: HistoryView, i: int) -> dict[str, str]:
    return {COLUMNS[c]: view.table.item(i, c).text() for c in range(view.table.columnCount())}


def test_the_columns_name_mode_kind_route_finish_and_answer_not_the_pane(history):
    headers = [history.table.horizontalHeaderItem(c).text() for c in range(history.table.columnCount())]
    assert headers == list(COLUMNS)
    for name in ("Mode", "Kind", "Route", "Finish", "Answer"):
        assert name in headers
    assert "Pane" not in headers


def test_a_scaffolded_run_the_router_sent_to_think(history):
    newest = row(history, 0)
    assert {k: newest[k] for k in ("Model", "Mode", "Kind", "Route", "Status", "Finish", "Answer")} == {
        "Model": "smollm2-135m", "Mode": "live", "Kind": "thinking (scaffolded)", "Route": "think (budget 256)",
        "Status": "ok", "Finish": "length", "Answer": "✗ no answer"}


def test_a_run_with_no_answer_says_why_on_hover(history):
    answer = history.table.item(0, COLUMNS.index("Answer"))
    assert answer.toolTip() == f"No answer: {NO_ANSWER}."


def test_a_direct_run_without_a_route_is_marked_wrong(history):
    oldest = row(history, 1)
    assert {k: oldest[k] for k in ("Mode", "Kind", "Route", "Finish", "Answer")} == {
        "Mode": "live", "Kind": "direct", "Route": "—", "Finish": "stop", "Answer": "✗ wrong"}
    assert history.table.item(1, COLUMNS.index("Answer")).toolTip() == ""
