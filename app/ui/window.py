"""The main window: prompt, panes side by side, live charts, trade-off, history, models, settings.

A thin layer over SessionController: it turns what the user set into plans and requests, and
shows what comes back. Every long task (loading, generating, exporting) runs off the GUI thread.
"""

from __future__ import annotations

from dataclasses import replace
from html import escape
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from platformdirs import user_data_dir

from superqt.utils import thread_worker

from app.catalog import local_gguf_files, local_mlx_folders, located
from app.engines.mlx_engine import mlx_unavailable
from app.engines.types import EngineError, ModelSpec, now
from app.live import LiveRun
from app.local_stores import discover
from app.model_picks import PICK_SERVED, SERVED_LABEL, label_for, resolve_pick, store_choices
from app.plan import AUTO_MODE, DIRECT_MODE, THINK, THINKING_MODE, PanePlan, describe_decision, plan_request, route
from app.reasoning.answers import extract_answer
from app.reasoning.consistency import describe_vote
from app.reasoning.modes import minimum_unheld
from app.runs import RunResult, RunUpdate
from app.settings import Settings
from app.store import MemoryLog, SessionLog, StoreError, resolve_db_path
from app.store.export import FORMATS
from app.store.log import result_from_record
from app.ui.about_dialog import AboutDialog
from app.ui.charts import LiveCharts, TradeoffChart
from app.ui.controller import SessionController
from app.ui.history import HistoryView, start_export
from app.ui.models import ModelManager
from app.ui.pane import PaneView
from app.ui.quit_guard import confirm_close, mark_saved
from app.ui.remote_dialog import RemoteModelDialog
from app.ui.scaling import ScalingView
from app.ui.settings_dialog import SettingsDialog
from app.ui.snapshots import FinishedRun, LogState, PaneLoad, PaneSnapshot
from app.verdict import run_kind, samples_line, verdict
from app.ui.file_dialogs import save_file_name

STATS_MS = 100  # live stats: ten times a second
CHARTS_MS = 250  # one of the three charts per tick while running: each is redrawn every 0.75 s
PANE_TITLES = ("Fast", "Thinking", "Pane 3", "Pane 4")
DEFAULT_PLANS = (
    PanePlan(mode=DIRECT_MODE, temperature=0.0),
    PanePlan(mode=THINKING_MODE, thinking_budget=256, temperature=0.0),
)
EXPORT_FILTERS = {"jsonl": "JSON Lines (*.jsonl)", "csv": "CSV (*.csv)", "html": "HTML report (*.html)",
                  "sqlite": "SQLite database (*.db)"}


def scaling_folder() -> Path:
    """Where the Scaling tab keeps its sweeps: beside the session log, in the user's data folder."""
    return Path(user_data_dir("FastSlow", appauthor=False)) / "scaling"


def model_choices(models_dir=None) -> list[tuple[str, str]]:
    """(label, key) for every model on this machine: catalog models that are here, then local files.

    MLX models stay listed where MLX cannot run, marked so; choosing one says why it cannot load.
    """
    needs = " — needs MLX" if mlx_unavailable() else ""
    choices = [(f"{entry.name} ({entry.quantization}){needs if entry.is_mlx else ''}", entry.id)
               for entry, path in located(models_dir) if path]
    choices += [(path.name, str(path)) for path in local_gguf_files(models_dir)]
    choices += [(f"{path.name} (MLX){needs}", str(path)) for path in local_mlx_folders(models_dir)]
    return choices


class MainWindow(QMainWindow):
    run_done = Signal()  # after a run's results are shown (tests wait on it)
    models_ready = Signal()  # after a load of models has finished (each pane loaded or showing why not)

    def __init__(
        self,
        settings: Settings,
        log: SessionLog | MemoryLog,
        notices: list[str] = (),
        settings_path=None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("FastSlow — fast and thinking, side by side")
        self.resize(1400, 920)
        self.settings = settings
        self.settings_path = settings_path
        n_panes = max(2, len(settings.pane_models))
        # The one door to the session: the window asks it for what it shows and tells it what the user wants.
        self.controller = SessionController.with_empty_panes(n_panes, settings, log, self)
        self.finished_runs: list[FinishedRun] = []  # every run that has ended this session
        self.live: dict[int, LiveRun] = {}  # the current (or latest) comparison's panes, from its updates only
        self._reopened: dict[int, int | None] = {}  # each pane's run reopened from the history: its id, to mark it
        self.last_results: list[RunResult] = []  # the latest comparison's finished records, pane order
        self._pane_states: dict[int, PaneSnapshot] = {}  # the latest snapshot each pane was shown
        self._run_known: str | None = None  # the known answer the running comparison was given
        self._plan_notes: dict[int, str] = {}
        self._samples: dict[int, list[RunResult]] = {}  # each pane's other samples (k samples, majority)
        self._seed = 0

        # -- top: the prompt and the comparison controls ---------------------------------
        self.notice = QLabel()
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("QLabel#notice { background: #fff4ce; padding: 6px; border-radius: 4px; }")
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Ask something… (Ctrl+Enter runs every pane, Esc cancels)")
        # Four lines, scrolling beyond: the panes get the height (the window must fit 1024×700).
        self.prompt.setFixedHeight(self.prompt.fontMetrics().lineSpacing() * 4 + 12)
        self.prompt.textChanged.connect(lambda: self._route_timer.start())
        self.mode = QComboBox()
        self.mode.addItem("Fair: one pane after another, all cores each", "fair")
        self.mode.addItem("Live: panes at once, cores split", "live")
        self.mode.setCurrentIndex(self.mode.findData(settings.mode))
        self.mode.setToolTip("Fair gives clean numbers; live lets you watch them race. Every number says which.")
        self.known_answer = QLineEdit()
        self.known_answer.setPlaceholderText("known answer (optional): each run is marked right or wrong")
        self.known_answer.setMaximumWidth(360)
        self.run_all_button = QPushButton("Run all  (Ctrl+Enter)")
        self.run_all_button.clicked.connect(self.run_all)
        self.cancel_button = QPushButton("Cancel  (Esc)")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        # RouteLLM's setting across the first two panes: the router sends each question to one of them.
        self.route_between = QCheckBox("Route: one pane answers")
        self.route_between.setToolTip(
            "The router sends each question to one pane: the first answers directly, the second thinks "
            "(often a thinking model on a server). Each side's expected time and energy, from its model's "
            "runs in the log, are shown before you run; a pane's own Run button still runs that pane.")
        self.route_between.toggled.connect(lambda _=None: self._update_route())
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Comparison:"))
        bar.addWidget(self.mode)
        bar.addWidget(self.route_between)
        bar.addWidget(self.known_answer)
        bar.addStretch(1)
        bar.addWidget(self.run_all_button)
        bar.addWidget(self.cancel_button)

        # -- panes and charts --------------------------------------------------------------
        self.panes: list[PaneView] = []
        panes_row = QSplitter(Qt.Horizontal)
        for i in range(n_panes):
            plan = DEFAULT_PLANS[i] if i < len(DEFAULT_PLANS) else DEFAULT_PLANS[0]
            pane = PaneView(i, PANE_TITLES[i % len(PANE_TITLES)], plan)
            pane.max_tokens.setValue(settings.max_tokens)
            pane.model_chosen.connect(self._on_model_chosen)
            pane.run_clicked.connect(lambda i: self.run_all(only=[i]))
            pane.cancel_clicked.connect(self.cancel_pane)
            pane.marked.connect(self._on_marked)
            pane.mode.currentIndexChanged.connect(lambda _=None: self._update_route())
            pane.override.currentIndexChanged.connect(lambda _=None: self._update_route())
            pane.max_tokens.valueChanged.connect(lambda _=None: self._route_timer.start())
            panes_row.addWidget(pane)
            self.panes.append(pane)
        self.charts = LiveCharts()
        # The comparison in one line, once the panes finish: what thinking cost and what it changed.
        self.verdict = QLabel()
        self.verdict.setObjectName("verdict")
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.verdict.setStyleSheet("QLabel#verdict { background: #eef4ff; padding: 6px; border-radius: 4px; "
                                   "font-weight: bold; }")
        self.verdict.setVisible(False)
        self.route_banner = QLabel()
        self.route_banner.setObjectName("routeBetween")
        self.route_banner.setWordWrap(True)
        self.route_banner.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.route_banner.setStyleSheet("QLabel#routeBetween { background: #f1f8ee; padding: 6px; border-radius: 4px; }")
        self.route_banner.setVisible(False)
        panes_box = QWidget()
        panes_layout = QVBoxLayout(panes_box)
        panes_layout.setContentsMargins(0, 0, 0, 0)
        panes_layout.addWidget(self.route_banner)
        panes_layout.addWidget(panes_row, 1)
        panes_layout.addWidget(self.verdict)
        compare_split = QSplitter(Qt.Vertical)
        compare_split.addWidget(panes_box)
        compare_split.addWidget(self.charts)
        compare_split.setSizes([600, 260])
        compare_split.setStretchFactor(0, 3)  # a smaller window takes its height from the charts first
        compare_split.setStretchFactor(1, 1)
        compare_split.setCollapsible(0, False)
        compare = QWidget()
        compare_layout = QVBoxLayout(compare)
        compare_layout.addWidget(self.notice)
        compare_layout.addWidget(self.prompt)
        compare_layout.addLayout(bar)
        compare_layout.addWidget(compare_split, 1)

        self.tradeoff = TradeoffChart()
        self.history = HistoryView(log)
        self.history.reopen_requested.connect(self.reopen)
        self.models = ModelManager(n_ctx=settings.n_ctx)
        self.models.models_changed.connect(self.refresh_model_choices)
        self.tabs = QTabWidget()
        self.tabs.addTab(compare, "Compare")
        self.tabs.addTab(self.tradeoff, "Trade-off")
        self.tabs.addTab(self.history, "History")
        self.scaling = ScalingView(scaling_folder())
        self.tabs.addTab(self.scaling, "Scaling")
        self.tabs.addTab(self.models, "Models")
        self.tabs.currentChanged.connect(self._on_tab)
        self.setCentralWidget(self.tabs)
        self._make_menus()
        self.statusBar().showMessage("Loading models…")

        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.run_all)
        QShortcut(QKeySequence("Ctrl+Enter"), self, activated=self.run_all)
        QShortcut(QKeySequence(Qt.Key_Escape), self, activated=self.cancel)

        self._route_timer = QTimer(self, singleShot=True, interval=250)
        self._route_timer.timeout.connect(self._update_route)
        self._stats_timer = QTimer(self, interval=STATS_MS)
        self._stats_timer.timeout.connect(self._refresh_stats)
        self._charts_timer = QTimer(self, interval=CHARTS_MS)
        self._charts_timer.timeout.connect(self._refresh_next_chart)
        self._chart_turn = 0
        # After a run, the charts are redrawn one per event-loop turn; the timer is the window's, so
        # it stops when the window closes and never touches a chart that is gone.
        self._final_charts = QTimer(self, singleShot=True, interval=40)
        self._final_charts.timeout.connect(self._refresh_final_chart)
        self._final_parts: list[str] = []
        self._export_worker = None
        self._store_choices: list[tuple[str, str]] = []  # what Ollama and LM Studio keep or serve, once found
        self._discovery = None  # the worker looking for them, while it runs
        self.remote_dialog: RemoteModelDialog | None = None

        c = self.controller
        c.pane_changed.connect(self._on_pane_changed)
        c.updates.connect(self._on_updates)
        c.run_finished.connect(self._on_run_finished)
        c.run_failed.connect(self._on_run_failed)
        c.busy_changed.connect(self._on_busy)
        c.loads_done.connect(self.models_ready.emit)
        c.loads_done.connect(self._say_energy_fixes)
        c.loads_done.connect(self._say_gpu_mismatches)
        c.loads_done.connect(self._update_route)
        self._energy_fixes_said = False
        self._mismatches_said: set[str] = set()
        self._lost_said = 0  # how many of the session's lost power sources have been said

        self.show_notices(list(notices))
        self.refresh_model_choices()
        self._update_route()

    # -- start-up -----------------------------------------------------------------------------

    def load_default_models(self) -> None:
        """Load each pane's model from the settings (the bundled pair on a first start)."""
        specs = {}
        for i, key in enumerate(self.settings.pane_models[: len(self.panes)]):
            spec = self._spec_for(i, key)
            if spec is not None:
                specs[i] = spec
        if not self.controller.load_models(specs):
            self.statusBar().showMessage("Busy: try again when the run ends")

    def _spec_for(self, index: int, key: str) -> ModelSpec | None:
        s = self.settings
        try:
            return resolve_pick(key, n_ctx=s.n_ctx, n_gpu_layers=s.n_gpu_layers, n_threads=s.n_threads)
        except EngineError as exc:
            self.panes[index].set_status(str(exc), error=True)
            return None

    def refresh_model_choices(self) -> None:
        """Fill each pane's picker: catalog and local models now; what Ollama and LM Studio keep or
        serve when a worker has looked (folders and servers are never read on the GUI thread)."""
        self._choices = model_choices()
        self.scaling.set_models(self._choices)
        self._fill_pickers()
        self.look_in_other_tools()

    def look_in_other_tools(self) -> None:
        if self._discovery is not None:
            return
        worker = _discovery_worker()
        worker.returned.connect(self._on_discovered)
        worker.finished.connect(self._discovery_ended)
        self._discovery = worker
        worker.start()

    def _discovery_ended(self) -> None:
        self._discovery = None

    def _on_discovered(self, choices: list[tuple[str, str]]) -> None:
        self._store_choices = choices
        self._fill_pickers()

    def _fill_pickers(self) -> None:
        listed = self._choices + self._store_choices
        keys = {key for _, key in listed}
        for i, pane in enumerate(self.panes):
            current = self.settings.pane_models[i] if i < len(self.settings.pane_models) else None
            # A remembered served or store model shows as itself while the look is under way, or its
            # server is down: the pane's choice is never silently turned into another model.
            extra = [(label_for(current), current)] if current and current not in keys else []
            pane.set_models(listed + extra + [(SERVED_LABEL, PICK_SERVED)], current)

    def _on_model_chosen(self, index: int, key: str) -> None:
        if key == PICK_SERVED:
            self.open_remote_dialog(index)
            return
        spec = self._spec_for(index, key)
        if spec is None:
            return
        models = list(self.settings.pane_models)
        while len(models) <= index:
            models.append(key)
        models[index] = key
        self.settings.pane_models = models
        self._fill_pickers()
        self.controller.load_models({index: spec})

    def open_remote_dialog(self, index: int) -> RemoteModelDialog:
        """"Served model…": a base URL and a model id; Load puts remote:<url>#<model> in the pane. Modal
        to the window (the listing still runs off the GUI thread); returns the dialog for tests."""
        current = self.settings.pane_models[index] if index < len(self.settings.pane_models) else ""
        url, model = "", ""
        if current.lower().startswith("remote:"):
            url, _, model = current[len("remote:"):].partition("#")
        dialog = RemoteModelDialog(url, model, self)
        dialog.setWindowModality(Qt.WindowModal)
        dialog.accepted.connect(lambda: self._on_model_chosen(index, dialog.chosen))
        dialog.finished.connect(lambda _: (self._fill_pickers(), dialog.deleteLater()))
        self.remote_dialog = dialog
        dialog.open()
        return dialog

    def _on_pane_changed(self, pane: PaneSnapshot) -> None:
        """A pane's model or run state changed: its button follows the run state; its status line
        says what became of its model, once per change (the same line shows its runs after that)."""
        before = self._pane_states.get(pane.index)
        self._pane_states[pane.index] = pane
        view = self.panes[pane.index]
        view.set_activity(pane.activity)
        if before is not None and before.load is pane.load:
            return
        if pane.load is PaneLoad.LOADING:
            view.set_status(f"Loading {pane.label}…")
        elif pane.load is PaneLoad.FAILED:
            view.set_status(pane.error or "", error=True)
        elif pane.load is PaneLoad.LOADED:
            info = pane.info
            fit = f" · {pane.fit.message()}" if pane.fit is not None and pane.fit.verdict != "fits" else ""
            style = "no native thinking (Thinking mode scaffolds it)" if pane.thinking_style == "none" else f"thinking: {pane.thinking_style}"
            view.set_status(f"{info.name} · {info.quantization} · {info.placement} · {style} · loaded in {info.load_s:.1f} s{fit}")
            view.status.setToolTip(info.offload_note)  # why this placement: what fit the GPU, or why none
            self.statusBar().showMessage(f"{info.name} ready")

    def show_notices(self, notices: list[str]) -> None:
        self.notice.setText("<br>".join(notices))
        self.notice.setVisible(bool(notices))

    def _add_notices(self, notices: list[str]) -> None:
        """Show these beside whatever is shown already."""
        said = [self.notice.text()] if self.notice.isVisible() and self.notice.text() else []
        self.show_notices(said + notices)

    def _say_lost_sources(self) -> None:
        """Once each: a power source that stopped answering mid-session."""
        lost = self.controller.lost_sources()
        if new := lost[self._lost_said:]:
            self._lost_said = len(lost)
            self._add_notices([f"Power source lost: {escape(line)}" for line in new])

    def _say_gpu_mismatches(self) -> None:
        """Once each, after a load: a GPU here that the llama.cpp build leaves idle, and its fix."""
        new = [line for line in self.controller.gpu_mismatches() if line not in self._mismatches_said]
        self._mismatches_said.update(new)
        self._add_notices([f"GPU idle: {escape(line)}" for line in new])

    def _say_energy_fixes(self) -> None:
        """Once: a power counter this machine has but cannot read, and how to unlock it (root-only
        RAPL, a missing package), so energy is not estimated in silence."""
        fixable = self.controller.energy_fixes()
        if self._energy_fixes_said or not fixable:
            return
        self._energy_fixes_said = True
        self._add_notices([f"Energy could be measured, not estimated — {escape(name)}: {escape(reason)}"
                           for name, reason in fixable])

    # -- running ------------------------------------------------------------------------------

    def run_all(self, only: list[int] | None = None) -> bool:
        prompt = self.prompt.toPlainText()
        if not prompt.strip():
            self.show_notices(["Type a question first: the prompt is empty."])
            return False
        if self.controller.busy:
            self.statusBar().showMessage("Still busy: wait for the models to load or the run to end")
            return False
        chosen = list(range(len(self.panes))) if only is None else list(only)
        between = self._between(prompt) if only is None and self.route_between.isChecked() else None
        if between is not None:
            chosen = [between.pane]
        requests, decisions = [], []
        try:
            for i, pane in enumerate(self.panes):
                plan = pane.plan(seed=self._seed)
                if between is not None and i == between.pane:  # the router's route on the pane it chose
                    plan = replace(plan, mode=THINKING_MODE if between.route == THINK else DIRECT_MODE,
                                   thinking_budget=plan.thinking_budget if plan.thinking_budget is not None
                                   else between.budget, override=None)
                request, decision = plan_request(prompt, plan, router=self.settings.router,
                                                 record=self.controller.model_record(i) if plan.mode == AUTO_MODE
                                                 else None, worth=self.settings.think_worth)
                requests.append(request)
                decisions.append(between if between is not None and i == between.pane else decision)
        except ValueError as exc:
            self.show_notices([escape(str(exc))])
            return False
        busy = self.controller.load_warning()  # others' load: the figures would read low
        self.show_notices([f"Busy machine: {escape(busy)}"] if busy else [])
        mode = self.mode.currentData()
        self.verdict.clear()
        self.verdict.setVisible(False)
        self.live = {i: LiveRun(i) for i in chosen}
        self._reopened = {}  # a new run: the panes' marks are of it, not of the history
        self._samples: dict[int, list[RunResult]] = {}  # each pane's other samples (k samples, majority)
        self.last_results = []
        for n, i in enumerate(chosen):
            self.panes[i].clear()
            if mode == "fair" and n:
                self.panes[i].show_waiting(f"Waiting: fair mode runs the panes one after another, "
                                           f"{self._pane_label(chosen[0])} first.")
        if between is not None:
            for i in (between.fast_pane, between.slow_pane):
                if i != between.pane:
                    self.panes[i].clear()
                    self.panes[i].set_status(escape(f"Not asked: the router sent this question to "
                                                    f"{self._pane_label(between.pane)} ({between.chosen.model})."))
        # What the plan asked that this pane's model cannot do, said beside its result.
        self._plan_notes = {i: escape(f"Min not held: {why}.") for i in chosen
                            if (why := minimum_unheld(requests[i], self.controller.pane(i).thinking_style))}
        self.charts.begin_comparison(now())
        known = self._run_known = self.known_answer.text().strip() or None
        if not self.controller.run(requests, decisions, only=chosen, known_answer=known, mode=mode):
            return False
        self._stats_timer.start()
        self._charts_timer.start()
        self.statusBar().showMessage(f"Running {len(chosen)} pane{'s' if len(chosen) != 1 else ''} ({mode} mode)…")
        return True

    def cancel(self) -> None:
        """Esc: stop every pane, those still waiting for their turn included."""
        if self.controller.cancel():
            self.statusBar().showMessage("Cancelling every pane…")

    def cancel_pane(self, index: int) -> None:
        """A pane's own Cancel button: that pane only; the others go on."""
        if self.controller.cancel([index]):
            self.panes[index].set_status("Cancelling…")

    def _on_updates(self, batch: list[RunUpdate]) -> None:
        for update in batch:
            if update.sample:  # another of the pane's k samples: kept for the vote, never mixed into its text
                if update.closing:
                    self._samples.setdefault(update.pane, []).append(update.result)
                continue
            live = self.live.get(update.pane)
            if live is None:
                continue
            live.apply(update)
            view = self.panes[update.pane]
            if update.pieces:
                view.append(update.pieces)
            if update.closing:
                self._show_finished(update.pane, live)
            elif not view.started:
                view.show_started()

    def _show_finished(self, i: int, live: LiveRun) -> None:
        """A pane's run has ended: everything it shows now comes from the record the log has."""
        r, view = live.result, self.panes[i]
        view.show_result(r, r.mode, self._run_known, note=self._plan_notes.get(i, ""))
        still = sorted(self.controller.running - {j for j, run in self.live.items() if run.done})
        if still:
            running = ", ".join(self._pane_label(j) for j in still)
            self.statusBar().showMessage(f"{self._pane_label(i)} {_ended(r)}; {running} still running…")

    def _refresh_stats(self) -> None:
        mode = self.controller.mode
        for i, stats in self.controller.live_figures(self.live, now()).items():
            self.panes[i].show_stats(stats, mode)

    def _all_runs(self) -> list[tuple[int, str, LiveRun]]:
        runs = [(f.pane, f.label, f.run) for f in self.finished_runs]
        if self.controller.busy:  # this comparison's runs, those that ended already included
            runs += [(i, self._pane_label(i), run) for i, run in self.live.items() if run.started]
        return runs

    def _pane_label(self, i: int) -> str:
        return PANE_TITLES[i % len(PANE_TITLES)]

    def _refresh_charts(self, part: str | None = None) -> None:
        self.charts.update_charts(self._all_runs(), self.controller.samples(), now(), part)

    def _refresh_next_chart(self) -> None:
        """While running, one chart per tick: each repaint stays short (see LiveCharts)."""
        self._chart_turn = (self._chart_turn + 1) % len(LiveCharts.PARTS)
        self._refresh_charts(LiveCharts.PARTS[self._chart_turn])

    def _refresh_final_chart(self) -> None:
        if self._final_parts:
            self._refresh_charts(self._final_parts.pop(0))
        if self._final_parts:
            self._final_charts.start()

    def _on_run_finished(self, results: list[RunResult]) -> None:
        self._stats_timer.stop()
        self._charts_timer.stop()
        self.last_results = list(results)
        for result in results:
            run = self.live.get(result.pane)
            if run is not None and not run.done:  # its closing update is always sent first; be safe
                run.result = result
                self._show_finished(result.pane, run)
            label = self._pane_label(result.pane)
            self.finished_runs.append(FinishedRun(result.pane, label, self.live[result.pane],
                                                  f"{label} · {run_kind(result)}", result.correct))
        self._show_verdict(results, self._run_known)
        for result in results:  # k samples, majority: the vote over the pane's samples, beside its first
            others = sorted(self._samples.get(result.pane, []), key=lambda r: r.conditions.sample)
            if others:
                every = [result, *others]
                vote = describe_vote([extract_answer(r.text) if r.status == "ok" else None for r in every])
                note = "<br>".join(filter(None, [self._plan_notes.get(result.pane, ""), escape(vote + "."),
                                                 escape(samples_line(every) + ".")]))
                self.panes[result.pane].show_result(result, result.mode, self._run_known, note=note)
        self._final_parts = list(LiveCharts.PARTS)  # one chart per event-loop turn, as while running
        self._final_charts.start()
        self.tradeoff.set_runs([(f.kind, f.run.result, f.correct) for f in self.finished_runs])
        self._seed += 1
        if notice := _log_notice(self.controller.log_state()):
            self.show_notices([escape(notice)])
        self._say_lost_sources()
        self.statusBar().showMessage(_run_summary([(self._pane_label(r.pane), r) for r in results]))
        self._update_route()  # the runs just logged move each side's expected cost
        self.run_done.emit()

    def _show_verdict(self, results: list[RunResult], known: str | None) -> None:
        # Each run by its pane's name: the bold title a person sees above it, and the status bar's.
        line = verdict(results, known, [self._pane_label(r.pane) for r in results])
        self.verdict.setText(escape(line))
        self.verdict.setVisible(bool(line))

    def _on_run_failed(self, message: str) -> None:
        self._stats_timer.stop()
        self._charts_timer.stop()
        self.show_notices([escape(f"The run stopped: {message}")])
        self.statusBar().showMessage("The run stopped")
        self.run_done.emit()

    def _on_busy(self, busy: bool) -> None:
        # Each pane's own button follows its snapshot (pane_changed); these two are the window's.
        self.run_all_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy and bool(self.controller.running))

    # -- the router banner ----------------------------------------------------------------------

    def _between(self, prompt: str):
        """The router's pane for `prompt` across the first two (Route: one pane answers), or None."""
        if len(self.panes) < 2 or not prompt.strip():
            return None
        return self.controller.route_between(prompt, self.settings.router, self.panes[1].max_tokens.value())

    def _on_marked(self, pane: int, rating: int) -> None:
        """A person marked a pane's answer right or wrong (0: took the mark back): into the log, and
        Auto's decisions, which read the model's record, are shown again."""
        try:
            stored = self._reopened.get(pane)
            if stored is not None:  # a run reopened from the history: its row in the log it came from
                self.controller.mark_stored(self.history.log, stored, rating or None)
            else:
                self.controller.mark(pane, rating or None)
        except ValueError as exc:
            self.show_notices([escape(str(exc))])
            return
        self.panes[pane].show_mark(rating or None)
        self._update_route()

    def _update_route(self) -> None:
        prompt = self.prompt.toPlainText()
        if self.route_between.isChecked():
            between = self._between(prompt)
            if between is not None:
                text = between.banner()
            elif not prompt.strip():
                text = "type a question: the router sends it to one of the first two panes, and says why"
            else:
                text = "load a model in each of the first two panes first"
            self.route_banner.setText(escape(f"Route: {text}"))
        self.route_banner.setVisible(self.route_between.isChecked())
        for pane in self.panes:
            if pane.mode.currentData() != AUTO_MODE:
                continue
            if not prompt.strip():
                pane.show_decision("type a question to see what the router decides, and why")
                continue
            # Asked with the pane's own max tokens: a budget it could not hold is never proposed.
            decision = route(prompt, self.settings.router, pane.max_tokens.value(),
                             self.controller.model_record(pane.index), self.settings.think_worth)
            pane.show_decision(describe_decision(decision, pane.override.currentData()))

    # -- history ------------------------------------------------------------------------------

    def reopen(self, records: list[dict]) -> None:
        """Show a past prompt and its runs in the panes: text, figures and marks from the stored
        records, nothing left of what the panes showed before (read-only until the next run)."""
        if not records:
            return
        prompt = records[0].get("prompt", {})
        self.prompt.setPlainText(prompt.get("text", "") or "")
        self.known_answer.setText(prompt.get("known_answer") or "")
        for pane in self.panes:
            pane.clear()
        self._reopened = {}
        results = []
        for record in records:
            run = record.get("run", {})
            pane = run.get("pane") or 0
            if not 0 <= pane < len(self.panes):
                continue
            result = result_from_record(record)
            results.append(result)
            note = escape(f"From the history: {result.model or '?'}, {result.status}, {result.mode} mode, "
                          f"{run.get('created_at', '')[:19].replace('T', ' ')}")
            self.panes[pane].show_result(result, result.mode, prompt.get("known_answer"), note=note)
            self.panes[pane].show_mark(run.get("rating"), markable=result.status == "ok" and run.get("id") is not None)
            self._reopened[pane] = run.get("id")
        self._show_verdict(results, prompt.get("known_answer"))
        self.tabs.setCurrentIndex(0)

    # -- menus, export, settings ---------------------------------------------------------------

    def _make_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        export_menu = file_menu.addMenu("Export this session")
        for fmt in FORMATS:
            action = QAction(EXPORT_FILTERS[fmt].split(" (")[0], self)
            action.triggered.connect(lambda _=False, f=fmt: self.export_session(f))
            export_menu.addAction(action)
        self.save_memory_action = QAction("Save runs kept in memory to a log file…", self)
        self.save_memory_action.triggered.connect(lambda: self.save_memory_log())
        file_menu.addAction(self.save_memory_action)
        file_menu.addSeparator()
        quit_action = QAction("Quit", self, shortcut=QKeySequence.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        settings_action = QAction("Settings…", self, shortcut=QKeySequence.Preferences)
        settings_action.triggered.connect(self.open_settings)
        self.menuBar().addMenu("&Edit").addAction(settings_action)
        about_action = QAction("About FastSlow…", self)
        about_action.setMenuRole(QAction.AboutRole)  # on macOS, where the application menu has it
        about_action.triggered.connect(self.open_about)
        self.menuBar().addMenu("&Help").addAction(about_action)

    def export_session(self, fmt: str, path: str | None = None) -> bool:
        """Export the current session (asks where, unless path is given); runs off the GUI thread."""
        state = self.controller.log_state()
        log, session_id = state.log, state.session_id
        if log is None or session_id is None:
            QMessageBox.information(self, "Nothing to export", "Run a comparison first: this session has no runs yet.")
            return False
        if path is None:
            path = save_file_name(self, "Export session", f"fastslow-session-{session_id}.{fmt if fmt != 'sqlite' else 'db'}",
                                  EXPORT_FILTERS[fmt])
            if not path:
                return False
        self._export_worker = start_export(self, log, fmt, path, session_id, self.statusBar().showMessage)
        return True

    def save_memory_log(self, path: str | None = None) -> bool:
        """Write the runs kept in memory (the log file failed) into a log file that works."""
        log = self.controller.log_state().log
        if not isinstance(log, MemoryLog):
            self.statusBar().showMessage("Every run is already in the log file")
            return False
        if path is None:
            default = str(resolve_db_path(settings_value=self.settings.db_path()))
            path = save_file_name(self, "Save runs to a log", default, "FastSlow log (*.db)")
            if not path:
                return False
        try:
            with SessionLog.open(path) as target:
                saved, skipped = log.save_to(target)
        except StoreError as exc:
            QMessageBox.warning(self, "Not saved", f"The runs are still in memory: {exc}")
            return False
        mark_saved(log)
        self.show_notices([])
        self.statusBar().showMessage(f"Saved {saved} runs to {path}" + (f" ({skipped} were there already)" if skipped else ""))
        return True

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self.settings_path, self)
        if dialog.exec():
            self.apply_settings(dialog.saved)

    def open_about(self) -> AboutDialog:
        """The version and `fastslow doctor`'s report; modeless, so the report arrives while it is open."""
        dialog = AboutDialog(self)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def apply_settings(self, settings: Settings) -> None:
        """Threads apply from the next run, telemetry at once (between runs); GPU layers and context
        when a model is next loaded; the data folder at the next start."""
        self.settings = settings
        self.models.n_ctx = settings.n_ctx
        if self.controller.apply_settings(settings):
            self._lost_said = 0  # a fresh sampler: its losses are its own
        self.statusBar().showMessage(
            "Settings saved: threads and telemetry apply now; GPU layers and context when a model is "
            "next loaded; the data folder at the next start"
        )

    def _on_tab(self, index: int) -> None:
        if self.tabs.widget(index) is self.history:
            self.history.refresh()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Closing mid-run cancels the runs and stops every worker process before the window goes;
        runs kept only in memory (the log file failed) are offered a save first."""
        if self.controller.log_state().waiting:  # a busy log file: give it a moment, then keep the runs in memory
            self.statusBar().showMessage("Writing the last runs to the session log…")
            self.controller.flush_log(10.0)
        if not confirm_close(self, self.controller.log_state().log, save=self.save_memory_log):
            event.ignore()
            return
        self._stats_timer.stop()
        self._charts_timer.stop()
        self._final_charts.stop()
        self.models.cancel_downloads()
        if self._discovery is not None:  # its answer would reach a window that is gone
            for signal in (self._discovery.returned, self._discovery.finished):
                try:
                    signal.disconnect()
                except (RuntimeError, TypeError):
                    pass
        self.scaling.stop()
        self.controller.shutdown()
        super().closeEvent(event)


@thread_worker(start_thread=False, ignore_errors=True)  # a failed look lists nothing more; the Models tab says why
def _discovery_worker() -> list[tuple[str, str]]:
    return store_choices(discover())


def _ended(r: RunResult) -> str:
    if r.status == "ok":
        return "finished without an answer" if r.no_answer else "finished"
    if r.status == "cancelled":
        return "cancelled before it started" if r.total_s is None else "cancelled"
    return "failed"


def _run_summary(runs: list[tuple[str, RunResult]]) -> str:
    """The status bar once every pane has ended: "Done" only when each answered."""
    if runs and all(r.status == "ok" and not r.no_answer for _n, r in runs):
        return "Done"
    return "Ended: " + "; ".join(f"{name} {_ended(r)}" for name, r in runs)


def _log_notice(state: LogState) -> str | None:
    """What the window says after a run when its rows are not (yet) in the log file."""
    if state.in_memory:
        reason = f"The session log failed ({state.error}); " if state.error else ""
        return f"{reason}runs are kept in memory: File → Save runs kept in memory to a log file."
    if waiting := state.waiting:
        return (f"The session log is busy ({state.error}): {waiting} write{'s wait' if waiting != 1 else ' waits'} "
                "and go in as soon as it is free; nothing is lost.")
    return None

