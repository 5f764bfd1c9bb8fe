"""The Scaling tab: run a sweep (or open one `fastslow scale` wrote) and see its three charts and
its reading. The sweep runs off the GUI thread in its own model worker; Stop keeps what finished,
and running again resumes from the folder's samples.jsonl."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import thread_worker

from app.catalog import resolve
from app.engines.types import EngineError
from app.eval.suites import load_suite, suite_path
from app.scaling import report
from app.scaling.sweep import Point, SampleStore, SweepConfig, SweepStopped, points, sweep_model
from app.scaling.verifiers import VERIFIERS
from app.ui.charts import configure_pyqtgraph, pane_color
from app.ui.file_dialogs import existing_directory


LOG_X = ("tokens", "verifiers")


class ScalingView(QWidget):
    sweep_done = Signal()  # a sweep ended (finished, stopped or failed) and its points are shown

    def __init__(self, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.points: list[Point] = []
        self.model = QComboBox()
        self.folder = QLineEdit(str(folder))
        browse = QPushButton("Open a results folder…")
        browse.clicked.connect(self._browse)
        self.budgets = QLineEdit("0,64,128,256")
        self.ks = QLineEdit("1,2,4,8")
        self.limit = QSpinBox()
        self.limit.setRange(1, 1000)
        self.limit.setValue(5)
        self.checks = {name: QCheckBox(name) for name in VERIFIERS}
        for name in ("oracle", "majority", "program"):
            self.checks[name].setChecked(True)
        self.force = QCheckBox("Hold each thought to its budget (budget forcing: \"Wait\" when it stops early)")
        self.run_button = QPushButton("Run the sweep")
        self.run_button.clicked.connect(lambda: self.run())
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.progress = QLabel()
        self.progress.setWordWrap(True)
        self.reading = QLabel()
        self.reading.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Model", self.model)
        form.addRow("Thinking budgets (tokens)", self.budgets)
        form.addRow("Samples per question (k)", self.ks)
        form.addRow("GSM8K problems", self.limit)
        verifiers = QHBoxLayout()
        for box in self.checks.values():
            verifiers.addWidget(box)
        form.addRow("Verifiers", verifiers)
        form.addRow("", self.force)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        form.addRow("Results folder", folder_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.progress, 1)

        configure_pyqtgraph()
        self.charts = {
            "tokens": pg.PlotWidget(title="Accuracy (%) vs thinking tokens per question (log)"),
            "energy": pg.PlotWidget(title="Accuracy (%) vs energy per question (J)"),
            "verifiers": pg.PlotWidget(title="Accuracy (%) vs samples k, by verifier"),
        }
        row = QHBoxLayout()
        for chart in self.charts.values():
            chart.addLegend()
            chart.setYRange(0, 100)
            row.addWidget(chart)
        for name in LOG_X:
            self.charts[name].setLogMode(x=True)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(row, 1)
        layout.addWidget(self.reading)
        self._stop = threading.Event()
        self._worker = None

    def set_models(self, choices: list[tuple[str, str]]) -> None:
        self.model.clear()
        for label, key in choices:
            self.model.addItem(label, key)

    def _browse(self) -> None:
        folder = existing_directory(self, "Results of fastslow scale", self.folder.text())
        if folder:
            self.folder.setText(folder)
            self.open_results(Path(folder))

    # -- results ------------------------------------------------------------------------------

    def open_results(self, folder: Path) -> bool:
        """Show a finished (or stopped) sweep: its points.json and reading.txt."""
        try:
            data = json.loads((folder / "points.json").read_text(encoding="utf-8"))
            points = [Point(**p) for p in data]
        except (OSError, ValueError, TypeError) as exc:
            self.progress.setText(f"No sweep results in {folder} ({exc.__class__.__name__}): run one, or pick the "
                                  "folder `fastslow scale --output` wrote")
            return False
        self.show_points(points)
        return True

    def show_points(self, points: list[Point]) -> None:
        self.points = points
        for chart in self.charts.values():
            chart.clear()
        models = list(dict.fromkeys(p.model for p in points))
        for n, model in enumerate(models):
            budget = sorted((p for p in points if p.model == model and p.axis == "budget"), key=lambda p: p.x)
            # Log scale: a direct answer's 0 thinking tokens is drawn at 1.
            self._curve("tokens", budget, lambda p: max(p.mean_thinking_tokens, 1.0), f"{model}: budget", n)
            energy = [p for p in budget if p.mean_energy_j is not None]
            self._curve("energy", energy, lambda p: p.mean_energy_j, f"{model}: budget", n)
            sampled = [p for p in points if p.model == model and p.axis == "k"]
            for m, verifier in enumerate(dict.fromkeys(p.verifier for p in sampled)):
                mine = sorted((p for p in sampled if p.verifier == verifier), key=lambda p: p.x)
                self._curve("verifiers", mine, lambda p: p.x, f"{model}: {verifier}", n + m)
        for chart in self.charts.values():
            chart.setYRange(-2, 102, padding=0)  # accuracy: always the whole scale
        self.reading.setText(report.reading(points) if points else "")

    def _curve(self, chart: str, points: list[Point], x_of, name: str, colour: int) -> None:
        if not points:
            return
        xs, ys = [x_of(p) for p in points], [p.accuracy * 100 for p in points]
        plot = self.charts[chart]
        plot.plot(xs, ys, pen=pg.mkPen(pane_color(colour), width=2), symbol="o",
                  symbolBrush=pane_color(colour), name=name)
        # Curves are log-scaled by the plot; error bars are not, so they get log10 positions.
        bar_x = [math.log10(x) for x in xs] if chart in LOG_X else xs
        plot.addItem(pg.ErrorBarItem(
            x=np.array(bar_x), y=np.array(ys), beam=0.02,
            top=np.array([(p.ci_high - p.accuracy) * 100 for p in points]),
            bottom=np.array([(p.accuracy - p.ci_low) * 100 for p in points]),
        ))

    # -- running ------------------------------------------------------------------------------

    def config(self) -> SweepConfig:
        def numbers(text: str, what: str) -> tuple[int, ...]:
            try:
                return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
            except ValueError:
                raise ValueError(f"{what} must be whole numbers separated by commas, not {text!r}") from None

        return SweepConfig(budgets=numbers(self.budgets.text(), "budgets"), ks=numbers(self.ks.text(), "k"),
                           verifiers=tuple(name for name, box in self.checks.items() if box.isChecked()),
                           force_budget=self.force.isChecked())

    def run(self) -> bool:
        if self._worker is not None:
            return False
        try:
            config = self.config()
            if not config.budgets or not config.ks:
                raise ValueError("give at least one budget and one k")
            spec = resolve(self.model.currentData() or "", n_ctx=2048)
            problems = load_suite(suite_path("gsm8k"), limit=self.limit.value())
        except (ValueError, EngineError) as exc:
            self.progress.setText(f"<span style='color:#b00020'>{exc}</span>")
            return False
        folder = Path(self.folder.text()).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.setText(f"Loading {spec.label}…")
        worker = _sweep_worker(spec, problems, config, folder, self._stop)
        worker.yielded.connect(self.progress.setText)
        worker.returned.connect(self._finished)
        worker.errored.connect(lambda exc: self._finished(None, f"The sweep stopped: {exc}"))
        self._worker = worker
        worker.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        self.progress.setText("Stopping after the current generation…")

    def _finished(self, result, message: str | None = None) -> None:
        self._worker = None
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if result is not None:
            points, message = result
            self.show_points(points)
        self.progress.setText(message or "")
        self.sweep_done.emit()


@thread_worker(start_thread=False, ignore_errors=True)  # errored is shown by the view
def _sweep_worker(spec, problems, config: SweepConfig, folder: Path, stop: threading.Event):
    store = SampleStore.open(folder / "samples.jsonl")
    updates: list[str] = []
    done = threading.Event()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["result"] = sweep_model(
                spec, problems, config, store,
                on_generation=lambda g, new: updates.append(
                    f"{len(store.done)} generations · {g.problem_id} {g.kind} budget {g.budget} seed {g.seed}: "
                    f"{'right' if g.correct else 'wrong'} ({g.predicted}){'' if new else ' (stored)'}"),
                should_stop=stop.is_set,
            )
        except BaseException as exc:  # handed to the GUI thread below
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, daemon=True).start()
    while not done.wait(0.2):
        if updates:
            yield updates[-1]
            updates.clear()
    error = outcome.get("error")
    if isinstance(error, SweepStopped):
        message = f"Stopped: {len(store.done)} generations kept in {folder}; run again to resume"
    elif error is not None:
        raise error
    else:
        message = f"Done: {outcome['result'].ran} generated now, {len(store.done)} in {folder / 'samples.jsonl'}"
    found = points(store, spec.label, problems, config)  # from the store: finished or stopped alike
    report.write_results(folder, found)
    return found, message
