"""Live charts (pyqtgraph): tokens/s per pane, power with each run's window shaded, cumulative
energy, and the session's trade-off of latency against energy.

Redrawn on a timer from the session's recorders and sampler, never per token. Times are seconds
since the app started its telemetry, so the three time charts share one axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.live import tokens_per_second_curve
from app.runs import RunRecorder, RunResult
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
            view.setMinimumHeight(220)
            row.addWidget(view)
            plot = view.getPlotItem()
            plot.setLabel("bottom", "time", units="s")
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.disableAutoRange()
        self.tps.addLegend(offset=(-10, 10))
        self.source_label = QLabel()
        self.source_label.setObjectName("powerSource")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.source_label)
        self._tps_curves: dict[int, pg.PlotDataItem] = {}
        self._power_curve = self.power.plot(pen=pg.mkPen("#444", width=1))
        self._energy_curve = self.energy.plot(pen=pg.mkPen("#444", width=1))
        self._regions: list[pg.LinearRegionItem] = []
        self._limits: dict[tuple[str, str], float] = {}
        self.origin: float | None = None  # perf_counter of x = 0

    def update_charts(
        self,
        runs: Sequence[tuple[int, str, RunRecorder]],
        samples: Sequence[Sample],
        t_now: float,
        part: str | None = None,
    ) -> None:
        """runs: (pane, label, recorder) of every run so far this session; samples: the sampler's.

        part: only this chart ("tps", "power" or "energy"); None: all three.
        """
        if self.origin is None:
            self.origin = samples[0].t if samples else t_now
        origin = self.origin
        windows = [
            (pane, rec.t_submit - origin,
             (rec.t_submit + rec.result.total_s if rec.result.total_s is not None else t_now) - origin)
            for pane, _label, rec in runs
        ]
        x_hi = max([t_now - origin] + [x1 for _p, _x0, x1 in windows])
        if part in (None, "tps"):
            self._draw_tps(runs, origin)
        if part in (None, "power", "energy"):
            ts, watts, label = power_series(samples)
            xs = [t - origin for t in ts]
            if part in (None, "power"):
                self._power_curve.setData(xs, watts)
                self._shade(windows)
                self._grow("power", "y", max(watts, default=0.0))
                self.source_label.setText(f"Power: {label}" if label else "Power: no source")
            if part in (None, "energy"):
                joules = _cumulative(xs, watts)
                self._energy_curve.setData(xs, joules)
                self._grow("energy", "y", max(joules, default=0.0))
        for name in self.PARTS if part is None else (part,):
            self._grow(name, "x", x_hi)

    def _draw_tps(self, runs, origin: float) -> None:
        by_pane: dict[int, tuple[list[float], list[float]]] = {}
        for pane, label, recorder in runs:
            xs, ys = tokens_per_second_curve(recorder.result.token_times_s)
            x0 = recorder.t_submit - origin
            curve_x, curve_y = by_pane.setdefault(pane, ([], []))
            if curve_x:  # a gap between runs: break the line instead of joining across it
                curve_x.append(float("nan"))
                curve_y.append(float("nan"))
            curve_x += [x0 + x for x in xs]
            curve_y += ys
            if pane not in self._tps_curves:
                self._tps_curves[pane] = self.tps.plot(
                    pen=pg.mkPen(pane_color(pane), width=2), name=label, connect="finite"
                )
        for pane, (xs, ys) in by_pane.items():
            self._tps_curves[pane].setData(xs, ys, connect="finite")
        self._grow("tps", "y", max((y for _xs, ys in by_pane.values() for y in ys if y == y), default=0.0))

    def _grow(self, part: str, axis: str, needed: float) -> None:
        """Widen an axis to 1.5x what is needed once the data reach its end; never shrink it mid-session."""
        key = (part, axis)
        if needed <= self._limits.get(key, 0.0):
            return
        limit = self._limits[key] = max(needed * 1.5, 1.0)
        plot = self.views[part].getPlotItem()
        if axis == "x":
            plot.setXRange(0, limit, padding=0)
        else:
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


def _cumulative(xs: list[float], watts: list[float]) -> list[float]:
    """Energy so far along a power curve (trapezoids)."""
    joules, total = [], 0.0
    for i, w in enumerate(watts):
        if i:
            total += (xs[i] - xs[i - 1]) * (w + watts[i - 1]) / 2
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
        self._scatter: dict[str, pg.ScatterPlotItem] = {}
        self.points = self.right = self.wrong = 0

    def set_runs(self, runs: Sequence[tuple[str, RunResult, bool | None]]) -> None:
        """runs: (kind, result, correct); kind tells runs apart (e.g. "Fast · direct"), correct is
        None when the prompt had no known answer. Right answers are filled, wrong ones hollow."""
        kinds = sorted({kind for kind, _r, _ok in runs})
        for n, kind in enumerate(kinds):
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
