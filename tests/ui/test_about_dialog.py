"""Help › About FastSlow…: the version and `fastslow doctor`'s report, selectable, copied by one
button; read from a stand-in where the test is about the dialog, from this machine where it is
about the report being the doctor's."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

import app.ui.about_dialog as about_module
from app.doctor import MlxState, examine, format_report
from app.engines.devices import Device, LlamaBuild
from app.telemetry.sources import Detected
from app.ui.about_dialog import READING, AboutDialog

CPU = Device("CPU", "AMD EPYC", "cpu", "CPU", 20 << 30, 24 << 30)


def stood_in_report(nvidia_smi: str | None = "NVIDIA GeForce RTX 4070, 12282 MiB, 550.54.14\n") -> str:
    """The doctor's text for a CPU build on a machine whose nvidia-smi reports a card."""
    report = examine(lambda argv: nvidia_smi if argv[0] == "nvidia-smi" else None,
                     build=lambda: LlamaBuild("0.3.36", ("CPU",), (CPU,), supports_offload=False),
                     energy=lambda: Detected(), mlx=lambda: MlxState(False, False, note="not here"),
                     system="Linux", machine="x86_64")
    return format_report(report)


@pytest.fixture
def open_dialog(qtbot):
    def make(read) -> AboutDialog:
        dialog = AboutDialog(read=read)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitUntil(lambda: dialog.report.toPlainText() != READING, timeout=60_000)
        return dialog

    return make


def test_it_shows_the_report_with_its_mismatch_and_copies_it(open_dialog, qtbot):
    text = stood_in_report()
    dialog = open_dialog(lambda: text)
    assert dialog.report.toPlainText() == text
    assert dialog.report.isReadOnly()
    assert dialog.report.textInteractionFlags() & Qt.TextSelectableByMouse
    assert dialog.warning.isVisible() and dialog.warning.text().startswith("1 mismatch between this install")
    assert "run `make setup LLAMA_BACKEND=cuda`" in dialog.report.toPlainText()
    assert dialog.copy_button.isEnabled()
    qtbot.mouseClick(dialog.copy_button, Qt.LeftButton)
    assert QGuiApplication.clipboard().text() == text
    assert dialog.copy_button.text() == "Copied"


def test_without_a_mismatch_no_warning_is_shown(open_dialog):
    dialog = open_dialog(lambda: stood_in_report(nvidia_smi=None))
    assert "Mismatches: none" in dialog.report.toPlainText()
    assert not dialog.warning.isVisible()


def test_a_report_that_cannot_be_read_says_so_and_what_to_run(open_dialog):
    def broken() -> str:
        raise TimeoutError("the doctor took too long")

    dialog = open_dialog(broken)
    assert dialog.report.toPlainText() == ("The facts could not be read: TimeoutError: the doctor took too long\n"
                                           "Run `fastslow doctor` in a terminal.")


def test_on_this_machine_it_shows_what_fastslow_doctor_says(open_dialog):
    # The real reader: `fastslow doctor` in a spawned process of its own (no llama.cpp in the app's).
    loaded_before = "llama_cpp" in sys.modules  # another test of this process may have loaded it
    dialog = open_dialog(None)
    shown = dialog.report.toPlainText()
    assert shown.startswith("FastSlow ") and "\nllama.cpp: llama-cpp-python " in shown
    for section in ("GPUs the system reports:", "Energy sources:", "Mismatches"):
        assert f"\n{section}" in shown
    assert loaded_before or "llama_cpp" not in sys.modules  # the app's process never loads llama.cpp


def test_the_help_menu_opens_it(make_window, monkeypatch, qtbot):
    monkeypatch.setattr(about_module, "doctor_in_own_process", stood_in_report)
    window = make_window(load=False)
    [help_menu] = [a.menu() for a in window.menuBar().actions() if a.text() == "&Help"]
    [about] = [a for a in help_menu.actions() if a.text() == "About FastSlow…"]
    about.trigger()
    dialog = window.findChild(AboutDialog)
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: "Mismatches:" in dialog.report.toPlainText(), timeout=10_000)
