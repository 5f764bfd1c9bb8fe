"""The Scaling tab: a sweep run from the app on the bundled model, stopped, resumed, charted."""

from __future__ import annotations

import json

from app.scaling.sweep import SampleStore
from app.ui.scaling import ScalingView
import pytest

pytestmark = pytest.mark.model  # runs the command or the app on a model (not in `make check`)

SWEEP_TIMEOUT_MS = 300_000


def make(qtbot, tmp_path) -> ScalingView:
    view = ScalingView(tmp_path / "sweep")
    qtbot.addWidget(view)
    view.set_models([("SmolLM2 135M Instruct (Q4_1)", "smollm2-135m")])
    view.budgets.setText("0,8")
    view.ks.setText("1,2")
    view.limit.setValue(1)
    view.show()
    return view


def test_a_sweep_runs_from_the_tab_and_its_charts_and_reading_appear(qtbot, tmp_path):
    view = make(qtbot, tmp_path)
    with qtbot.waitSignal(view.sweep_done, timeout=SWEEP_TIMEOUT_MS):
        assert view.run()
        assert not view.run_button.isEnabled() and view.stop_button.isEnabled()
    assert view.progress.text().startswith("Done: 4 generated now")
    assert {(p.axis, p.x) for p in view.points} >= {("budget", 0), ("budget", 8), ("k", 1), ("k", 2)}
    assert view.reading.text().startswith("smollm2-135m ")
    assert all(chart.getPlotItem().listDataItems() for chart in view.charts.values())
    # What the tab wrote is what `fastslow scale` writes: it opens again from the folder.
    saved = json.loads((tmp_path / "sweep" / "points.json").read_text())
    assert len(saved) == len(view.points)
    other = make(qtbot, tmp_path)
    assert other.open_results(tmp_path / "sweep") and len(other.points) == len(view.points)


def test_stop_keeps_what_finished_and_a_second_run_resumes(qtbot, tmp_path):
    view = make(qtbot, tmp_path)
    view.ks.setText("1,2,4,8")
    with qtbot.waitSignal(view.sweep_done, timeout=SWEEP_TIMEOUT_MS):
        assert view.run()
        qtbot.waitUntil(lambda: "generations" in view.progress.text(), timeout=SWEEP_TIMEOUT_MS)
        view.stop()
    assert view.progress.text().startswith("Stopped: ") and "run again to resume" in view.progress.text()
    kept = len(SampleStore.open(tmp_path / "sweep" / "samples.jsonl").done)
    assert 0 < kept < 10  # 2 budgets + 8 samples were asked for
    with qtbot.waitSignal(view.sweep_done, timeout=SWEEP_TIMEOUT_MS):
        assert view.run()
    assert view.progress.text().startswith(f"Done: {10 - kept} generated now, 10 in ")


def test_bad_input_is_refused_in_the_tab(qtbot, tmp_path):
    view = make(qtbot, tmp_path)
    view.budgets.setText("0,-8")
    assert not view.run() and "budgets must be 0 or more" in view.progress.text()
    view.budgets.setText("0")
    view.ks.setText("two")
    assert not view.run() and "whole numbers" in view.progress.text()
    assert not view.open_results(tmp_path / "nowhere") and "No sweep results" in view.progress.text()


def test_budget_forcing_is_a_choice_in_the_tab(qtbot, tmp_path):
    view = make(qtbot, tmp_path)
    assert not view.config().force_budget
    view.force.setChecked(True)
    assert view.config().force_budget
