"""What a pane's picker offers from other tools, and the names it remembers: no Qt, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engines.types import EngineError
from app.local_stores import LM_STUDIO, LM_STUDIO_SERVER, OLLAMA, OLLAMA_SERVER, Discovery, Found
from app.model_picks import label_for, openai_base, remote_name, store_choices


def test_store_choices_mark_where_each_model_comes_from_and_serve_on_the_openai_base():
    found = Discovery((
        Found("qwen3:1.7b", OLLAMA, "/o", path=Path("/o/blobs/sha256-1")),
        Found("broken:latest", OLLAMA, "/o", path=Path("/o/blobs/sha256-2"), problem="its blob is missing"),
        Found("pub/Repo/M-Q4.gguf", LM_STUDIO, "/l", path=Path("/l/pub/Repo/M-Q4.gguf")),
        Found("llama3:8b", OLLAMA_SERVER, "http://127.0.0.1:11434"),
        Found("qwen/qwen3-4b", LM_STUDIO_SERVER, "http://127.0.0.1:1234"),
    ), ())
    assert store_choices(found) == [
        ("qwen3:1.7b — Ollama", "ollama:qwen3:1.7b"),
        ("pub/Repo/M-Q4.gguf — LM Studio", "lmstudio:pub/Repo/M-Q4.gguf"),
        ("llama3:8b — Ollama server (127.0.0.1:11434)", "remote:http://127.0.0.1:11434/v1#llama3:8b"),
        ("qwen/qwen3-4b — LM Studio server (127.0.0.1:1234)", "remote:http://127.0.0.1:1234/v1#qwen/qwen3-4b"),
    ]


def test_a_remote_name_is_checked_and_normalised_and_never_carries_a_key():
    assert remote_name(" http://gpu-box:8000 ", "Qwen/Qwen3-8B") == "remote:http://gpu-box:8000/v1#Qwen/Qwen3-8B"
    assert openai_base("http://h:11434/") == "http://h:11434/v1" == openai_base("http://h:11434/v1")
    with pytest.raises(EngineError, match="must not carry a user or password"):
        remote_name("https://me:sk-1@api.example.com/v1", "m")
    with pytest.raises(EngineError, match="must start with http:// or https://"):
        remote_name("gpu-box:8000/v1", "m")
    with pytest.raises(EngineError, match="model's id"):
        remote_name("http://gpu-box:8000/v1", "  ")


def test_a_remembered_name_not_found_is_labelled_as_itself():
    assert label_for("remote:http://gpu-box:8000/v1#qwen3") == "qwen3 — served (gpu-box:8000)"
    assert label_for("ollama:qwen3:1.7b") == "qwen3:1.7b — Ollama"
    assert label_for("lmstudio:pub/M.gguf") == "pub/M.gguf — LM Studio"
    assert label_for("smollm2-135m-instruct-q4") == "smollm2-135m-instruct-q4"
