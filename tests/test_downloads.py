"""app.downloads against a small stand-in for the Hugging Face Hub on localhost: offline and fast.

The stand-in answers what huggingface_hub asks of the real Hub for an LFS file: HEAD (and GET) on
/{repo}/resolve/{revision}/{file} give a redirect to a CDN carrying X-Repo-Commit, X-Linked-Etag
(the SHA-256) and X-Linked-Size; the CDN serves the bytes with Range support. The CDN is addressed
as `localhost` while the Hub is `127.0.0.1`, so huggingface_hub sees another host and does not
follow the redirect on HEAD, as with the real CDN.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app import catalog
from app.downloads import (
    DownloadCancelled,
    DownloadError,
    DownloadProgress,
    delete_model,
    download_model,
    import_gguf,
)
from app.engines.gguf_header import GGUFError

REPO = "fastslow-test/tiny-GGUF"
FILE = "tiny-q4_k_m.gguf"
OTHER_FILE = "tiny-q8_0.gguf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# 320 KB of deterministic, incompressible bytes (need not be a valid GGUF to be downloaded).
CONTENT = b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(10_000))
OTHER_CONTENT = CONTENT[::-1][:100_000]
CHUNK = 32 * 1024  # huggingface_hub streams in 10 MB chunks; small ones give several updates


class FakeHub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = {(REPO, FILE): CONTENT, (REPO, OTHER_FILE): OTHER_CONTENT}
        self.lie_about_sha = False  # publish a wrong SHA-256, as a corrupted transfer would look
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header
        self.sent: list[int] = []  # body bytes of each CDN GET

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def gets(self) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[0] == "GET"]


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def _answer(self, with_body: bool) -> None:
        hub = self.server
        hub.requests.append((self.command, self.path, self.headers.get("Range")))
        parts = self.path.lstrip("/").split("/")
        if parts[0] == "cdn":
            return self._cdn("/".join(parts[1:3]), "/".join(parts[3:]), with_body)
        repo, rest = "/".join(parts[:2]), parts[2:]
        if len(rest) < 3 or rest[0] != "resolve" or all(r != repo for r, _ in hub.files):
            return self._error("RepoNotFound")
        filename = "/".join(rest[2:])
        if (repo, filename) not in hub.files:
            return self._error("EntryNotFound")
        data = hub.files[(repo, filename)]
        sha = "f" * 64 if hub.lie_about_sha else hashlib.sha256(data).hexdigest()
        self.send_response(302)
        self.send_header("Location", f"http://localhost:{hub.server_port}/cdn/{repo}/{filename}")
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", '"3a8e5ad1b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5"')  # pointer's git sha
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _cdn(self, repo: str, filename: str, with_body: bool) -> None:
        data = self.server.files[(repo, filename)]
        start = 0
        wanted = self.headers.get("Range")
        if wanted:  # huggingface_hub resumes with "bytes=N-"
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if with_body:
            self.server.sent.append(len(data) - start)
            try:
                self._body(data, start)
            except (BrokenPipeError, ConnectionResetError):  # the client cancelled
                pass

    def _body(self, data: bytes, start: int) -> None:
        """Send the file from `start` on (a test's handler may hold part of it back)."""
        self.wfile.write(data[start:])

    def _error(self, code: str) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    constants = pytest.importorskip("huggingface_hub.constants", reason="downloads need the hub extra: pip install -e '.[hub]'")
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", CHUNK)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # catalog.locate() reads the cache from the environment; download_model gets it explicitly.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    server = FakeHub()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def models_dir(tmp_path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


def hub_entry(**changes) -> catalog.CatalogEntry:
    base = next(e for e in catalog.load_catalog() if e.hf_repo is not None)
    fields = {"id": "tiny-test", "hf_repo": REPO, "hf_file": FILE, "size_bytes": len(CONTENT)}
    return dataclasses.replace(base, **{**fields, **changes})


def fetch(hub: FakeHub, models_dir: Path, entry=None, progress=None, cancel=None, endpoint=None):
    return download_model(
        entry or hub_entry(),
        progress,
        cancel,
        models_dir=models_dir,
        cache_dir=Path(os.environ["HF_HUB_CACHE"]),
        endpoint=endpoint or hub.url,
    )


def blobs_dir() -> Path:
    return Path(os.environ["HF_HUB_CACHE"]) / ("models--" + REPO.replace("/", "--")) / "blobs"


# --- downloading ---------------------------------------------------------------------------------


def test_download_reports_progress_and_catalog_finds_the_file(hub, models_dir):
    seen: list[DownloadProgress] = []
    path = fetch(hub, models_dir, progress=seen.append)

    assert path.read_bytes() == CONTENT
    assert catalog.locate(hub_entry(), models_dir) == path
    counts = [p.downloaded_bytes for p in seen]
    assert len(seen) > 5 and counts == sorted(counts)
    assert all(p.model_id == "tiny-test" and p.total_bytes == len(CONTENT) for p in seen)
    assert seen[-1].done and seen[-1].downloaded_bytes == len(CONTENT) and seen[-1].bytes_per_s > 0
    assert not any(p.done for p in seen[:-1])
    assert not list(blobs_dir().glob("*.incomplete"))

    # A second call finds it at once and transfers nothing.
    hub.requests.clear()
    assert fetch(hub, models_dir) == path and hub.requests == []


def test_cancel_stops_midway_and_the_next_call_resumes_with_a_range_request(hub, models_dir):
    cancel = threading.Event()

    def stop_after_100kb(p: DownloadProgress) -> None:
        if p.downloaded_bytes >= 100_000:
            cancel.set()

    with pytest.raises(DownloadCancelled) as caught:
        fetch(hub, models_dir, progress=stop_after_100kb, cancel=cancel)
    assert caught.value.kind == "cancelled" and "resume" in caught.value.message
    assert isinstance(caught.value, DownloadError)
    partial = blobs_dir() / f"{hashlib.sha256(CONTENT).hexdigest()}.incomplete"
    kept = partial.stat().st_size
    assert 100_000 <= kept < len(CONTENT) and partial.read_bytes() == CONTENT[:kept]
    assert catalog.locate(hub_entry(), models_dir) is None

    hub.requests.clear()
    seen: list[DownloadProgress] = []
    path = fetch(hub, models_dir, progress=seen.append, cancel=threading.Event())
    assert path.read_bytes() == CONTENT
    assert [r[2] for r in hub.gets()] == [f"bytes={kept}-"]
    assert hub.sent[-1] == len(CONTENT) - kept  # only the rest crossed the wire
    assert seen[0].downloaded_bytes > kept and seen[-1].done
    assert not partial.exists()


def test_cancel_before_start_fetches_nothing(hub, models_dir):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        fetch(hub, models_dir, cancel=cancel)
    assert hub.requests == []


def test_checksum_mismatch_deletes_the_file(hub, models_dir):
    hub.lie_about_sha = True
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir)
    assert caught.value.kind == "bad_checksum"
    assert "SHA-256" in caught.value.message and "download it again" in caught.value.message
    assert not any(blobs_dir().iterdir())
    assert catalog.locate(hub_entry(), models_dir) is None


@pytest.mark.parametrize("changes", [{"hf_file": "missing.gguf"}, {"hf_repo": "nobody/nothing"}])
def test_missing_repo_or_file_is_not_found(hub, models_dir, changes):
    entry = hub_entry(**changes)
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir, entry=entry)
    assert caught.value.kind == "not_found"
    assert f"{entry.hf_repo}/{entry.hf_file}" in caught.value.message
    assert "catalog.toml" in caught.value.message


def test_unreachable_hub_is_no_network(hub, models_dir):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir, endpoint=closed)
    assert caught.value.kind == "no_network"
    assert "Cannot reach Hugging Face" in caught.value.message
    assert "internet connection" in caught.value.message


def test_offline_mode_is_no_network(hub, models_dir, monkeypatch, request):
    from huggingface_hub import constants, utils

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    # Before 1.0 the switch is read when huggingface_hub makes its cached requests session.
    reset_sessions = getattr(utils, "reset_sessions", lambda: None)
    reset_sessions()
    request.addfinalizer(reset_sessions)
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir)
    assert caught.value.kind == "no_network" and "HF_HUB_OFFLINE" in caught.value.message
    assert hub.requests == []


def test_too_little_disk_space_is_refused_before_downloading(hub, models_dir, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir)
    assert caught.value.kind == "disk_full"
    assert "free some space" in caught.value.message and "HF_HUB_CACHE" in caught.value.message
    assert hub.gets() == []


def test_disk_filling_up_midway_is_disk_full(hub, models_dir, monkeypatch):
    import huggingface_hub.file_download

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(huggingface_hub.file_download, "http_get", full)
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir)
    assert caught.value.kind == "disk_full" and "free some space" in caught.value.message


def test_bundled_model_is_not_a_hub_model(models_dir):
    bundled = next(e for e in catalog.load_catalog() if e.is_bundled)
    for action in (lambda: download_model(bundled), lambda: delete_model(bundled)):
        with pytest.raises(DownloadError) as caught:
            action()
        assert caught.value.kind == "not_a_hub_model" and bundled.package in caught.value.message


def test_without_huggingface_hub_says_what_to_install(models_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    with pytest.raises(DownloadError) as caught:
        download_model(hub_entry(), models_dir=models_dir)
    assert caught.value.kind == "no_hub_library"
    assert "pip install 'fastslow[hub]'" in caught.value.message


# --- deleting ------------------------------------------------------------------------------------


def test_delete_frees_the_bytes_and_keeps_other_files_of_the_repo(hub, models_dir):
    entry, other = hub_entry(), hub_entry(id="tiny-other", hf_file=OTHER_FILE)
    fetch(hub, models_dir, entry=entry)
    kept = fetch(hub, models_dir, entry=other)

    assert delete_model(entry, models_dir=models_dir) == len(CONTENT)
    assert catalog.locate(entry, models_dir) is None
    assert catalog.locate(other, models_dir) == kept and kept.read_bytes() == OTHER_CONTENT

    assert delete_model(other, models_dir=models_dir) == len(OTHER_CONTENT)
    assert not blobs_dir().parent.exists()  # nothing left of the repo
    assert delete_model(other, models_dir=models_dir) == 0


def test_delete_removes_a_file_dropped_into_models(hub, models_dir):
    (models_dir / FILE).write_bytes(CONTENT)
    assert catalog.locate(hub_entry(), models_dir) == models_dir / FILE
    assert delete_model(hub_entry(), models_dir=models_dir) == len(CONTENT)
    assert catalog.locate(hub_entry(), models_dir) is None


# --- importing -----------------------------------------------------------------------------------


def test_import_copies_a_real_gguf_once(smollm2_path, models_dir):
    copied = import_gguf(smollm2_path, models_dir)
    assert copied == models_dir / Path(smollm2_path).name
    assert copied.stat().st_size == Path(smollm2_path).stat().st_size
    assert catalog.local_gguf_files(models_dir) == [copied]

    before = copied.stat().st_mtime_ns
    assert import_gguf(smollm2_path, models_dir) == copied  # same file again: nothing to do
    assert import_gguf(copied, models_dir) == copied
    assert copied.stat().st_mtime_ns == before


def test_import_refuses_to_overwrite_a_different_file(smollm2_path, models_dir):
    (models_dir / Path(smollm2_path).name).write_bytes(b"someone else's model")
    with pytest.raises(DownloadError) as caught:
        import_gguf(smollm2_path, models_dir)
    assert caught.value.kind == "file_exists" and "rename" in caught.value.message
    assert (models_dir / Path(smollm2_path).name).read_bytes() == b"someone else's model"


def test_import_rejects_a_file_that_is_not_gguf(tmp_path, models_dir):
    fake = tmp_path / "notes.gguf"
    fake.write_bytes(b"these are not the weights you are looking for" * 10)
    with pytest.raises(GGUFError) as caught:
        import_gguf(fake, models_dir)
    assert caught.value.kind == "bad_model_file" and "notes.gguf" in caught.value.message
    assert list(models_dir.iterdir()) == []

    with pytest.raises(GGUFError) as caught:
        import_gguf(tmp_path / "absent.gguf", models_dir)
    assert caught.value.kind == "missing_model_file"
