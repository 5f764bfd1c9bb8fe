"""Live charts (pyqtgraph): tokens/s per pane, power with each run's window shaded, cumulative
energy, and the session's trade-off of latency against energy.

Redrawn on a timer from the session's recorders and sampler, never per token. Times are seconds
since the app started its telemetry, so the three time charts share one axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.live import tokens_per_second_curve
from app.runs import RunRecorder, RunResult
from app.telemetry import Sample, power_series

PANE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
PANE_SYMBOLS = ("o", "t", "s", "d")


def pane_color(index: int) -> str:
    return PANE_COLORS[index % len(PANE_COLORS)]


class LiveCharts(QWidget):
    """Three time charts side by side, sharing an x axis."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True, background="w", foreground="k")
        self.plots = pg.GraphicsLayoutWidget()
        self.tps = self.plots.addPlot(row=0, col=0, title="Tokens per second")
        self.power = self.plots.addPlot(row=0, col=1, title="Power (W), each run's window shaded")
        self.energy = self.plots.addPlot(row=0, col=2, title="Cumulative energy (J)")
        for plot in (self.tps, self.power, self.energy):
            plot.setLabel("bottom", "time", units="s")
            plot.showGrid(x=True, y=True, alpha=0.2)
        for plot in (self.power, self.energy):
            plot.setXLink(self.tps)
        self.plots.setMinimumHeight(220)
        self.tps.addLegend(offset=(-10, 10))
        self.source_label = QLabel()
        self.source_label.setObjectName("powerSource")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plots)
        layout.addWidget(self.source_label)
        self._tps_curves: dict[int, pg.PlotDataItem] = {}
        self._power_curve = self.power.plot(pen=pg.mkPen("#444", width=1.5))
        self._energy_curve = self.energy.plot(pen=pg.mkPen("#444", width=1.5))
        self._regions: list[pg.LinearRegionItem] = []
        self.origin: float | None = None  # perf_counter of x = 0

    def update_charts(self, runs: Sequence[tuple[int, str, RunRecorder]], samples: Sequence[Sample], t_now: float) -> None:
        """runs: (pane, label, recorder) of every run so far this session; samples: the sampler's."""
        if self.origin is None:
            self.origin = samples[0].t if samples else t_now
        origin = self.origin
        for region in self._regions:
            self.power.removeItem(region)
        self._regions = []
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
            end = recorder.t_submit + recorder.result.total_s if recorder.result.total_s is not None else t_now
            region = pg.LinearRegionItem(values=(x0, end - origin), movable=False,
                                         brush=pg.mkBrush(pg.mkColor(pane_color(pane)).lighter(170)))
            region.setZValue(-10)
            self.power.addItem(region)
            self._regions.append(region)
        for pane, (xs, ys) in by_pane.items():
            self._tps_curves[pane].setData(xs, ys, connect="finite")
        ts, watts, label = power_series(samples)
        xs = [t - origin for t in ts]
        self._power_curve.setData(xs, watts)
        joules, total = [], 0.0
        for i, w in enumerate(watts):
            if i:
                total += (xs[i] - xs[i - 1]) * (w + watts[i - 1]) / 2
            joules.append(total)
        self._energy_curve.setData(xs, joules)
        self.source_label.setText(f"Power: {label}" if label else "Power: no source")


class TradeoffChart(QWidget):
    """Each finished run as a point: latency against energy; panes told apart by colour and symbol."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(title="Trade-off: each run's latency and energy")
        self.plot.setLabel("bottom", "total time", units="s")
        self.plot.setLabel("left", "energy", units="J")
        self.plot.addLegend()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self._scatter: dict[str, pg.ScatterPlotItem] = {}
        self.points = 0

    def set_runs(self, runs: Sequence[tuple[str, RunResult]]) -> None:
        """runs: (kind, result), kind being what tells runs apart (e.g. "Fast · direct")."""
        kinds = sorted({kind for kind, _ in runs})
        for n, kind in enumerate(kinds):
            points = [
                {"pos": (r.total_s, r.energy_j), "data": r.model}
                for k, r in runs
                if k == kind and r.total_s is not None and r.energy_j is not None
            ]
            if kind not in self._scatter:
                self._scatter[kind] = pg.ScatterPlotItem(
                    size=11, symbol=PANE_SYMBOLS[n % len(PANE_SYMBOLS)],
                    brush=pg.mkBrush(pane_color(n)), pen=pg.mkPen("k"), name=kind,
                )
                self.plot.addItem(self._scatter[kind])
            self._scatter[kind].setData(points)
        self.points = sum(len(item.data) for item in self._scatter.values())
