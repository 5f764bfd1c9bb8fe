"""The Models tab lists what Ollama and LM Studio keep or serve: marked with where each came from,
read-only (another tool's files are never deleted), found off the GUI thread.

Folders laid out as those tools lay them out and stand-in servers: tests/store_layouts.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app import local_stores
from tests.engines.test_gguf_header import write_small_gguf
from tests.store_layouts import StandIn, lmstudio_model, lmstudio_models, ollama_model, ollama_tags, write_manifest
from tests.ui.test_models_view import (  # noqa: F401 (make_manager: a fixture used here)
    FIT,
    RED,
    WHERE,
    cell,
    make_manager,
    no_unhandled_errors,
    select,
    wait_idle,
)

LIBRARY = ("registry.ollama.ai", "library", "tiny", "1b")
LMS_NAME = "lmstudio:lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf"


@pytest.fixture
def stores(tmp_path, monkeypatch):
    """An Ollama store (a model and a broken manifest), an LM Studio folder, a running Ollama and a hung LM Studio."""
    tiny = write_small_gguf(tmp_path / "tiny.gguf")
    ollama_root, lms_root = tmp_path / "ollama", tmp_path / "lms"
    ollama_model(ollama_root, tiny, LIBRARY)
    write_manifest(ollama_root, ("registry.ollama.ai", "library", "broken", "latest"), "{")
    lmstudio_model(lms_root, tiny, "lmstudio-community", "Tiny-GGUF", "Tiny-Q8_0.gguf")
    ollama = StandIn({"/api/tags": ollama_tags("qwen3:1.7b")})
    hung = StandIn({"/v1/models": lmstudio_models("qwen/qwen3-4b")}, delay_s=5)
    monkeypatch.setenv("OLLAMA_MODELS", str(ollama_root))
    monkeypatch.setenv("LMSTUDIO_MODELS", str(lms_root))
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    monkeypatch.setenv("FASTSLOW_LMSTUDIO_URL", hung.url)
    yield {"ollama": ollama, "hung": hung, "ollama_root": ollama_root, "lms_root": lms_root}
    ollama.close()
    hung.close()


def test_the_tab_lists_other_tools_models_marked_by_source_off_the_gui_thread(qtbot, make_manager, stores, monkeypatch):
    threads = []
    real = local_stores.discover

    def discover(places=None):
        threads.append(threading.current_thread())
        return real(places)

    monkeypatch.setattr("app.ui.models.discover", discover)
    manager = make_manager()
    assert threads and threading.main_thread() not in threads  # folders read and servers asked on a worker

    assert cell(manager, "ollama:tiny:1b", WHERE).text() == "Ollama"
    assert cell(manager, LMS_NAME, WHERE).text() == "LM Studio"
    assert cell(manager, "qwen3:1.7b", WHERE).text() == "Ollama server"
    assert cell(manager, "ollama:tiny:1b", FIT).text().split(" (")[0] in ("fits", "tight", "too_big")
    assert cell(manager, "qwen3:1.7b", FIT).text() == "served"
    broken = cell(manager, "ollama:broken:latest", FIT)
    assert broken.text().startswith("unusable: Its manifest ") and "is not valid JSON" in broken.text()
    summary = manager.summary.text()
    assert "(4 from Ollama or LM Studio)" in summary
    assert f"LM Studio server: {stores['hung'].url} did not answer within 0.3 s" in summary

    row = select(manager, "ollama:tiny:1b")
    assert row["read_only"] and row["source"] == "ollama"
    assert "Ollama" in manager.detail.text() and "Go template" in manager.detail.text()
    assert not manager.delete_button.isEnabled() and not manager.download_button.isEnabled()


def test_another_tools_model_is_never_deleted(qtbot, make_manager, stores):
    manager = make_manager()
    for model, tool in (("ollama:tiny:1b", "Ollama"), (LMS_NAME, "LM Studio"), ("qwen3:1.7b", "Ollama")):
        row = select(manager, model)
        files = sorted(p for p in Path(stores["ollama_root"]).rglob("*")) + sorted(Path(stores["lms_root"]).rglob("*"))
        with no_unhandled_errors(qtbot):
            assert manager.delete_selected(confirm=False) is False
        assert manager.message.text() == (f"{row['name']} belongs to {local_stores.SOURCES[row['source']]}; FastSlow "
                                          f"does not delete another tool's models: remove it in {tool}.")
        assert RED in manager.message.styleSheet()
        assert files == sorted(p for p in Path(stores["ollama_root"]).rglob("*")) + sorted(Path(stores["lms_root"]).rglob("*"))
    wait_idle(qtbot, manager)
