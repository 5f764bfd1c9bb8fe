"""Live charts (pyqtgraph): tokens/s per pane, power with each run's window shaded, cumulative
energy, and the session's trade-off of latency against energy.

Redrawn on a timer from the window's LiveRuns and the sampler, never per token. Times are seconds
since the app started its telemetry, so the three time charts share one axis. By default they show
the current comparison; "Whole session" shows every run since the app started.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.live import LiveRun, tokens_per_second_curve
from app.runs import RunResult
from app.telemetry import Sample, power_series

PANE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
PANE_SYMBOLS = ("o", "t", "s", "d")


def configure_pyqtgraph() -> None:
    # No antialiasing: painting is the costly part while panes stream (tests/perf/test_ui_stall.py).
    pg.setConfigOptions(antialias=False, background="w", foreground="k")


def pane_color(index: int) -> str:
    return PANE_COLORS[index % len(PANE_COLORS)]


class LiveCharts(QWidget):
    """Three time charts side by side, sharing an x axis, each its own view.

    Painting is what costs: separate views let a refresh repaint one chart at a time
    (update_charts(part=...)), and axes that grow in steps keep their cached drawing between
    refreshes. Together they keep the event loop's stalls short while both panes stream
    (tests/perf/test_ui_stall.py); auto-ranging all three at once cost ~100 ms per refresh.
    """

    PARTS = ("tps", "power", "energy")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        configure_pyqtgraph()
        self.views = {
            "tps": pg.PlotWidget(title="Tokens per second"),
            "power": pg.PlotWidget(title="Power (W), each run's window shaded"),
            "energy": pg.PlotWidget(title="Cumulative energy (J)"),
        }
        self.tps, self.power, self.energy = (self.views[k].getPlotItem() for k in self.PARTS)
        row = QHBoxLayout()
        for view in self.views.values():
            view.setMinimumHeight(130)  # the window must fit a 1024×700 screen
            row.addWidget(view)
            plot = view.getPlotItem()
            plot.setLabel("bottom", "time", units="s")
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.disableAutoRange()
        self.tps.addLegend(offset=(-10, 10))
        self.source_label = QLabel()
        self.source_label.setObjectName("powerSource")
        self.whole_session = QCheckBox("Whole session")
        self.whole_session.setToolTip("Show every run since the app started, not only the current comparison")
        self.whole_session.toggled.connect(self._on_span_changed)
        footer = QHBoxLayout()
        footer.addWidget(self.source_label, 1)
        footer.addWidget(self.whole_session)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addLayout(footer)
        self._tps_curves: dict[int, pg.PlotDataItem] = {}
        self._power_curve = self.power.plot(pen=pg.mkPen("#444", width=1))
        self._energy_curve = self.energy.plot(pen=pg.mkPen("#444", width=1))
        self._regions: list[pg.LinearRegionItem] = []
        self._limits: dict[tuple[str, str], float] = {}
        self.origin: float | None = None  # perf_counter of x = 0
        self._comparison_start: float | None = None  # perf_counter when the current comparison began
        self._last: tuple | None = None  # the latest update_charts arguments, to redraw on a span change

    def begin_comparison(self, t: float) -> None:
        """A new comparison starts at t: by default the charts now show it alone, from its start."""
        self._comparison_start = t
        if not self.whole_session.isChecked():
            self._limits.clear()

    def _on_span_changed(self) -> None:
        self._limits.clear()
        if self._last is not None:
            self.update_charts(*self._last)

    @property
    def span_start(self) -> float:
        """x of the charts' left edge: 0 for the whole session, else the current comparison's start."""
        if self.whole_session.isChecked() or self._comparison_start is None or self.origin is None:
            return 0.0
        return max(self._comparison_start - self.origin, 0.0)

    def update_charts(
        self,
        runs: Sequence[tuple[int, str, LiveRun]],
        samples: Sequence[Sample],
        t_now: float,
        part: str | None = None,
    ) -> None:
        """runs: (pane, label, run) of every run so far this session; samples: the sampler's.

        part: only this chart ("tps", "power" or "energy"); None: all three.
        """
        self._last = (runs, samples, t_now, None)
        if self.origin is None:
            self.origin = samples[0].t if samples else t_now
        origin, start = self.origin, self.span_start
        windows = [(pane, w[0] - origin, w[1] - origin) for pane, _label, run in runs
                   if (w := run.window(t_now)) is not None]
        x_hi = max([t_now - origin] + [x1 for _p, _x0, x1 in windows])
        if part in (None, "tps"):
            self._draw_tps(runs, origin)
        if part in (None, "power", "energy"):
            ts, watts, label = power_series(samples)
            xs = [t - origin for t in ts]
            if part in (None, "power"):
                self._power_curve.setData(xs, watts)
                self._shade(windows)
                self._grow("power", "y", max((w for x, w in zip(xs, watts) if x >= start), default=0.0))
                self.source_label.setText(f"Power: {label}" if label else "Power: no source")
            if part in (None, "energy"):
                joules = _cumulative(xs, watts, start)
                self._energy_curve.setData(xs, joules)
                self._grow("energy", "y", max(joules, default=0.0))
        for name in self.PARTS if part is None else (part,):
            self._grow(name, "x", x_hi)

    def _draw_tps(self, runs, origin: float) -> None:
        # Per pane, every run's curve in one line, broken between runs by a connect array: the x
        # values stay finite and sorted, which clipping to the view relies on (NaN gaps broke it).
        by_pane: dict[int, tuple[list[float], list[float], list[int]]] = {}
        start = self.span_start
        for pane, label, run in sorted(runs, key=lambda r: r[2].t_submit or 0.0):
            if run.t_submit is None:
                continue
            xs, ys = tokens_per_second_curve(run.times())
            if not xs:
                continue
            x0 = run.t_submit - origin
            curve_x, curve_y, joined = by_pane.setdefault(pane, ([], [], []))
            curve_x += [x0 + x for x in xs]
            curve_y += ys
            joined += [1] * (len(xs) - 1) + [0]  # the run's last point does not join the next run's first
            if pane not in self._tps_curves:
                self._tps_curves[pane] = self.tps.plot(pen=pg.mkPen(pane_color(pane), width=2), name=label)
        for pane, (xs, ys, joined) in by_pane.items():
            self._tps_curves[pane].setData(np.array(xs), np.array(ys), connect=np.array(joined, dtype=np.int32))
        shown = (y for xs, ys, _j in by_pane.values() for x, y in zip(xs, ys) if x >= start)
        self._grow("tps", "y", max(shown, default=0.0))

    def _grow(self, part: str, axis: str, needed: float) -> None:
        """Widen an axis to 1.5x what is needed once the data reach its end; never shrink it mid-session."""
        key = (part, axis)
        if needed <= self._limits.get(key, 0.0):
            return
        plot = self.views[part].getPlotItem()
        if axis == "x":
            start = self.span_start
            limit = self._limits[key] = start + max((needed - start) * 1.5, 1.0)
            plot.setXRange(start, limit, padding=0)
        else:
            limit = self._limits[key] = max(needed * 1.5, 1.0)
            plot.setYRange(0, limit, padding=0)

    def _shade(self, windows: list[tuple[int, float, float]]) -> None:
        """One shaded region per run window; existing regions are moved, not rebuilt."""
        while len(self._regions) < len(windows):
            region = pg.LinearRegionItem(movable=False)
            region.setZValue(-10)
            self.power.addItem(region)
            self._regions.append(region)
        for region, (pane, x0, x1) in zip(self._regions, windows):
            if getattr(region, "pane", None) != pane:
                region.pane = pane
                region.setBrush(pg.mkBrush(pg.mkColor(pane_color(pane)).lighter(170)))
            if tuple(region.getRegion()) != (x0, x1):
                region.setRegion((x0, x1))


def _cumulative(xs: list[float], watts: list[float], start: float = 0.0) -> list[float]:
    """Energy so far along a power curve (trapezoids), counted from x = start (0 before it)."""
    joules, total = [], 0.0
    for i, w in enumerate(watts):
        if i and xs[i] > start:
            x_prev = max(xs[i - 1], start)
            total += (xs[i] - x_prev) * (w + watts[i - 1]) / 2
        joules.append(total)
    return joules


class TradeoffChart(QWidget):
    """Each finished run as a point: latency against energy; panes told apart by colour and symbol."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(title="Trade-off: each run's latency and energy (with a known answer: "
                                        "filled = right, hollow = wrong)")
        self.plot.setLabel("bottom", "total time", units="s")
        self.plot.setLabel("left", "energy", units="J")
        self.plot.addLegend()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self._scatter: dict[str, pg.ScatterPlotItem] = {}  # by kind, in the order kinds first appeared
        self.points = self.right = self.wrong = 0

    def set_runs(self, runs: Sequence[tuple[str, RunResult, bool | None]]) -> None:
        """runs: (kind, result, correct); kind tells runs apart (e.g. "Fast · direct"), correct is
        None when the prompt had no known answer. Right answers are filled, wrong ones hollow."""
        # A kind keeps the colour and symbol it got when it first appeared: its legend entry was
        # drawn with them, so its points must never be recoloured.
        for kind in dict.fromkeys(kind for kind, _r, _ok in runs):
            n = list(self._scatter).index(kind) if kind in self._scatter else len(self._scatter)
            color = pg.mkColor(pane_color(n))
            points = [
                {"pos": (r.total_s, r.energy_j), "data": r.model,
                 "brush": pg.mkBrush(color) if ok is not False else pg.mkBrush(255, 255, 255, 0),
                 "pen": pg.mkPen("k" if ok is None else ("#2a2" if ok else "#d22"), width=1 if ok is None else 2)}
                for k, r, ok in runs
                if k == kind and r.total_s is not None and r.energy_j is not None
            ]
            if kind not in self._scatter:
                self._scatter[kind] = pg.ScatterPlotItem(
                    size=11, symbol=PANE_SYMBOLS[n % len(PANE_SYMBOLS)],
                    brush=pg.mkBrush(color), pen=pg.mkPen("k"), name=kind,
                )
                self.plot.addItem(self._scatter[kind])
            self._scatter[kind].setData(points)
        self.points = sum(len(item.data) for item in self._scatter.values())
        self.right = sum(ok is True for _k, _r, ok in runs)
        self.wrong = sum(ok is False for _k, _r, ok in runs)
