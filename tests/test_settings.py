"""Settings: saved as JSON, read back; a broken file is set aside and the app starts on defaults."""

import json

import pytest

from app.settings import Settings, load_settings, save_settings


def test_a_first_start_has_defaults_with_the_bundled_model_in_both_panes(tmp_path):
    loaded = load_settings(tmp_path / "settings.json")
    assert loaded.problem is None
    assert loaded.settings == Settings()
    assert loaded.settings.pane_models == ["smollm2-135m", "smollm2-135m"]


def test_saved_settings_read_back(tmp_path):
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
