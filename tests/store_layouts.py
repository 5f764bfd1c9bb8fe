"""Ollama's and LM Studio's folders, laid out as those tools lay them out, and their servers' answers.

Shared by tests/test_local_stores.py and tests/ui/test_models_stores.py. Ollama (server/manifest.go,
server/layer.go): manifests/<registry>/<namespace>/<model>/<tag> is a Docker-distribution v2 manifest
whose layers name blobs/sha256-<hex> files by their real digest. LM Studio: <publisher>/<repo>/<file>.gguf.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODEL = "application/vnd.ollama.image.model"
TEMPLATE = "application/vnd.ollama.image.template"
PARAMS = "application/vnd.ollama.image.params"
LICENSE = "application/vnd.ollama.image.license"
# What `ollama pull qwen3:1.7b` writes beside the model (a Go template, the sampling params, the license).
GO_TEMPLATE = b"{{- range $i, $_ := .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
OLLAMA_PARAMS = {"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.6, "top_p": 0.95}


@functools.lru_cache(maxsize=8)
def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def place(source: Path, dest: Path) -> Path:
    """A hard link to source where the file system allows it (no 100 MB copy), else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)
    return dest


def write_blob(root: Path, data: bytes) -> dict:
    """A small layer's blob, named by its digest; its manifest layer entry (without mediaType)."""
    hexdigest = hashlib.sha256(data).hexdigest()
    blob = root / "blobs" / f"sha256-{hexdigest}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    return {"digest": f"sha256:{hexdigest}", "size": len(data)}


def model_blob(root: Path, gguf: Path) -> dict:
    """The model's GGUF as Ollama stores it: blobs/sha256-<its digest>."""
    hexdigest = sha256_of(str(gguf))
    blob = root / "blobs" / f"sha256-{hexdigest}"
    if not blob.exists():
        place(gguf, blob)
    return {"mediaType": MODEL, "digest": f"sha256:{hexdigest}", "size": gguf.stat().st_size}


def write_manifest(root: Path, name: tuple[str, str, str, str], layers: list[dict] | str) -> Path:
    """manifests/<registry>/<namespace>/<model>/<tag>: a manifest over layers (or any text, to break one)."""
    config = write_blob(root, json.dumps({"model_format": "gguf", "model_family": "llama", "file_type": "Q4_1"}).encode())
    manifest = root / "manifests" / Path(*name)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(layers, str):
        manifest.write_text(layers)
        return manifest
    manifest.write_text(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **config},
        "layers": layers,
    }))
    return manifest


def ollama_model(root: Path, gguf: Path, name: tuple[str, str, str, str] = ("registry.ollama.ai", "library", "smollm2", "135m")) -> Path:
    """A pulled model: its GGUF blob, a Go template, params and license layers, and the manifest naming them."""
    layers = [model_blob(root, gguf),
              {"mediaType": TEMPLATE, **write_blob(root, GO_TEMPLATE)},
              {"mediaType": LICENSE, **write_blob(root, b"Apache License 2.0")},
              {"mediaType": PARAMS, **write_blob(root, json.dumps(OLLAMA_PARAMS).encode())}]
    return write_manifest(root, name, layers)


def lmstudio_model(root: Path, gguf: Path, publisher: str = "lmstudio-community",
                   repo: str = "SmolLM2-135M-Instruct-GGUF", file: str = "SmolLM2-135M-Instruct-Q4_1.gguf") -> Path:
    return place(gguf, root / publisher / repo / file)


# --- the servers' documented answers --------------------------------------------------------------


def ollama_tags(*names: str) -> dict:
    """GET /api/tags (docs/api.md, "List Local Models")."""
    return {"models": [{
        "name": name, "model": name, "modified_at": "2025-05-04T17:37:44.706015396-07:00", "size": 1359296330,
        "digest": "3f9c7a0e2d4b1c8e", "details": {"parent_model": "", "format": "gguf", "family": "qwen3",
                                                  "families": ["qwen3"], "parameter_size": "2.0B",
                                                  "quantization_level": "Q4_K_M"}} for name in names]}


def lmstudio_models(*ids: str) -> dict:
    """GET /v1/models, OpenAI's shape, as LM Studio's server answers it."""
    return {"object": "list", "data": [{"id": i, "object": "model", "owned_by": "organization_owner"} for i in ids]}


class StandIn(ThreadingHTTPServer):
    """A server on 127.0.0.1 answering GETs from `answers` (path -> JSON-able or bytes); `delay_s` holds each answer."""

    daemon_threads = True

    def __init__(self, answers: dict, delay_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers, self.delay_s = answers, delay_s
        self.released = threading.Event()  # set on close: a held answer is let go at once
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up (the timeout tests) leaves a broken pipe here: expected, not news

    def close(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server: StandIn = self.server  # type: ignore[assignment]
        if server.delay_s:
            server.released.wait(server.delay_s)
        answer = server.answers.get(self.path)
        if answer is None:
            self.send_error(404)
            return
        body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass
