"""A pane's model picker offers what Ollama and LM Studio keep (marked with their source) and what a
running Ollama or LM Studio serves (as remote: names), found off the GUI thread; "Served model…" opens
a dialog for any OpenAI-compatible server. What a pane remembers round-trips through the settings file.

Folders laid out as those tools lay them out and stand-in servers: tests/store_layouts.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app import model_picks
from app.model_picks import PICK_SERVED, SERVED_LABEL
from app.settings import Settings, load_settings, save_settings
from tests.engines.test_gguf_header import write_small_gguf
from tests.store_layouts import StandIn, lmstudio_models, ollama_model, ollama_tags
from tests.ui.conftest import LOAD_TIMEOUT_MS

SMOL = ("registry.ollama.ai", "library", "smollm2", "135m")


@pytest.fixture
def ollama(tmp_path, monkeypatch):
    """An empty Ollama store and a running stand-in Ollama serving qwen3:1.7b; a test puts a model in the store."""
    root = tmp_path / "ollama"
    server = StandIn({"/api/tags": ollama_tags("qwen3:1.7b")})
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    yield root, server
    server.close()


def keys(pane) -> list[str]:
    return [pane.model.itemData(i) for i in range(pane.model.count())]


def labels(pane) -> list[str]:
    return [pane.model.itemText(i) for i in range(pane.model.count())]


def wait_listed(qtbot, pane, key: str) -> None:
    qtbot.waitUntil(lambda: key in keys(pane), timeout=10_000)


def choose(pane, key: str) -> None:
    """As a user picks an entry: the combo's activated signal, with that entry current."""
    index = keys(pane).index(key)
    pane.model.setCurrentIndex(index)
    pane.model.activated.emit(index)


def test_the_picker_lists_a_stores_model_and_a_servers_model_found_off_the_gui_thread(qtbot, make_window, ollama,
                                                                                     tmp_path, monkeypatch):
    root, server = ollama
    ollama_model(root, write_small_gguf(tmp_path / "tiny.gguf"), SMOL)
    threads = []
    real = model_picks.store_choices

    def spy(found):
        threads.append(threading.current_thread())
        return real(found)

    monkeypatch.setattr("app.ui.window.store_choices", spy)
    window = make_window(load=False)
    pane = window.panes[0]
    served = f"remote:{server.url}/v1#qwen3:1.7b"
    wait_listed(qtbot, pane, served)
    assert threads and threading.main_thread() not in threads
    listed = dict(zip(keys(pane), labels(pane)))
    assert listed["ollama:smollm2:135m"] == "smollm2:135m — Ollama"
    assert listed[served] == f"qwen3:1.7b — Ollama server (127.0.0.1:{server.server_address[1]})"
    # after the catalog's and the local models; the dialog's entry last
    assert keys(pane).index("ollama:smollm2:135m") > 0 and keys(pane)[-1] == PICK_SERVED
    assert labels(pane)[-1] == SERVED_LABEL
    assert pane.model.currentData() == window.settings.pane_models[0]  # the pane's own model stays chosen


def test_choosing_a_model_ollama_keeps_loads_it(qtbot, make_window, ollama, smollm2_path):
    root, _ = ollama
    ollama_model(root, Path(smollm2_path), SMOL)
    window = make_window(load=False)
    pane = window.panes[1]
    wait_listed(qtbot, pane, "ollama:smollm2:135m")
    with qtbot.waitSignal(window.models_ready, timeout=LOAD_TIMEOUT_MS):
        choose(pane, "ollama:smollm2:135m")
    snapshot = window.controller.pane(1)
    assert snapshot.error is None and snapshot.info is not None, snapshot.error
    assert window.settings.pane_models[1] == "ollama:smollm2:135m"
    assert pane.model.currentData() == "ollama:smollm2:135m"


def test_the_served_model_dialog_refuses_a_bad_url_in_one_sentence(qtbot, make_window):
    window = make_window(load=False)
    choose(window.panes[0], PICK_SERVED)
    dialog = window.remote_dialog
    assert dialog is not None and dialog.isVisible()
    assert "keyring set fastslow <base URL>" in model_picks.KEY_NOTE and "FASTSLOW_API_KEY" in model_picks.KEY_NOTE
    dialog.url.setText("127.0.0.1:8080/v1")
    dialog.model.setEditText("qwen3")
    assert dialog.list_models() is False
    said = dialog.message.text()
    assert said == "The server URL '127.0.0.1:8080/v1' must start with http:// or https://, e.g. http://127.0.0.1:8080/v1."
    dialog.url.setText("http://user:sk-secret@127.0.0.1:8080/v1")  # a key in the URL would be remembered
    dialog.accept()
    assert dialog.isVisible() and dialog.chosen is None
    assert dialog.message.text().startswith("The server URL must not carry a user or password")
    dialog.reject()
    assert window.panes[0].model.currentData() == window.settings.pane_models[0]  # cancelled: the pane's model stays


def test_the_dialog_lists_a_servers_models_and_a_chosen_one_is_the_panes_remote_name(qtbot, make_window):
    server = StandIn({"/v1/models": lmstudio_models("qwen/qwen3-4b", "google/gemma-3-1b")})
    try:
        window = make_window(load=False)
        loads = []
        window.controller.load_models = lambda specs, force=False: loads.append(specs) or True
        choose(window.panes[1], PICK_SERVED)
        dialog = window.remote_dialog
        dialog.url.setText(server.url)  # no path: /v1, where every OpenAI-compatible server serves
        assert dialog.list_models()
        qtbot.waitUntil(lambda: dialog.model.count() == 2, timeout=10_000)
        assert dialog.message.text() == f"{server.url}/v1 serves 2 models."
        dialog.model.setCurrentIndex(1)
        dialog.accept()
        name = f"remote:{server.url}/v1#google/gemma-3-1b"
        assert window.settings.pane_models[1] == name
        spec = loads[-1][1]
        assert (spec.engine, spec.path, spec.name) == ("remote", f"{server.url}/v1", "google/gemma-3-1b")
        assert window.panes[1].model.currentData() == name
        assert window.panes[1].model.currentText() == f"google/gemma-3-1b — served (127.0.0.1:{server.server_address[1]})"
    finally:
        server.close()


def test_a_server_that_is_not_there_is_said_in_the_dialog(qtbot, make_window):
    window = make_window(load=False)
    dialog = window.open_remote_dialog(0)
    dialog.url.setText("http://127.0.0.1:9/v1")
    assert dialog.list_models()
    qtbot.waitUntil(lambda: "Asking" not in dialog.message.text(), timeout=10_000)
    assert dialog.message.text().startswith("Nothing answers at http://127.0.0.1:9/v1")
    dialog.reject()


def test_a_panes_served_or_store_model_round_trips_through_the_settings_file(qtbot, make_window, tmp_path):
    path = tmp_path / "round.json"
    names = ["ollama:smollm2:135m", "remote:http://127.0.0.1:9/v1#qwen3-8b"]
    save_settings(Settings(max_tokens=24, n_ctx=2048, pane_models=names), path)
    loaded = load_settings(path)
    assert loaded.problem is None and loaded.settings.pane_models == names
    assert "sk-" not in path.read_text() and "key" not in path.read_text().lower()
    window = make_window(loaded.settings, load=False)  # not found anywhere: still shown as themselves
    assert [p.model.currentData() for p in window.panes] == names
    assert window.panes[0].model.currentText() == "smollm2:135m — Ollama"
    assert window.panes[1].model.currentText() == "qwen3-8b — served (127.0.0.1:9)"
    loads = []
    window.controller.load_models = lambda specs, force=False: loads.append(specs) or True
    window.load_default_models()  # the store model is not there: said in its pane; the served one is asked for
    assert "Ollama keeps no models here" in window.panes[0].status.text()
    assert list(loads[0]) == [1] and (loads[0][1].engine, loads[0][1].name) == ("remote", "qwen3-8b")


@pytest.mark.model
def test_a_served_model_chosen_in_the_dialog_loads_in_the_pane(qtbot, make_window, smollm2_path, tmp_path):
    from tests.llama_server import LlamaServer

    served = LlamaServer(smollm2_path, "smollm2", tmp_path / "server.log")
    try:
        window = make_window(load=False)
        dialog = window.open_remote_dialog(0)
        dialog.url.setText(served.url)
        assert dialog.list_models()
        qtbot.waitUntil(lambda: dialog.model.count() == 1, timeout=10_000)
        with qtbot.waitSignal(window.models_ready, timeout=LOAD_TIMEOUT_MS):
            dialog.accept()
        snapshot = window.controller.pane(0)
        assert snapshot.error is None and snapshot.info is not None, snapshot.error
        assert window.settings.pane_models[0] == served.spec_name
    finally:
        served.kill()
