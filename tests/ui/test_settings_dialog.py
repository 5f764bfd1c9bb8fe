"""The settings dialog, driven as a user would: see the values, change them, save, fail to save, cancel.

Every test runs on a pretend machine (16 logical CPUs, 8 physical cores) unless it says otherwise,
so the values shown do not depend on where the tests run; $FASTSLOW_DB is unset unless set.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox

import app.ui.settings_dialog as dialog_module
from app.settings import MAX_N_CTX, Settings, load_settings
from app.ui.settings_dialog import SettingsDialog

RED = "#b00020"


@pytest.fixture(autouse=True)
def machine(monkeypatch):
    """A pretend machine: machine(logical, physical) changes it; FASTSLOW_DB is not set."""
    def have(logical_cpus: int, physical: int) -> None:
        def cpu_count(logical: bool = True) -> int:
            return logical_cpus if logical else physical

        monkeypatch.setattr(psutil, "cpu_count", cpu_count)
        monkeypatch.setattr(dialog_module, "physical_cores", lambda: physical)  # not narrowed by this CPU affinity

    monkeypatch.delenv("FASTSLOW_DB", raising=False)
    have(16, 8)
    return have


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


def custom(data_dir: str = "/srv/fastslow") -> Settings:
    """Shown, never saved, with its data folder: a test that saves passes one under tmp_path."""
    return Settings(n_threads=3, n_gpu_layers=-1, n_ctx=8192, sample_hz=5.0, tdp_w=45.0,
                    data_dir=data_dir, mode="live", max_tokens=77,
                    pane_models=["gemma3-270m", "smollm2-135m", "qwen3-0.6b"])


def test_the_dialog_shows_the_settings_it_was_given(make_dialog, tmp_path):
    dialog = make_dialog(custom(), tmp_path / "settings.json")
    assert dialog.windowTitle() == "Settings"
    assert dialog.threads.value() == 3
    assert dialog.gpu_mode.currentText() == "Every layer" and not dialog.gpu_layers.isEnabled()
    assert dialog.n_ctx.value() == 8192
    assert dialog.sample_hz.value() == 5.0
    assert dialog.tdp.value() == 45.0
    assert dialog.data_dir.text() == "/srv/fastslow"
    assert dialog.error.text() == "" and dialog.saved is None
    assert dialog.values() == custom()  # shown and unchanged: the same settings come back

    defaults = make_dialog(Settings(), tmp_path / "settings.json")
    assert defaults.threads.text() == "all physical cores (8)"
    assert defaults.gpu_mode.currentText() == "As many layers as fit the GPU (auto)"
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
    dialog = make_dialog(custom(str(tmp_path / "data")), blocker / "settings.json")
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
    dialog = make_dialog(custom(str(tmp_path / "data")), path)
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


# -- values that would only hurt ----------------------------------------------------------------

def test_threads_stop_at_the_logical_cpus_and_the_hint_names_the_cores(qtbot, make_dialog, machine, tmp_path):
    machine(2, 2)  # the machine of the report: 99 threads took decode from 18 to 2.8 tokens/s
    path = tmp_path / "settings.json"
    dialog = make_dialog(Settings(), path)
    assert (dialog.threads.minimum(), dialog.threads.maximum()) == (0, 2)
    assert dialog.threads_hint.text() == ("This machine has 2 physical cores and 2 logical CPUs; more threads "
                                          "than physical cores usually slows llama.cpp down.")
    assert RED not in dialog.threads_hint.styleSheet()
    type_into(qtbot, dialog.threads, "99")
    assert dialog.threads.value() <= 2  # the field takes no more than the machine has
    save(qtbot, dialog)
    assert dialog.result() == QDialog.Accepted
    assert load_settings(path).settings.n_threads in (None, 1, 2)


def test_threads_past_the_physical_cores_are_allowed_with_a_warning(qtbot, make_dialog, machine, tmp_path):
    machine(8, 4)  # hyper-threading: 8 logical CPUs on 4 cores
    dialog = make_dialog(Settings(), tmp_path / "settings.json")
    assert dialog.threads.maximum() == 8
    dialog.threads.setValue(6)
    assert dialog.threads_hint.text() == ("6 threads: This machine has 4 physical cores and 8 logical CPUs; "
                                          "more threads than physical cores usually slows llama.cpp down.")
    assert RED in dialog.threads_hint.styleSheet()
    dialog.threads.setValue(4)
    assert dialog.threads_hint.text().startswith("This machine has 4 physical cores")
    assert RED not in dialog.threads_hint.styleSheet()


def test_one_core_is_said_in_the_singular(make_dialog, machine, tmp_path):
    machine(1, 1)
    dialog = make_dialog(Settings(), tmp_path / "settings.json")
    assert dialog.threads.maximum() == 1
    assert dialog.threads_hint.text().startswith("This machine has 1 physical core and 1 logical CPU;")


def test_the_context_stops_at_the_cap_and_says_the_model_caps_it_too(qtbot, make_dialog, tmp_path):
    path = tmp_path / "settings.json"
    dialog = make_dialog(Settings(), path)
    assert dialog.n_ctx.maximum() == MAX_N_CTX == 262144
    assert "own trained context" in dialog.n_ctx_hint.text() and str(MAX_N_CTX) in dialog.n_ctx_hint.text()
    type_into(qtbot, dialog.n_ctx, "999999")
    assert dialog.n_ctx.value() <= MAX_N_CTX
    dialog.n_ctx.setValue(999999)
    assert dialog.n_ctx.value() == MAX_N_CTX
    save(qtbot, dialog)
    assert load_settings(path).settings.n_ctx == MAX_N_CTX


@pytest.mark.skipif(os.name != "posix", reason="the kernel's virtual filesystems are a POSIX thing")
def test_a_data_folder_in_proc_is_not_saved_and_the_dialog_says_why(qtbot, make_dialog, tmp_path):
    path = tmp_path / "settings.json"
    dialog = make_dialog(Settings(), path)
    type_into(qtbot, dialog.data_dir, "/proc/fastslow")
    save(qtbot, dialog)
    assert dialog.isVisible() and dialog.result() != QDialog.Accepted and dialog.saved is None
    assert dialog.error.text() == (
        "Not saved: the data folder /proc/fastslow is inside /proc, a virtual filesystem of the kernel that cannot "
        "keep the log; choose a folder in your home directory, or leave it empty for the platform's data folder")
    assert not path.exists()

    type_into(qtbot, dialog.data_dir, str(tmp_path / "data"))  # the user follows the advice
    save(qtbot, dialog)
    assert dialog.result() == QDialog.Accepted
    assert load_settings(path).settings.data_dir == str(tmp_path / "data") and (tmp_path / "data").is_dir()


def test_a_data_folder_that_is_a_file_is_not_saved(qtbot, make_dialog, tmp_path):
    path = tmp_path / "settings.json"
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    dialog = make_dialog(Settings(), path)
    type_into(qtbot, dialog.data_dir, str(blocker))
    save(qtbot, dialog)
    assert dialog.isVisible() and dialog.saved is None
    assert dialog.error.text() == (f"Not saved: the data folder {blocker} is a file, not a folder; choose a folder, "
                                   "or leave it empty for the platform's data folder")
    assert not path.exists() and blocker.read_text() == "mine"

    type_into(qtbot, dialog.data_dir, str(blocker / "data"))
    save(qtbot, dialog)
    assert dialog.isVisible() and "cannot be created" in dialog.error.text() and not path.exists()


def test_the_dialog_says_when_fastslow_db_wins_over_the_data_folder(make_dialog, monkeypatch, tmp_path):
    plain = make_dialog(Settings(), tmp_path / "settings.json")
    assert plain.data_dir_hint.text() == ("The session log moves here at the next start; $FASTSLOW_DB or --db, "
                                          "when given, win over it.")
    assert RED not in plain.data_dir_hint.styleSheet()

    monkeypatch.setenv("FASTSLOW_DB", "/elsewhere/runs.db")
    overridden = make_dialog(Settings(data_dir=str(tmp_path)), tmp_path / "settings.json")
    assert overridden.data_dir_hint.text() == (
        "$FASTSLOW_DB is set (/elsewhere/runs.db): the session log is there, not in this folder, while it is set.")
    assert RED in overridden.data_dir_hint.styleSheet()


# -- the app opens the log the precedence names -------------------------------------------------

class _Opened(Exception):
    """Stops fastslow-app's main at open_log, with the path it asked for."""


@pytest.mark.parametrize(
    "argv, env, expected",
    [
        ([], None, "settings"),  # only the settings' folder: it is used
        ([], "env.db", "env.db"),  # $FASTSLOW_DB wins over the settings' folder
        (["--db", "cli.db"], "env.db", "cli.db"),  # --db wins over both
    ],
)
def test_the_app_opens_the_log_by_precedence(monkeypatch, ui_settings, tmp_path, argv, env, expected):
    import app.ui.app as app_main
    from app.settings import save_settings

    folder = tmp_path / "settings-folder"
    save_settings(Settings(data_dir=str(folder)))  # FASTSLOW_CONFIG points into tmp_path (ui_settings)
    if env:
        monkeypatch.setenv("FASTSLOW_DB", str(tmp_path / env))

    def fake_open_log(path):
        raise _Opened(path)

    monkeypatch.setattr(app_main, "open_log", fake_open_log)
    argv = [a if a.startswith("--") else str(tmp_path / a) for a in argv]
    with pytest.raises(_Opened) as opened:
        app_main.main(argv)
    want = folder / "fastslow.db" if expected == "settings" else tmp_path / expected
    assert Path(opened.value.args[0]) == want


@pytest.mark.parametrize("choice, count, stored", [
    ("auto", None, None), ("all", None, -1), ("cpu", None, 0), ("count", 12, 12)])
def test_each_gpu_offload_choice_is_saved_as_its_number(qtbot, make_dialog, tmp_path, choice, count, stored):
    path = tmp_path / "settings.json"
    dialog = make_dialog(Settings(), path)
    dialog.gpu_mode.setCurrentIndex(dialog.gpu_mode.findData(choice))
    assert dialog.gpu_layers.isEnabled() == (choice == "count")  # a count only where one is asked for
    if count is not None:
        type_into(qtbot, dialog.gpu_layers, str(count))
    save(qtbot, dialog)
    assert load_settings(path).settings.n_gpu_layers == stored
    reopened = make_dialog(load_settings(path).settings, path)
    assert reopened.gpu_mode.currentData() == choice
