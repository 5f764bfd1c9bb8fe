"""Settings: threads, GPU layers, context, telemetry rate, TDP, data folder; saved when accepted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.hardware import physical_cores
from app.settings import Settings, save_settings


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings, self.path = settings, path
        self.saved: Settings | None = None
        self.threads = QSpinBox()
        self.threads.setRange(0, 512)
        self.threads.setSpecialValueText(f"all physical cores ({physical_cores()})")
        self.threads.setValue(settings.n_threads or 0)
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(-1, 1000)
        self.gpu_layers.setSpecialValueText("all")
        self.gpu_layers.setValue(settings.n_gpu_layers)
        self.n_ctx = QSpinBox()
        self.n_ctx.setRange(256, 1_048_576)
        self.n_ctx.setSingleStep(1024)
        self.n_ctx.setValue(settings.n_ctx)
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
        self.router = QComboBox()
        self.router.addItem("Heuristic (hand-set features)", "heuristic")
        self.router.addItem("Classifier (trained: python -m app.routing.train)", "classifier")
        self.router.setCurrentIndex(max(self.router.findData(settings.router), 0))
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020")
        form = QFormLayout(self)
        form.addRow("CPU threads", self.threads)
        form.addRow("GPU layers", self.gpu_layers)
        form.addRow("Context size", self.n_ctx)
        form.addRow("Telemetry rate", self.sample_hz)
        form.addRow("CPU TDP (for the energy estimate)", self.tdp)
        form.addRow("Data folder (session log)", folder)
        form.addRow("Router for Auto mode", self.router)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.Save | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Data folder", self.data_dir.text())
        if folder:
            self.data_dir.setText(folder)

    def values(self) -> Settings:
        return replace(
            self.settings,
            n_threads=self.threads.value() or None,
            n_gpu_layers=self.gpu_layers.value(),
            n_ctx=self.n_ctx.value(),
            sample_hz=self.sample_hz.value(),
            tdp_w=self.tdp.value() or None,
            data_dir=self.data_dir.text().strip() or None,
            router=self.router.currentData(),
        )

    def accept(self) -> None:
        try:
            settings = self.values()
            save_settings(settings, self.path)
        except (ValueError, OSError) as exc:
            self.error.setText(f"Not saved: {exc}")
            return
        self.saved = settings
        super().accept()
