"""Settings: threads, GPU layers, context, telemetry rate, TDP, data folder; saved when accepted.

The fields cannot take values that would only hurt: threads stop at the machine's logical CPUs
and the context at MAX_N_CTX, each with a hint saying what the numbers mean; a data folder that
cannot hold the log is refused on Save with the reason, and $FASTSLOW_DB, which wins over the
folder, is named when it is set.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.hardware import physical_cores
from app.settings import (
    MAX_GPU_LAYERS, MAX_N_CTX, MAX_THINK_WORTH, MIN_THINK_WORTH, Settings, check_data_dir, logical_cpus, save_settings,
)
from app.store.paths import ENV_VAR as DB_ENV_VAR
from app.store.paths import env_db_path
from app.ui.file_dialogs import existing_directory

HINT_STYLE = ""  # the theme's own text colour
WARN_STYLE = "color: #b00020"
GPU_CHOICES = (
    ("As many layers as fit the GPU (auto)", "auto"),
    ("Every layer", "all"),
    ("None: the CPU only", "cpu"),
    ("This many:", "count"),
)


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings, self.path = settings, path
        self.saved: Settings | None = None
        self.physical, self.logical = physical_cores(), logical_cpus()
        self.threads = QSpinBox()
        self.threads.setRange(0, self.logical)
        self.threads.setSpecialValueText(f"all physical cores ({self.physical})")
        self.threads.setValue(settings.n_threads or 0)
        self.threads_hint = _hint()
        self.threads.valueChanged.connect(self._say_threads)
        self._say_threads()
        # GPU offload: a choice, and a count only where the user picks one.
        self.gpu_mode = QComboBox()
        for text, data in GPU_CHOICES:
            self.gpu_mode.addItem(text, data)
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(1, MAX_GPU_LAYERS)
        self.gpu_layers.setSuffix(" layers")
        layers = settings.n_gpu_layers
        choice = "auto" if layers is None else "all" if layers == -1 else "cpu" if layers == 0 else "count"
        self.gpu_mode.setCurrentIndex(self.gpu_mode.findData(choice))
        self.gpu_layers.setValue(layers if choice == "count" else 20)
        self.gpu_mode.currentIndexChanged.connect(self._say_gpu)
        self._say_gpu()
        gpu = QHBoxLayout()
        gpu.addWidget(self.gpu_mode, 1)
        gpu.addWidget(self.gpu_layers)
        self.n_ctx = QSpinBox()
        self.n_ctx.setRange(256, MAX_N_CTX)
        self.n_ctx.setSingleStep(1024)
        self.n_ctx.setValue(settings.n_ctx)
        self.n_ctx_hint = _hint(
            f"At most {MAX_N_CTX} tokens. Each model is capped at its own trained context anyway, "
            "and a longer context takes more memory."
        )
        self.sample_hz = QDoubleSpinBox()
        self.sample_hz.setRange(0.5, 100)
        self.sample_hz.setSuffix(" per second")
        self.sample_hz.setValue(settings.sample_hz)
        self.tdp = QDoubleSpinBox()
        self.tdp.setRange(0, 2000)
        self.tdp.setDecimals(0)
        self.tdp.setSpecialValueText("guess from the CPU")
        self.tdp.setSuffix(" W")
        self.tdp.setValue(settings.tdp_w or 0)
        self.data_dir = QLineEdit(settings.data_dir or "")
        self.data_dir.setPlaceholderText("the platform's data folder")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        folder = QHBoxLayout()
        folder.addWidget(self.data_dir, 1)
        folder.addWidget(browse)
        env_db = env_db_path()
        self.data_dir_hint = _hint(
            f"${DB_ENV_VAR} is set ({env_db}): the session log is there, not in this folder, while it is set."
            if env_db
            else f"The session log moves here at the next start; ${DB_ENV_VAR} or --db, when given, win over it."
        )
        if env_db:
            self.data_dir_hint.setStyleSheet(WARN_STYLE)
        self.router = QComboBox()
        self.router.addItem("Heuristic (hand-set features)", "heuristic")
        self.router.addItem("Classifier (trained: python -m app.eval.train_router)", "classifier")
        self.router.setCurrentIndex(max(self.router.findData(settings.router), 0))
        self.think_worth = QDoubleSpinBox()
        self.think_worth.setRange(MIN_THINK_WORTH, MAX_THINK_WORTH)
        self.think_worth.setDecimals(1)
        self.think_worth.setSuffix("× a direct answer's energy")
        self.think_worth.setValue(settings.think_worth)
        self.think_worth_hint = _hint("Auto thinks when the right answers thinking is expected to add, from the "
                                      "model's own checked answers, pay for what thinking costs it.")
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020")
        form = QFormLayout(self)
        form.addRow("CPU threads", self.threads)
        form.addRow(self.threads_hint)
        form.addRow("GPU offload", gpu)
        form.addRow("Context size", self.n_ctx)
        form.addRow(self.n_ctx_hint)
        form.addRow("Telemetry rate", self.sample_hz)
        form.addRow("CPU TDP (for the energy estimate)", self.tdp)
        form.addRow("Data folder (session log)", folder)
        form.addRow(self.data_dir_hint)
        form.addRow("Router for Auto mode", self.router)
        form.addRow("One more right answer is worth", self.think_worth)
        form.addRow(self.think_worth_hint)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.Save | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _say_threads(self) -> None:
        """The machine's cores beside the field; a warning once threads pass the physical cores."""
        cores = (f"This machine has {_count(self.physical, 'physical core')} and "
                 f"{_count(self.logical, 'logical CPU')}; more threads than physical cores usually "
                 "slows llama.cpp down.")
        over = self.threads.value() > self.physical
        self.threads_hint.setText(f"{self.threads.value()} threads: {cores}" if over else cores)
        self.threads_hint.setStyleSheet(WARN_STYLE if over else HINT_STYLE)

    def _say_gpu(self) -> None:
        self.gpu_layers.setEnabled(self.gpu_mode.currentData() == "count")

    def _gpu_layers(self) -> int | None:
        choice = self.gpu_mode.currentData()
        return {"auto": None, "all": -1, "cpu": 0}.get(choice, self.gpu_layers.value())

    def _browse(self) -> None:
        folder = existing_directory(self, "Data folder", self.data_dir.text())
        if folder:
            self.data_dir.setText(folder)

    def values(self) -> Settings:
        return replace(
            self.settings,
            n_threads=self.threads.value() or None,
            n_gpu_layers=self._gpu_layers(),
            n_ctx=self.n_ctx.value(),
            sample_hz=self.sample_hz.value(),
            tdp_w=self.tdp.value() or None,
            data_dir=self.data_dir.text().strip() or None,
            router=self.router.currentData(),
            think_worth=self.think_worth.value(),
        )

    def accept(self) -> None:
        try:
            settings = self.values()
            # Creates the folder and writes in it: a folder that cannot hold the log is caught now,
            # not at the next start.
            unusable = check_data_dir(settings.data_dir)
            if unusable:
                raise ValueError(unusable)
            save_settings(settings, self.path)
        except (ValueError, OSError) as exc:
            self.error.setText(f"Not saved: {exc}")
            return
        self.saved = settings
        super().accept()


def _hint(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(HINT_STYLE)
    return label


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
