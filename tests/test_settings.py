"""Settings: saved as JSON, read back; a broken file is set aside and the app starts on defaults."""

import errno
import json
import os
import tempfile
from pathlib import Path

import psutil
import pytest

import app.settings as settings_module
from app.catalog import load_catalog
from app.settings import MAX_N_CTX, Settings, check_data_dir, load_settings, logical_cpus, save_settings
from app.store.paths import default_db_path, env_db_path, resolve_db_path
from unprivileged import as_nobody


def test_a_first_start_has_defaults_with_the_bundled_model_in_both_panes(tmp_path):
    loaded = load_settings(tmp_path / "settings.json")
    assert loaded.problem is None
    assert loaded.settings == Settings()
    assert loaded.settings.pane_models == ["smollm2-135m", "smollm2-135m"]


def test_saved_settings_read_back(tmp_path, cpus):
    cpus(8)
    path = tmp_path / "sub" / "settings.json"
    settings = Settings(n_threads=2, n_gpu_layers=-1, n_ctx=2048, sample_hz=5, tdp_w=28, data_dir=str(tmp_path))
    save_settings(settings, path)
    assert load_settings(path).settings == settings
    assert settings.db_path() == tmp_path / "fastslow.db"


def test_the_environment_variable_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSLOW_CONFIG", str(tmp_path / "x.json"))
    save_settings(Settings(n_ctx=1024))
    assert load_settings().settings.n_ctx == 1024


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "could not be used"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"n_ctx": 10}), "at least 256"),
        (json.dumps({"sample_hz": 0}), "telemetry rate"),
        (json.dumps({"mode": "fast"}), "mode must be one of"),
        (json.dumps({"pane_models": ["one"]}), "two panes"),
        (json.dumps({"n_threads": "many"}), "could not be used"),
    ],
)
def test_a_bad_file_is_kept_aside_and_defaults_are_used(tmp_path, content, words):
    path = tmp_path / "settings.json"
    path.write_text(content)
    loaded = load_settings(path)
    assert loaded.settings == Settings()
    assert words in loaded.problem and "Defaults are in use" in loaded.problem
    assert (tmp_path / "settings.json.bad").read_text() == content  # nothing the user wrote is lost


def test_unknown_keys_from_a_newer_version_are_ignored(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"n_ctx": 8192, "future_option": True}))
    loaded = load_settings(path)
    assert loaded.problem is None and loaded.settings.n_ctx == 8192


def test_bad_values_are_refused_on_save_and_the_old_file_stays(tmp_path):
    path = tmp_path / "settings.json"
    save_settings(Settings(n_ctx=2048), path)
    with pytest.raises(ValueError, match="TDP"):
        save_settings(Settings(tdp_w=-5), path)
    assert load_settings(path).settings.n_ctx == 2048


# -- values that would only hurt ----------------------------------------------------------------

@pytest.fixture
def cpus(monkeypatch):
    """This machine, as the settings see it, with n logical CPUs."""
    def have(n: int) -> None:
        monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: n if logical else max(1, n // 2))
    return have


def test_threads_stop_at_the_logical_cpus_of_this_machine(cpus):
    cpus(8)
    assert Settings(n_threads=8).problems() == []
    assert Settings(n_threads=None).problems() == []
    wrong = Settings(n_threads=9).problems()
    assert wrong == ["this machine has 8 logical CPUs, so threads must be 8 or fewer (or empty for all cores), not 9"]
    cpus(2)
    assert "threads must be 2 or fewer" in Settings(n_threads=3).problems()[0]


def test_psutil_not_knowing_the_cpus_allows_one_thread(monkeypatch):
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: None)
    assert logical_cpus() == 1
    assert Settings(n_threads=1).problems() == []
    assert "1 or fewer" in Settings(n_threads=2).problems()[0]


def test_a_file_with_more_threads_than_this_machine_is_set_aside_naming_its_count(tmp_path, cpus):
    cpus(2)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"n_threads": 99}))
    loaded = load_settings(path)
    assert loaded.settings == Settings()
    assert "this machine has 2 logical CPUs" in loaded.problem and "not 99" in loaded.problem
    assert "Defaults are in use" in loaded.problem and (tmp_path / "settings.json.bad").exists()
    with pytest.raises(ValueError, match="2 logical CPUs"):
        save_settings(Settings(n_threads=99), tmp_path / "other.json")
    assert not (tmp_path / "other.json").exists()


def test_the_context_is_capped_and_the_cap_fits_every_catalog_model(tmp_path):
    assert Settings(n_ctx=MAX_N_CTX).problems() == []
    assert Settings(n_ctx=MAX_N_CTX + 1).problems() == [
        f"the context must be at most {MAX_N_CTX} tokens, not {MAX_N_CTX + 1} "
        "(each model is capped at its own trained context anyway)"]
    assert max(entry.context_length for entry in load_catalog()) <= MAX_N_CTX  # never below a model's own
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"n_ctx": 999999}))
    loaded = load_settings(path)
    assert loaded.settings == Settings() and "at most 262144 tokens, not 999999" in loaded.problem


# -- the data folder ----------------------------------------------------------------------------

posix_only = pytest.mark.skipif(os.name != "posix", reason="the kernel's virtual filesystems are a POSIX thing")


@posix_only
@pytest.mark.parametrize("folder", ["/proc/fastslow", "/proc", "/sys/kernel/fastslow", "/dev/shm/fastslow"])
def test_a_data_folder_in_a_virtual_filesystem_is_refused(folder):
    top = "/" + folder.split("/")[1]
    wrong = Settings(data_dir=folder).problems()
    assert wrong == [f"the data folder {folder} is inside {top}, a virtual filesystem of the kernel that cannot "
                     "keep the log; choose a folder in your home directory, or leave it empty for the platform's "
                     "data folder"]
    assert check_data_dir(folder) == wrong[0]
    assert not Path(folder).exists() or folder == top  # refused before anything is created


@posix_only
def test_a_link_into_proc_is_refused_as_proc(tmp_path):
    link = tmp_path / "looks-fine"
    link.symlink_to("/proc/self")
    assert "is inside /proc" in Settings(data_dir=str(link / "data")).problems()[0]


def test_a_settings_file_with_a_data_folder_in_proc_is_set_aside(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"data_dir": "/proc/fastslow", "n_ctx": 2048}))
    loaded = load_settings(path)
    assert loaded.settings == Settings() and loaded.settings.db_path() is None  # it overrides nothing
    assert "inside /proc" in loaded.problem and (tmp_path / "settings.json.bad").exists()


def test_a_relative_data_folder_is_refused_and_empty_means_the_platforms():
    assert "must be a full path, not 'data'" in Settings(data_dir="data").problems()[0]
    assert Settings(data_dir="~/FastSlow").problems() == []  # ~ is a full path once expanded
    assert Settings(data_dir="").problems() == [] and Settings(data_dir="").db_path() is None
    assert check_data_dir(None) is None and check_data_dir("") is None


def test_a_usable_data_folder_is_created_and_left_clean(tmp_path):
    folder = tmp_path / "new" / "data"
    assert check_data_dir(str(folder)) is None
    assert folder.is_dir() and list(folder.iterdir()) == []  # the write probe is gone


def test_a_data_folder_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    assert check_data_dir(str(blocker)) == (
        f"the data folder {blocker} is a file, not a folder; choose a folder, or leave it empty for the "
        "platform's data folder")
    assert blocker.read_text() == "mine"


def test_a_data_folder_that_cannot_be_created_is_refused(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    wrong = check_data_dir(str(blocker / "data"))
    assert wrong.startswith(f"the data folder {blocker / 'data'} cannot be created (")
    assert wrong.endswith("choose a folder you can write to, or leave it empty for the platform's data folder")


def test_a_data_folder_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    def read_only(folder):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))

    monkeypatch.setattr(settings_module, "_write_probe", read_only)
    assert check_data_dir(str(tmp_path)) == (
        f"the data folder {tmp_path} cannot be written to ({os.strerror(errno.EROFS)}); fix its permissions, "
        "choose another folder, or leave it empty for the platform's data folder")


@posix_only
def test_a_data_folder_without_write_permission_is_refused():
    # As an unprivileged user meets it, even when the tests run as root (root writes through it).
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # traversable by the unprivileged child
        folder = os.path.join(tmp, "locked")
        os.mkdir(folder, mode=0o500)
        try:
            assert "cannot be written to" in as_nobody(lambda: check_data_dir(folder))
        finally:
            os.chmod(folder, 0o700)


# -- where the log lives: --db, then $FASTSLOW_DB, then the settings' folder, then the platform's ------

@pytest.mark.parametrize(
    "cli, env, folder, expected",
    [
        ("/cli/x.db", {"FASTSLOW_DB": "/env/x.db"}, "/settings", "/cli/x.db"),
        (None, {"FASTSLOW_DB": "/env/x.db"}, "/settings", "/env/x.db"),
        (None, {}, "/settings", "/settings/fastslow.db"),
        (None, {"FASTSLOW_DB": ""}, "/settings", "/settings/fastslow.db"),  # set but empty: not set
        (None, {}, None, "DEFAULT"),
        ("/cli/x.db", {}, None, "/cli/x.db"),
    ],
)
def test_the_log_path_follows_the_most_specific_choice(cli, env, folder, expected):
    settings_db = Settings(data_dir=folder).db_path()
    got = resolve_db_path(cli, env=env, settings_value=settings_db)
    assert got == (default_db_path() if expected == "DEFAULT" else Path(expected))


def test_env_db_path_says_when_the_environment_wins(monkeypatch):
    assert env_db_path({"FASTSLOW_DB": "/env/x.db"}) == "/env/x.db"
    assert env_db_path({"FASTSLOW_DB": ""}) is None and env_db_path({}) is None
    monkeypatch.setenv("FASTSLOW_DB", "/from/env.db")
    assert env_db_path() == "/from/env.db"
    assert resolve_db_path(settings_value="/settings/fastslow.db") == Path("/from/env.db")
    monkeypatch.delenv("FASTSLOW_DB")
    assert resolve_db_path(settings_value="/settings/fastslow.db") == Path("/settings/fastslow.db")


def test_gpu_offload_is_the_default_and_an_old_files_cpu_default_becomes_it(tmp_path):
    """Format 1 wrote n_gpu_layers 0 (the CPU) for everyone, chosen or not; it now means "as many as
    fit", and a 0 saved by this version stays the CPU."""
    assert Settings().n_gpu_layers is None
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"n_gpu_layers": 0, "n_ctx": 2048}), encoding="utf-8")
    old = load_settings(path)
    assert old.problem is None and old.settings.n_gpu_layers is None and old.settings.n_ctx == 2048
    path.write_text(json.dumps({"n_gpu_layers": 24}), encoding="utf-8")
    assert load_settings(path).settings.n_gpu_layers == 24  # a number someone chose is kept
    save_settings(Settings(n_gpu_layers=0), path)
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == 2
    assert load_settings(path).settings.n_gpu_layers == 0
