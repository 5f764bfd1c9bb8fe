"""The window at a laptop's size, the charts' span, the trade-off's legend, timers that die with the window."""

from __future__ import annotations

from types import SimpleNamespace

import pyqtgraph as pg

from app.runs import RunResult
from app.ui.charts import LiveCharts, TradeoffChart, pane_color
from tests.ui.conftest import RUN_TIMEOUT_MS

LONG_FIGURES = {"Energy": "118.0 J* <i>estimated</i>", "Numbers": "fair mode · on battery (41%)",
                "Tokens/s avg": "1234.5", "Elapsed": "1234.5 s"}
VERDICT = ("Thinking took 2.8× the time (6.1 s vs 2.2 s) and 2.7× the energy (61 J vs 23 J, estimated); the "
           "answers differ: 360 vs 6:15 pm; Fast is right, Thinking wrong (known answer: 6:15 pm)")


def test_at_1024_by_700_the_window_fits_and_every_figure_shows_whole(qtbot, make_window):
    window = make_window(load=False)
    for pane in window.panes:
        pane.thinking_toggle.setVisible(True)
        pane.thinking_view.setVisible(True)
        pane.set_status_lines([("From the history: smollm2-135m, ok, live mode, 2026-12-03 12:00:00", ""),
                               ("✗ wrong: the known answer is 6:15 pm", "error")])
        for name, label in pane.stats.items():
            label.setText(LONG_FIGURES.get(name, "118.0 tok"))
    window.verdict.setText(VERDICT)
    window.verdict.setVisible(True)
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1024, 700), timeout=3000)
    qtbot.wait(50)
    for pane in window.panes:
        for name, label in pane.stats.items():
            needed = label.heightForWidth(label.width())
            assert label.height() >= needed, f"{name} is cut: {label.height()} px of {needed}"
            assert label.width() > 0 and label.isVisibleTo(window)
        assert pane.answer_view.height() >= 48 and pane.thinking_view.height() >= 36
    assert window.verdict.height() >= window.verdict.heightForWidth(window.verdict.width())


def _runs(*spans):
    """LiveRun stand-ins for the charts: (pane, label, run) with a window and token times."""
    runs = []
    for pane, t0, t1 in spans:
        run = SimpleNamespace(t_submit=t0, times=lambda n=t1 - t0: [n * k / 10 for k in range(1, 11)],
                              window=lambda _t, a=t0, b=t1: (a, b))
        runs.append((pane, f"pane {pane}", run))
    return runs


def test_the_charts_show_the_current_comparison_and_the_whole_session_on_demand(qtbot):
    charts = LiveCharts()
    qtbot.addWidget(charts)
    charts.origin = 0.0
    earlier = _runs((0, 10.0, 20.0), (1, 20.0, 30.0))
    charts.begin_comparison(1200.0)  # twenty minutes later
    now = _runs((0, 1200.0, 1205.0), (1, 1200.0, 1206.0))
    charts.update_charts(earlier + now, [], 1206.0)
    x0, x1 = charts.tps.viewRange()[0]
    assert x0 == 1200.0 and x1 < 1220.0  # the current run fills the chart, not a sliver of the session
    charts.whole_session.setChecked(True)
    x0, x1 = charts.tps.viewRange()[0]
    assert x0 == 0.0 and x1 >= 1206.0
    charts.whole_session.setChecked(False)
    assert charts.tps.viewRange()[0][0] == 1200.0
    # Each pane's runs make one curve, broken between runs, its x values finite and sorted.
    xs, _ys = charts._tps_curves[0].getData()
    assert all(a <= b for a, b in zip(xs, xs[1:])) and all(x == x for x in xs)


def _colour(brush) -> str:
    return pg.mkBrush(brush).color().name()


def test_the_trade_off_legend_keeps_the_colour_each_kind_is_drawn_in(qtbot):
    chart = TradeoffChart()
    qtbot.addWidget(chart)
    thinking = RunResult.of(1, model="smollm2-135m", mode="fair", status="ok", total_s=6.0, energy_j=60.0)
    fast = RunResult.of(0, model="smollm2-135m", mode="fair", status="ok", total_s=2.0, energy_j=20.0)
    chart.set_runs([("Thinking · thinking", thinking, None)])
    # "Fast" sorts before "Thinking": it used to take Thinking's colour while Thinking's legend kept it.
    chart.set_runs([("Thinking · thinking", thinking, None), ("Fast · direct", fast, None)])
    for n, kind in enumerate(["Thinking · thinking", "Fast · direct"]):
        item = chart._scatter[kind]
        legend = _colour(item.opts["brush"])
        points = {_colour(p.brush()) for p in item.points()}
        assert points == {legend} == {pg.mkColor(pane_color(n)).name()}


def test_closing_the_window_right_after_a_run_leaves_no_timer_touching_its_charts(qtbot, window):
    window.prompt.setPlainText("Say hi.")
    with qtbot.waitSignal(window.run_done, timeout=RUN_TIMEOUT_MS):
        assert window.run_all()
    window.close()  # the charts' after-run redraws are still queued
    qtbot.wait(400)  # an exception in a slot here fails the test (pytest-qt captures it)
    assert not window._final_charts.isActive()
