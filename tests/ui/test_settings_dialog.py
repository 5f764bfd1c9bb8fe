"""The settings dialog, driven as a user would: see the values, change them, save, fail to save, cancel."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from app.hardware import physical_cores
from app.settings import Settings, load_settings
from app.ui.settings_dialog import SettingsDialog

RED = "#b00020"


@pytest.fixture
def make_dialog(qtbot):
    def make(settings: Settings, path: Path | None) -> SettingsDialog:
        dialog = SettingsDialog(settings, path)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitExposed(dialog)
        return dialog

    return make


def button(dialog: SettingsDialog, which) -> object:
    return dialog.findChild(QDialogButtonBox).button(which)


def save(qtbot, dialog: SettingsDialog) -> None:
    qtbot.mouseClick(button(dialog, QDialogButtonBox.Save), Qt.LeftButton)


def type_into(qtbot, field, text: str) -> None:
    field.selectAll()
    qtbot.keyClicks(field, text)


def custom() -> Settings:
    return Settings(n_threads=3, n_gpu_layers=-1, n_ctx=8192, sample_hz=5.0, tdp_w=45.0,
                    data_dir="/srv/fastslow", mode="live", max_tokens=77,
                    pane_models=["gemma3-270m", "smollm2-135m", "qwen3-0.6b"])


def test_the_dialog_shows_the_settings_it_was_given(make_dialog, tmp_path):
    dialog = make_dialog(custom(), tmp_path / "settings.json")
    assert dialog.windowTitle() == "Settings"
    assert dialog.threads.value() == 3
    assert dialog.gpu_layers.value() == -1 and dialog.gpu_layers.text() == "all"
    assert dialog.n_ctx.value() == 8192
    assert dialog.sample_hz.value() == 5.0
    assert dialog.tdp.value() == 45.0
    assert dialog.data_dir.text() == "/srv/fastslow"
    assert dialog.error.text() == "" and dialog.saved is None
    assert dialog.values() == custom()  # shown and unchanged: the same settings come back

    defaults = make_dialog(Settings(), tmp_path / "settings.json")
    assert defaults.threads.text() == f"all physical cores ({physical_cores()})"
    assert defaults.gpu_layers.value() == 0
    assert defaults.n_ctx.value() == 4096
    assert defaults.tdp.text() == "guess from the CPU"
    assert defaults.data_dir.text() == "" and defaults.data_dir.placeholderText() == "the platform's data folder"
    assert defaults.values() == Settings()


def test_changing_values_and_saving_writes_the_file(qtbot, make_dialog, tmp_path):
    path = tmp_path / "config" / "settings.json"  # its folder does not exist yet
    original = custom()
    dialog = make_dialog(original, path)
    type_into(qtbot, dialog.threads, "4")
    type_into(qtbot, dialog.n_ctx, "2048")
    type_into(qtbot, dialog.tdp, "65")
    type_into(qtbot, dialog.data_dir, f"  {tmp_path / 'data'}  ")
    save(qtbot, dialog)

    assert dialog.result() == QDialog.Accepted and not dialog.isVisible()
    assert dialog.error.text() == ""
    loaded = load_settings(path)
    assert loaded.problem is None
    assert dialog.saved == loaded.settings
    assert loaded.settings.n_threads == 4 and loaded.settings.n_ctx == 2048 and loaded.settings.tdp_w == 65.0
    assert loaded.settings.data_dir == str(tmp_path / "data")  # trimmed
    assert loaded.settings.db_path() == tmp_path / "data" / "fastslow.db"
    # What the dialog does not show is kept as it was.
    assert (loaded.settings.mode, loaded.settings.max_tokens, loaded.settings.pane_models) == (
        "live", 77, ["gemma3-270m", "smollm2-135m", "qwen3-0.6b"])
    assert (loaded.settings.n_gpu_layers, loaded.settings.sample_hz) == (-1, 5.0)
    assert original == custom()  # the caller's object is not changed behind its back
    assert not path.with_suffix(".json.tmp").exists()


def test_the_special_values_save_as_empty(qtbot, make_dialog, tmp_path):
    path = tmp_path / "settings.json"
    dialog = make_dialog(custom(), path)
    dialog.threads.setValue(0)  # "all physical cores"
    dialog.tdp.setValue(0)  # "guess from the CPU"
    dialog.data_dir.clear()  # the platform's data folder
    save(qtbot, dialog)
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["n_threads"] is None and stored["tdp_w"] is None and stored["data_dir"] is None
    assert dialog.saved == load_settings(path).settings and dialog.saved.db_path() is None


def test_saving_without_a_path_writes_where_fastslow_config_points(qtbot, make_dialog, ui_settings, tmp_path):
    dialog = make_dialog(ui_settings, None)  # ui_settings set FASTSLOW_CONFIG to tmp_path/settings.json
    dialog.n_ctx.setValue(3072)
    save(qtbot, dialog)
    assert load_settings().settings == dialog.saved
    assert json.loads((tmp_path / "settings.json").read_text(encoding="utf-8"))["n_ctx"] == 3072


def test_a_path_that_cannot_be_written_keeps_the_dialog_open_with_the_reason(qtbot, make_dialog, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    dialog = make_dialog(custom(), blocker / "settings.json")
    dialog.n_ctx.setValue(2048)
    save(qtbot, dialog)

    assert dialog.isVisible() and dialog.result() != QDialog.Accepted and dialog.saved is None
    assert dialog.error.text().startswith("Not saved: ")
    assert str(blocker) in dialog.error.text()  # the OSError names the path
    assert RED in dialog.error.styleSheet()
    assert blocker.read_text() == "not a folder"

    # Pointed somewhere writable, the same dialog saves what the user entered.
    good = tmp_path / "settings.json"
    dialog.path = good
    save(qtbot, dialog)
    assert dialog.result() == QDialog.Accepted
    assert load_settings(good).settings == dialog.saved and dialog.saved.n_ctx == 2048


def test_a_tdp_under_one_watt_cannot_be_entered(qtbot, make_dialog, tmp_path):
    path = tmp_path / "settings.json"
    dialog = make_dialog(custom(), path)
    dialog.tdp.setValue(0.4)  # whole watts only: it rounds to 0, "guess from the CPU"
    assert dialog.tdp.text() == "guess from the CPU"
    save(qtbot, dialog)
    assert load_settings(path).settings.tdp_w is None


@pytest.mark.parametrize("how", ["Cancel button", "Escape key"])
def test_cancel_writes_nothing(qtbot, make_dialog, tmp_path, how):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(asdict(custom())), encoding="utf-8")
    before = path.read_bytes()
    dialog = make_dialog(custom(), path)
    dialog.n_ctx.setValue(1024)
    dialog.threads.setValue(8)
    if how == "Cancel button":
        qtbot.mouseClick(button(dialog, QDialogButtonBox.Cancel), Qt.LeftButton)
    else:
        qtbot.keyClick(dialog, Qt.Key_Escape)
    assert dialog.result() == QDialog.Rejected and not dialog.isVisible()
    assert dialog.saved is None
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]
