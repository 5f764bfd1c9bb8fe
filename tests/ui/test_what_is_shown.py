"""What a person sees is what happened: each pane, read off its widgets, against the stored run.

Real models in a real window (offscreen): fair and live, two and three panes, five runs in a row in
one window, cancel by Esc and by a pane's own button, and a run reopened from the history.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.catalog import DEFAULT_MODELS
from tests.ui.conftest import RUN_TIMEOUT_MS
from tests.ui.shown import assert_window_shows_the_log, expected, latest_prompt_records, shown, status_text
import pytest

pytestmark = pytest.mark.model  # runs the command or the app on a model (not in `make check`)

PROMPTS = [
    ("Tom has 3 boxes with 12 apples each. He gives away 7 apples. How many apples are left?", "29", "live"),
    ("What is the capital of France?", "Paris", "fair"),
    ("Name three colours.", "", "live"),
    ("What is 6 times 7?", "42", "fair"),
    ("Say hello in French.", "", "live"),
]


def _run(qtbot, window, only=None):
    with qtbot.waitSignal(window.run_done, timeout=RUN_TIMEOUT_MS):
        assert window.run_all(only)
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=5000)


def _set_mode(window, mode: str) -> None:
    window.mode.setCurrentIndex(window.mode.findData(mode))


def test_five_runs_in_a_row_fair_and_live_each_pane_shows_exactly_its_stored_run(qtbot, window, ui_log):
    for prompt, known, mode in PROMPTS:
        _set_mode(window, mode)
        window.prompt.setPlainText(prompt)
        window.known_answer.setText(known)
        _run(qtbot, window)
        records = assert_window_shows_the_log(window, ui_log)
        assert {r["run"]["mode"] for r in records.values()} == {mode}
        for pane, record in records.items():
            status = status_text(window.panes[pane])
            if record["run"]["correct"] is not None:  # a mark only where a known answer was given
                assert ("✓ right" in status) == record["run"]["correct"] and ("✗ wrong" in status) != record["run"]["correct"]
            else:
                assert "right" not in status and "wrong" not in status
            if record["run"]["no_answer"]:
                assert "No answer: " + record["run"]["no_answer"] in status
    assert len(ui_log.list_runs()) == 10
    assert window.tradeoff.points == 10


def test_three_panes_fair_then_live(qtbot, make_window, ui_settings, ui_log):
    ui_settings.pane_models = [DEFAULT_MODELS[0]] * 3
    window = make_window(ui_settings)
    assert len(window.panes) == 3
    window.prompt.setPlainText("What is 2 + 2?")
    window.known_answer.setText("4")
    for mode in ("fair", "live"):
        _set_mode(window, mode)
        _run(qtbot, window)
        records = assert_window_shows_the_log(window, ui_log)
        assert sorted(records) == [0, 1, 2]
    assert "the fastest" in window.verdict.text() or "the time" in window.verdict.text()


def test_in_fair_mode_the_waiting_pane_shows_waiting_and_none_of_the_running_panes_figures(
    qtbot, make_window, ui_settings, ui_log
):
    ui_settings.max_tokens = 200
    window = make_window(ui_settings)
    _set_mode(window, "fair")
    window.prompt.setPlainText("Write a short story about a fox.")
    seen_waiting = []

    def check():
        first, second = window.panes
        if first.answer_text.strip() and not window.live[1].started:
            seen_waiting.append(shown(second))
        return bool(seen_waiting)

    with qtbot.waitSignal(window.run_done, timeout=RUN_TIMEOUT_MS):
        assert window.run_all()
        qtbot.waitUntil(check, timeout=60_000)
        qtbot.wait(250)  # two more repaints of the stats: still nothing of pane 1's own
        seen_waiting.append(shown(window.panes[1]))
    for waiting in seen_waiting:
        assert waiting["Elapsed"] == "waiting"
        assert all(waiting[name] == "—" for name in ("TTFT", "Tokens/s avg", "Watts", "Energy"))
        assert waiting["answer"] == "" and waiting["thought header"] == ""
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=5000)
    assert_window_shows_the_log(window, ui_log)


def test_esc_in_fair_mode_stops_both_panes_and_each_shows_what_was_stored(qtbot, make_window, ui_settings, ui_log):
    ui_settings.max_tokens = 2000
    window = make_window(ui_settings)
    _set_mode(window, "fair")
    window.prompt.setPlainText("Write a long story about a lighthouse keeper.")
    with qtbot.waitSignal(window.run_done, timeout=RUN_TIMEOUT_MS):
        assert window.run_all()
        qtbot.waitUntil(lambda: window.panes[0].answer_text.strip() != "", timeout=60_000)
        qtbot.keyClick(window.prompt, Qt.Key_Escape)
    records = assert_window_shows_the_log(window, ui_log)
    assert [records[p]["run"]["status"] for p in (0, 1)] == ["cancelled", "cancelled"]
    assert records[1]["run"]["n_generated"] == 0  # the waiting pane never started
    assert status_text(window.panes[1]) == "Cancelled before it started."
    # A busy machine (other programs on this shared one) adds its note, as the stored run says.
    busy = records[0]["run"].get("load_note") or ""
    assert status_text(window.panes[0]) == "Cancelled: what it wrote so far is kept, and logged as cancelled." + (
        f"\nBusy machine: {busy}." if busy else "")
    assert window.statusBar().currentMessage() == "Ended: Fast cancelled; Thinking cancelled before it started"
    assert window.verdict.text() == "Fast was cancelled; Thinking was cancelled before it started"


def test_a_panes_own_cancel_button_in_live_mode_stops_that_pane_only(qtbot, make_window, ui_settings, ui_log):
    ui_settings.max_tokens = 2000
    window = make_window(ui_settings)
    _set_mode(window, "live")
    window.panes[0].max_tokens.setValue(40)
    window.prompt.setPlainText("Write a long story about a lighthouse keeper.")
    with qtbot.waitSignal(window.run_done, timeout=RUN_TIMEOUT_MS):
        assert window.run_all()
        qtbot.waitUntil(lambda: window.panes[1].thinking_text.strip() != "", timeout=60_000)
        assert window.panes[1].run_button.text() == "Cancel"
        window.panes[1].run_button.click()
    records = assert_window_shows_the_log(window, ui_log)
    assert records[0]["run"]["status"] == "ok" and records[0]["run"]["n_generated"] == 40
    assert records[1]["run"]["status"] == "cancelled" and records[1]["run"]["n_generated"] < 2000


def test_reopening_a_run_from_the_history_shows_it_and_nothing_of_what_came_after(qtbot, window, ui_log):
    window.known_answer.setText("4")
    window.prompt.setPlainText("What is 2 + 2?")
    _run(qtbot, window)
    first = latest_prompt_records(ui_log)
    window.known_answer.setText("")
    _set_mode(window, "live")
    window.prompt.setPlainText("Name a large animal.")
    _run(qtbot, window)
    window.tabs.setCurrentWidget(window.history)
    rows = window.history.table.rowCount()
    window.history.table.selectRow(rows - 1)  # the oldest run: the first prompt
    assert window.history.reopen_selected()
    for pane, record in first.items():
        assert shown(window.panes[pane]) == expected(record)
        status = status_text(window.panes[pane])
        assert status.startswith(f"From the history: smollm2-135m, {record['run']['status']}, fair mode, ")
        mark = "✓ right: the known answer is 4" if record["run"]["correct"] else "✗ wrong: the known answer is 4"
        assert status.endswith(mark)
    assert window.known_answer.text() == "4"
    assert window.prompt.toPlainText() == "What is 2 + 2?"
    # The next run owns every label again: no history line, no marks, no verdict of the reopened prompt.
    _set_mode(window, "fair")
    _run(qtbot, window, only=[0])
    assert "From the history" not in status_text(window.panes[0])
    assert window.verdict.isHidden()



def test_a_served_runs_budget_it_could_not_hold_is_said_in_its_pane(qtbot):
    from app.record import RunResult
    from app.ui.pane import PaneView
    from app.ui.window import DEFAULT_PLANS

    note = "the server cannot hold a thinking budget (16 tokens): max tokens (24) caps only the whole reply"
    run = RunResult(pane=0, text="Blue.").updated(model="qwen3", engine="remote", backend="remote", total_s=1.0,
                                                   finish_reason="stop", thought_note=note)
    view = PaneView(0, "Served", DEFAULT_PLANS[0])
    qtbot.addWidget(view)
    view.show_result(run, "fair")
    assert f"Thinking budget not held: {note}." in status_text(view)
