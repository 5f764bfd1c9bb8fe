"""Help › About FastSlow…: the version, and `fastslow doctor`'s report of this machine — what
llama.cpp was built for and sees, the GPUs here, MLX, the energy sources, and every mismatch with
its fix — as selectable text with a Copy button (for a bug report).

The report is read in a process of its own: asking llama.cpp for its devices makes a CUDA build
take a GPU context, memory the app's process would hold for as long as it runs and that the
workers' offload plans count on. A spawned process also works in the frozen app (its entry point
calls freeze_support, as for the workers), where `python -m app.cli` does not.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from app import __version__, doctor

READING = "Asking llama.cpp and this system's GPU tools…"
WARN_STYLE = "color: #b00020"
REPORT_TIMEOUT_S = 60.0  # the tools each time out sooner; this only bounds a stuck process


def doctor_in_own_process() -> str:
    """`fastslow doctor`'s text, read by a spawned process that exits when it is done."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(doctor.report_text).result(timeout=REPORT_TIMEOUT_S)


class AboutDialog(QDialog):
    report_read = Signal(str)

    def __init__(self, parent: QWidget | None = None, read: Callable[[], str] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About FastSlow")
        self.resize(820, 560)
        header = QLabel(f"<b>FastSlow {__version__}</b> — a fast model and a thinking model side by side, "
                        "with honest numbers.<br>What this machine runs models on (the same as "
                        "<code>fastslow doctor</code>):")
        header.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.warning = QLabel()  # shown when the report has a mismatch: a GPU left idle
        self.warning.setStyleSheet(WARN_STYLE)
        self.warning.setWordWrap(True)
        self.warning.setVisible(False)
        self.report = QPlainTextEdit(READING)
        self.report.setReadOnly(True)
        self.report.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.TextSelectableByKeyboard)
        self.report.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.report.setLineWrapMode(QPlainTextEdit.NoWrap)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setEnabled(False)  # nothing worth copying until the report is in
        self.copy_button.clicked.connect(self.copy)
        buttons.addButton(self.copy_button, QDialogButtonBox.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (header, self.warning, self.report, buttons):
            layout.addWidget(widget)
        self.report_read.connect(self._show)
        # Off the GUI thread: importing llama.cpp and asking the tools takes a second or more.
        threading.Thread(target=self._read, args=(read or doctor_in_own_process,), name="about-doctor",
                         daemon=True).start()

    def _read(self, read: Callable[[], str]) -> None:
        try:
            text = read()
        except Exception as exc:  # noqa: BLE001 — said in the dialog instead of a report
            text = f"The facts could not be read: {type(exc).__name__}: {exc}\nRun `fastslow doctor` in a terminal."
        try:
            self.report_read.emit(text)
        except RuntimeError:  # the dialog was closed and deleted before the report came
            pass

    def _show(self, text: str) -> None:
        self.report.setPlainText(text)
        self.copy_button.setEnabled(True)
        found = sum(1 for line in text.splitlines() if line.startswith("  ✗ "))
        self.warning.setText(f"{found} mismatch{'es' if found != 1 else ''} between this install and this "
                             "machine: each fix is at the end of the report" if found else "")
        self.warning.setVisible(bool(found))

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.report.toPlainText())  # its first line names the version
        self.copy_button.setText("Copied")
