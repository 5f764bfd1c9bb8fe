"""The main window, driven as a user would: type, run, cancel, switch modes, reopen, export."""

from __future__ import annotations

import json
import time

import psutil
from PySide6.QtCore import Qt

from app.store import SessionLog
from tests.ui.conftest import LOAD_TIMEOUT_MS, RUN_TIMEOUT_MS
import pytest

pytestmark = pytest.mark.model  # runs the command or the app on a model (not in `make check`)

MATH = "Tom has 3 boxes with 12 apples each. He gives away 7 apples. How many apples are left?"


def _run(qtbot, window, key=True):
    with qtbot.waitSignal(window.run_done, timeout=RUN_TIMEOUT_MS):
        if key:
            qtbot.keyClick(window.prompt, Qt.Key_Return, Qt.ControlModifier)
        else:
            assert window.run_all()
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=5000)


def test_typing_a_prompt_and_ctrl_enter_runs_both_panes_live_stats_and_a_stored_run(qtbot, window, ui_log):
    for pane, loaded in zip(window.panes, window.controller.panes()):  # where each model runs, and why
        assert f" · {loaded.info.placement} · " in pane.status.text()
        assert pane.status.toolTip() == loaded.info.offload_note != ""
    qtbot.keyClicks(window.prompt, "What is the capital of France?")
    _run(qtbot, window)
    fast, thinking = window.panes
    assert fast.answer_text.strip(), "the fast pane shows its answer"
    assert thinking.answer_text.strip() or thinking.thinking_text.strip()
    for pane, result in zip(window.panes, window.last_results):
        assert pane.stats["TTFT"].text().endswith(" s")
        assert pane.stats["Tokens/s avg"].text() != "—"
        assert pane.stats["Energy"].text().endswith(("estimated</i>", "measured</i>"))
        about = pane.stats["Energy"].toolTip()  # where the figure comes from; an estimate, its TDP and formula
        assert "P = TDP × CPU utilisation" in about and " W TDP " in about if "estimated" in about else "measured" in about
        assert pane.stats["Numbers"].text() == f"fair mode · {result.placement}"  # where it ran, as stored
        assert result.placement.startswith("CPU · ")  # this machine has no GPU
    # The thinking pane (a model that cannot think natively) was scaffolded; its thought is shown folded.
    assert window.last_results[1].strategy == "scaffold"
    assert thinking.thinking_toggle.text().startswith("Thought for ")
    runs = ui_log.list_runs()
    assert [r.status for r in runs] == ["ok", "ok"]
    assert {r.prompt for r in runs} == {"What is the capital of France?"}
    assert window.tradeoff.points == 2
    qtbot.waitUntil(lambda: len(window.charts._tps_curves) == 2, timeout=3000)  # drawn a chart per turn
    assert fast.run_button.isEnabled() and window.run_all_button.isEnabled()


def test_escape_cancels_the_run_and_keeps_what_was_written(qtbot, make_window, ui_settings, ui_log):
    ui_settings.max_tokens = 2000
    window = make_window(ui_settings)
    window.prompt.setPlainText("Write a long story about a lighthouse keeper.")
    with qtbot.waitSignal(window.run_done, timeout=RUN_TIMEOUT_MS):
        assert window.run_all()
        qtbot.waitUntil(lambda: window.panes[0].answer_text.strip() != "", timeout=60_000)
        assert window.cancel_button.isEnabled()
        qtbot.keyClick(window.prompt, Qt.Key_Escape)
    statuses = [r.status for r in window.last_results]
    assert statuses[0] == "cancelled"
    assert "Cancelled" in window.panes[0].status.text()
    assert ui_log.list_runs()[-1].status == "cancelled"  # pane 0's row, the oldest of the two


def test_auto_mode_shows_the_router_decision_before_the_run_and_can_be_overridden(qtbot, window, ui_log):
    pane = window.panes[1]
    pane.mode.setCurrentIndex(pane.mode.findData("auto"))
    window.prompt.setPlainText(MATH)
    qtbot.waitUntil(lambda: "Thinking" in pane.route_label.text(), timeout=3000)
    assert "confidence" in pane.route_label.text() and pane.router_row.isVisible()
    pane.override.setCurrentIndex(pane.override.findData("direct"))
    qtbot.waitUntil(lambda: "overridden: Direct" in pane.route_label.text(), timeout=3000)
    _run(qtbot, window, key=False)
    record = ui_log.run_record(ui_log.list_runs()[0].id)  # newest first: pane 1
    assert record["run"]["pane"] == 1
    assert record["run"]["route"] == "think"  # the router's decision is stored with its reasons…
    assert record["run"]["route_reasons"]
    assert record["run"]["params"]["thinking"] is False  # …and the override is what ran
    assert window.last_results[1].strategy == "native"


def test_live_mode_runs_the_panes_at_once_and_says_so(qtbot, window):
    window.mode.setCurrentIndex(window.mode.findData("live"))
    window.prompt.setPlainText("Name three colours.")
    _run(qtbot, window, key=False)
    a, b = window.live[0], window.live[1]
    assert {r.result.mode for r in (a, b)} == {"live"}
    first_end = a.t_submit + a.result.total_s
    assert b.t_submit < first_end  # they overlapped
    assert window.panes[0].stats["Numbers"].text() == f"live mode · {a.result.placement}"
    assert "shared by CPU time" in window.last_results[0].energy_source


def test_one_pane_can_run_alone(qtbot, window, ui_log):
    window.prompt.setPlainText("Say hello.")
    with qtbot.waitSignal(window.run_done, timeout=RUN_TIMEOUT_MS):
        window.panes[0].run_button.click()
    assert list(window.live) == [0] and [r.pane for r in window.last_results] == [0]
    assert [r.pane for r in ui_log.list_runs()] == [0]


def test_an_empty_prompt_is_refused_with_a_message(qtbot, window, ui_log):
    assert window.run_all() is False
    assert window.notice.isVisible() and "empty" in window.notice.text()
    assert ui_log.list_runs() == []


def test_a_minimum_thought_longer_than_the_budget_is_refused_with_a_message(qtbot, window, ui_log):
    pane = window.panes[1]
    pane.mode.setCurrentIndex(pane.mode.findData("thinking"))
    pane.max_tokens.setValue(512)
    pane.budget.setValue(64)
    pane.min_thinking.setValue(128)
    window.prompt.setPlainText(MATH)
    assert window.run_all() is False
    assert "longer than the budget" in window.notice.text() and ui_log.list_runs() == []
    pane.min_thinking.setValue(32)
    assert pane.plan().thinking_min == 32
    pane.mode.setCurrentIndex(pane.mode.findData("direct"))
    assert not pane.min_thinking.isEnabled()


def test_a_model_file_that_is_not_gguf_shows_why_in_its_pane_and_the_other_pane_still_runs(
    qtbot, window, tmp_path
):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a model" * 100)
    with qtbot.waitSignal(window.models_ready, timeout=RUN_TIMEOUT_MS):
        window._on_model_chosen(1, str(bad))
    assert "GGUF" in window.panes[1].status.text()
    window.prompt.setPlainText("Say hello.")
    _run(qtbot, window, key=False)
    results = window.last_results
    assert results[0].status == "ok" and results[1].status == "failed"


def test_history_reopens_a_past_prompt_into_the_panes(qtbot, window):
    window.prompt.setPlainText("What is 2 + 2?")
    _run(qtbot, window, key=False)
    answers = [p.answer_text for p in window.panes]
    window.prompt.clear()
    for pane in window.panes:
        pane.clear()
    qtbot.wait(300)  # the charts' redraws after the run come and go with the window's own timer
    window.tabs.setCurrentWidget(window.history)
    assert window.history.table.rowCount() == 2
    window.history.table.selectRow(0)
    assert window.history.reopen_selected()
    assert window.prompt.toPlainText() == "What is 2 + 2?"
    assert [p.answer_text for p in window.panes] == answers
    assert "From the history" in window.panes[0].status.text()


def test_export_from_the_menu_writes_the_session_off_the_gui_thread(qtbot, window, tmp_path):
    window.prompt.setPlainText("Say hello.")
    _run(qtbot, window, key=False)
    path = tmp_path / "session.jsonl"
    assert window.export_session("jsonl", str(path))
    qtbot.waitUntil(lambda: "Exported 2 runs" in window.statusBar().currentMessage(), timeout=10_000)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["run"]["pane"] for r in lines] == [0, 1]


def test_closing_the_window_mid_generation_stops_every_worker(qtbot, make_window, ui_settings, ui_log):
    ui_settings.max_tokens = 4000
    window = make_window(ui_settings)
    pids = [p.pid for p in window.controller.panes()]
    assert all(pids), pids
    window.mode.setCurrentIndex(window.mode.findData("live"))
    window.prompt.setPlainText("Write a very long essay about rivers.")
    assert window.run_all()
    qtbot.waitUntil(lambda: window.panes[0].answer_text.strip() != "", timeout=60_000)
    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < 10
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with SessionLog.open(ui_log.path) as reopened:  # closing the window closed the app's connection
        assert {r.status for r in reopened.list_runs()} == {"cancelled"}  # completed as cancelled, not running
        assert reopened.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_known_answer_marks_each_run_right_or_wrong_on_the_trade_off_chart(qtbot, window):
    window.prompt.setPlainText("What is 2 + 2? Answer with a number.")
    window.known_answer.setText("4")
    _run(qtbot, window, key=False)
    verdicts = [p.status.text() for p in window.panes]
    assert all(("✓ right" in v) or ("✗ wrong" in v) for v in verdicts), verdicts
    assert window.tradeoff.right + window.tradeoff.wrong == 2
    assert window.tradeoff.points == 2


def test_saved_settings_apply_to_the_running_session(qtbot, window):
    from dataclasses import replace

    session = window.controller._session  # behind the window's one door: did the settings reach it?
    before = session.sampler
    window.apply_settings(replace(window.settings, n_threads=1, tdp_w=35.0, sample_hz=5.0))
    assert session.cores == 1
    assert session.sampler is not before and session.sampler.interval_s == 0.2
    tdp = [s for s in session.power.sources if s.info.name == "tdp"]
    assert not tdp or tdp[0].info.detail["tdp_w"] == 35.0
    window.prompt.setPlainText("Say hi.")
    _run(qtbot, window, key=False)
    assert {r.n_threads for r in window.last_results} == {1}


def test_runs_kept_in_memory_can_be_saved_to_a_log_file_later(qtbot, ui_settings, tmp_path):
    from app.store import MemoryLog
    from app.ui.window import MainWindow

    window = MainWindow(ui_settings, MemoryLog(), ["The session log cannot be used (locked)."])
    qtbot.addWidget(window)
    window.show()
    try:
        with qtbot.waitSignal(window.models_ready, timeout=RUN_TIMEOUT_MS):
            window.load_default_models()
        window.prompt.setPlainText("Say hello.")
        _run(qtbot, window, key=False)
        assert "kept in memory" in window.notice.text()
        path = tmp_path / "later.db"
        assert window.save_memory_log(str(path))
        with SessionLog.open(path) as saved:
            assert [r.status for r in saved.list_runs()] == ["ok", "ok"]
        assert window.save_memory_log(str(path))  # again: nothing doubled
        assert "were there already" in window.statusBar().currentMessage()
    finally:
        window.close()


def test_the_router_setting_decides_what_auto_asks(qtbot, make_window, ui_settings):
    from app.routing import classifier

    ui_settings.router = "classifier"
    window = make_window(ui_settings, load=False)
    pane = window.panes[1]
    pane.mode.setCurrentIndex(pane.mode.findData("auto"))
    prompt = "Write a Python function that merges two sorted lists."
    window.prompt.setPlainText(prompt)
    window._update_route()
    assert "; ".join(classifier.decide(prompt).reasons) in pane.route_label.text()


def test_a_power_counter_the_user_can_unlock_is_said_once_beside_the_other_notices(qtbot, make_window, monkeypatch):
    import app.session
    from app.telemetry.sources import RAPL_PERMISSION_HINT, detect_sources

    # This machine's real sources, plus what a laptop with root-only RAPL adds (as root, no file here
    # can be made unreadable for real; tests/telemetry/test_rapl.py does that in a child as nobody).
    reason = f"/sys/class/powercap/intel-rapl:0/energy_uj: permission denied. {RAPL_PERMISSION_HINT}"

    def locked_rapl(tdp_w=None, servers=()):
        found = detect_sources(tdp_w)
        found.fixable.append(("rapl:intel-rapl:0", reason))
        return found

    monkeypatch.setattr(app.session, "detect_sources", locked_rapl)
    window = make_window(load=False)
    window.show_notices(["Welcome"])
    with qtbot.waitSignal(window.models_ready, timeout=LOAD_TIMEOUT_MS):
        window.load_default_models()
    text = window.notice.text()
    assert window.notice.isVisible() and text.startswith("Welcome<br>Energy could be measured, not estimated")
    assert "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj" in text and "udev" in text
    window.controller.loads_done.emit()  # another load (a model picked): not said twice
    assert window.notice.text().count("Energy could be measured") == 1


def test_a_power_source_lost_mid_session_is_said_once(qtbot, make_window, monkeypatch):
    import app.session
    from tests.telemetry.test_nvml import with_a_gpu_that_will_be_lost

    monkeypatch.setattr(app.session, "detect_sources", with_a_gpu_that_will_be_lost)
    window = make_window()
    qtbot.keyClicks(window.prompt, "Hi")
    _run(qtbot, window)
    lost = "Power source lost: nvml:0 stopped answering: GPU is lost — energy leaves it out from then on"
    assert window.notice.isVisible() and lost in window.notice.text()
    _run(qtbot, window)  # the next run: not said again
    assert "Power source lost" not in window.notice.text()  # the run cleared the notices; nothing new to say


def test_each_pane_says_when_its_run_was_on_battery(qtbot, make_window, monkeypatch):
    import collections

    battery = collections.namedtuple("sbattery", "percent secsleft power_plugged")(41.0, 3600, False)
    monkeypatch.setattr(psutil, "sensors_battery", lambda: battery)  # a laptop, unplugged (stood in for)
    window = make_window()
    qtbot.keyClicks(window.prompt, "Hi")
    _run(qtbot, window)
    assert [p.stats["Numbers"].text() for p in window.panes] == [
        f"fair mode · {r.placement} · on battery (41%)" for r in window.last_results]


def test_a_run_on_a_busy_machine_is_warned_up_front(qtbot, window, monkeypatch):
    from app.telemetry.sampler import Sample

    # The last three seconds as the sampler would have read them: 2 CPUs, 1.5 of them kept busy by
    # another program (none of it the app's or its workers').
    busy = [Sample(t, 75.0, 1, 1, None, None, {}, {}, own_cpu_s=0.0, logical_cpus=2) for t in (0.0, 1.0, 2.0, 3.0)]
    monkeypatch.setattr(window.controller, "samples", lambda: busy)
    window.prompt.setPlainText("Hi")
    _run(qtbot, window, key=False)  # any pane's thread is more than the half CPU left free
    assert window.notice.isVisible()
    assert window.notice.text().startswith("Busy machine: other programs keep 1.5 of 2 CPUs busy; with ")
    window.controller.samples = lambda: busy[:1]  # too few readings to say: nothing said
    _run(qtbot, window, key=False)
    assert "Busy machine" not in window.notice.text()


def test_a_gpu_the_llama_cpp_build_leaves_idle_is_said_up_front_with_its_fix(qtbot, make_window, monkeypatch):
    import app.doctor as doctor

    rtx = (doctor.SystemGpu(name="NVIDIA GeForce RTX 4070", vendor="nvidia", memory_bytes=12 << 30, source="nvidia-smi"),)
    monkeypatch.setattr(doctor, "system_gpus", lambda *args, **kwargs: rtx)  # an NVIDIA card (stood in for)
    window = make_window()  # both panes load this machine's CPU build of llama.cpp
    assert window.notice.isVisible()
    assert ("GPU idle: an NVIDIA GeForce RTX 4070 is here but llama.cpp was built for the CPU: "
            "run `make setup LLAMA_BACKEND=cuda`") in window.notice.text()
    assert window.notice.text().count("GPU idle") == 1  # one card, said once for both panes


def test_route_one_pane_answers_sends_each_question_to_one_pane_with_both_costs_shown(qtbot, window, ui_log):
    # RouteLLM's setting across the first two panes: the first answers directly, the second thinks.
    window.route_between.setChecked(True)
    assert window.route_banner.isVisible()
    window.prompt.setPlainText("Hello there")
    qtbot.waitUntil(lambda: "Route: Directly on" in window.route_banner.text(), timeout=3000)
    assert "not known: no direct run of it in the log yet" in window.route_banner.text()
    _run(qtbot, window, key=False)
    assert list(window.live) == [0] and [r.pane for r in window.last_results] == [0]
    assert "Not asked: the router sent this question to Fast" in window.panes[1].status.text()
    [stored] = ui_log.list_runs()
    assert (stored.pane, stored.route, stored.n_thinking_tokens) == (0, "direct", 0)
    # The run just logged is what the fast side is now expected to cost.
    assert "(median of 1 direct run)" in window.route_banner.text()
    window.prompt.setPlainText(MATH)
    qtbot.waitUntil(lambda: "Route: Thinking on" in window.route_banner.text(), timeout=3000)
    assert "directly on" in window.route_banner.text() and "(median of 1 direct run)" in window.route_banner.text()
    _run(qtbot, window, key=False)
    assert list(window.live) == [1]
    newest = ui_log.run_record(ui_log.list_runs()[0].id)
    assert (newest["run"]["pane"], newest["run"]["route"]) == (1, "think")
    # The bundled second model cannot think natively: asked to think, it is scaffolded.
    assert newest["run"]["params"]["strategy"] == "scaffold" and newest["run"]["n_thinking_tokens"] > 0
    assert any(reason.startswith("sent to ") and "to think" in reason for reason in newest["run"]["route_reasons"])
    window.route_between.setChecked(False)
    assert not window.route_banner.isVisible()


def test_k_samples_majority_streams_the_first_and_shows_the_vote_over_all(qtbot, window, ui_log):
    pane = window.panes[0]
    pane.samples.setValue(3)
    pane.temperature.setValue(0.8)
    window.prompt.setPlainText(MATH)
    with qtbot.waitSignal(window.run_done, timeout=RUN_TIMEOUT_MS):
        pane.run_button.click()
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=5000)
    runs = [ui_log.get_run(r.id) for r in ui_log.list_runs()]
    assert sorted(r.conditions.sample for r in runs) == [0, 1, 2] and {r.conditions.n_samples for r in runs} == {3}
    first = next(r for r in runs if r.conditions.sample == 0)
    assert pane.answer_text == first.text  # the pane streams its first sample only, never a mix of three
    from tests.ui.shown import status_text

    status = status_text(pane)  # as a person reads it
    assert "Majority of 3 samples:" in status or "No majority: " in status
    assert "each: " in status and "The 3 samples: " in status and "the figures below are sample 1's" in status
    assert not window.controller.running and pane.run_button.text() == "Run"


def test_marking_an_answer_right_or_wrong_is_stored_and_auto_then_knows_the_model(qtbot, make_window, ui_settings,
                                                                                  ui_log):
    window = make_window(ui_settings)
    fast = window.panes[0]
    assert not fast.mark_row.isVisible()  # nothing to mark before an answer
    window.prompt.setPlainText("What is the capital of France?")
    _run(qtbot, window, key=False)
    assert fast.mark_row.isVisible() and fast.mark_note.text() == "mark the answer:"
    qtbot.mouseClick(fast.mark_wrong, Qt.LeftButton)
    assert fast.mark_note.text() == "you marked it wrong" and fast.mark_wrong.isChecked()
    [marked] = [r for r in ui_log.list_runs() if r.pane == 0]
    assert marked.rating == -1 and marked.right is False
    qtbot.mouseClick(fast.mark_wrong, Qt.LeftButton)  # a second click takes it back
    assert fast.mark_note.text() == "mark the answer:"
    assert [r.rating for r in ui_log.list_runs() if r.pane == 0] == [None]
    # A run reopened from the history shows its stored mark and can be marked there too.
    ui_log.rate_run(marked.id, 1)
    window.tabs.setCurrentWidget(window.history)
    window.history.refresh()
    window.history.table.selectRow(0)
    assert window.history.reopen_selected()
    assert fast.mark_right.isChecked() and fast.mark_note.text() == "you marked it right"
    qtbot.mouseClick(fast.mark_wrong, Qt.LeftButton)
    assert [r.rating for r in ui_log.list_runs() if r.pane == 0] == [-1]
    assert fast.mark_note.text() == "you marked it wrong"
    # Auto reads the pane's model's record: a kind with no checked pair says the prompt alone decides.
    fast.mode.setCurrentIndex(fast.mode.findData("auto"))
    window.prompt.setPlainText("Who wrote Hamlet?")
    window._update_route()
    assert "no checked factual lookup question of" in fast.route_label.text()
