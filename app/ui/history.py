"""History: past runs from the session log; reopen a prompt's runs into the panes, export a session."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from superqt.utils import thread_worker

from app.store import MemoryLog, SessionLog, StoreError
from app.store.export import FORMATS, export
from app.store.report import answer_words, kind_name, route_words
from app.ui.file_dialogs import save_file_name

# What ran (model; fair or live; direct, thinking or scaffolded thinking), what the router decided,
# how it ended and whether it was right: the pane a run sat in tells a reader nothing.
COLUMNS = ("Run", "Session", "When", "Prompt", "Model", "Mode", "Kind", "Route", "Status", "Finish", "Answer",
           "Tokens", "TTFT s", "Tokens/s", "Total s", "Energy J", "Energy source")
LIMIT = 1000  # the newest runs; the export holds them all


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


class HistoryView(QWidget):
    reopen_requested = Signal(object)  # list of run records of one prompt

    def __init__(self, log: SessionLog | MemoryLog, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.log = log
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.doubleClicked.connect(lambda _=None: self.reopen_selected())
        self.message = QLabel()
        self.reopen_button = QPushButton("Reopen in the panes")
        self.reopen_button.clicked.connect(self.reopen_selected)
        self.format = QComboBox()
        for fmt in FORMATS:
            self.format.addItem(fmt.upper() if fmt != "sqlite" else "SQLite", fmt)
        self.export_button = QPushButton("Export the selected session…")
        self.export_button.clicked.connect(lambda: self.export_selected())
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        buttons = QHBoxLayout()
        for widget in (self.reopen_button, self.format, self.export_button, refresh):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addWidget(self.table, 1)
        self._runs = []
        self._export = None

    def refresh(self) -> None:
        try:
            self._runs = self.log.list_runs(limit=LIMIT)
        except StoreError as exc:
            self.message.setText(f"The session log cannot be read: {exc}")
            return
        where = "in memory only" if isinstance(self.log, MemoryLog) else self.log.path
        self.message.setText(f"{len(self._runs)} runs (newest first) · log: {where}")
        self.table.setRowCount(len(self._runs))
        for row, run in enumerate(self._runs):
            values = (run.id, run.session_id, run.created_at[:19].replace("T", " "), run.prompt[:80],
                      run.model, run.mode, kind_name(run), route_words(run.route, run.route_budget) or None,
                      run.status, run.finish_reason, answer_words(run.correct, run.no_answer), run.n_generated,
                      run.ttft_s, run.decode_tps, run.total_s, run.energy_j, run.energy_source or None)
            why = f"No answer: {run.no_answer}." if run.no_answer else ""
            for col, value in enumerate(values):
                item = QTableWidgetItem(_cell(value))
                if why and COLUMNS[col] in ("Status", "Answer"):
                    item.setToolTip(why)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()

    def selected(self):
        rows = self.table.selectionModel().selectedRows()
        return self._runs[rows[0].row()] if rows else None

    def reopen_selected(self) -> bool:
        run = self.selected()
        if run is None:
            self.message.setText("Select a run first.")
            return False
        try:
            record = self.log.run_record(run.id)
            prompt_id = record["prompt"]["id"]
            records = [r for r in self.log.records(run.session_id) if r["prompt"]["id"] == prompt_id]
        except StoreError as exc:
            self.message.setText(f"Could not read that run: {exc}")
            return False
        self.reopen_requested.emit(records)
        return True

    def export_selected(self, path: str | None = None) -> bool:
        run = self.selected()
        if run is None:
            self.message.setText("Select a run of the session to export first.")
            return False
        fmt = self.format.currentData()
        if path is None:
            suffix = "db" if fmt == "sqlite" else fmt
            path = save_file_name(self, "Export session", f"fastslow-session-{run.session_id}.{suffix}")
            if not path:
                return False
        self._export = start_export(self, self.log, fmt, path, run.session_id, self.message.setText)
        return True


def start_export(parent: QWidget, log, fmt: str, path: str, session_id: int, report: Callable[[str], None]):
    """Export a session off the GUI thread; report() gets the outcome, a dialog any failure."""
    worker = _export_worker(log, fmt, path, session_id)
    worker.returned.connect(lambda n: report(f"Exported {n} runs of session {session_id} to {path}"))
    worker.errored.connect(
        lambda exc: QMessageBox.warning(parent, "Export failed", f"Could not export to {path}: {exc}")
    )
    worker.start()
    return worker  # the caller keeps it, so it is not collected mid-export


@thread_worker(start_thread=False, ignore_errors=True)  # errored is handled: no re-raise
def _export_worker(log, fmt: str, path: str, session_id: int) -> int:
    return export(log, fmt, path, session_id=session_id)
