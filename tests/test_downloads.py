"""app.downloads against a small stand-in for the Hugging Face Hub on localhost: offline and fast.

The stand-in answers what huggingface_hub asks of the real Hub for an LFS file: HEAD (and GET) on
/{repo}/resolve/{revision}/{file} give a redirect to a CDN carrying X-Repo-Commit, X-Linked-Etag
(the SHA-256) and X-Linked-Size; the CDN serves the bytes with Range support. The CDN is addressed
as `localhost` while the Hub is `127.0.0.1`, so huggingface_hub sees another host and does not
follow the redirect on HEAD, as with the real CDN. A small file (under SMALL bytes: config.json,
tokenizer_config.json) is served as the Hub serves a file kept in git rather than LFS: straight from
/resolve, with its git blob id as the ETag. GET /api/models/{repo}[/revision/{rev}] lists a
repository's files ("siblings"), which is how an MLX repository is downloaded whole.

The MLX repository served is a real model folder, converted from the bundled SmolLM2 GGUF.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import json
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
from app.engines.mlx_convert import check_mlx_folder

REPO = "fastslow-test/tiny-GGUF"
FILE = "tiny-q4_k_m.gguf"
OTHER_FILE = "tiny-q8_0.gguf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# 320 KB of deterministic, incompressible bytes (need not be a valid GGUF to be downloaded).
CONTENT = b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(10_000))
OTHER_CONTENT = CONTENT[::-1][:100_000]
CHUNK = 32 * 1024  # huggingface_hub streams in 10 MB chunks; small ones give several updates
SMALL = 10_000  # files below this are served as git files, not LFS (as the Hub does below ~10 MB)
MLX_REPO = "fastslow-test/tiny-mlx-4bit"


@functools.lru_cache(maxsize=16)  # the stand-in answers two HEADs per file; hash 100 MB once
def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


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

    def transfers(self) -> list[tuple[str, str, str | None]]:
        """GETs of file contents (not of the repository listing)."""
        return [r for r in self.gets() if not r[1].startswith("/api/")]

    def serve_repo(self, repo: str, files: dict[str, bytes]) -> None:
        self.files.update({(repo, name): data for name, data in files.items()})


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
        parts = self.path.split("?")[0].lstrip("/").split("/")
        if parts[0] == "cdn":
            return self._cdn("/".join(parts[1:3]), "/".join(parts[3:]), with_body)
        if parts[:2] == ["api", "models"]:
            return self._listing("/".join(parts[2:4]), with_body)
        repo, rest = "/".join(parts[:2]), parts[2:]
        if len(rest) < 3 or rest[0] != "resolve" or all(r != repo for r, _ in hub.files):
            return self._error("RepoNotFound")
        filename = "/".join(rest[2:])
        if (repo, filename) not in hub.files:
            return self._error("EntryNotFound")
        data = hub.files[(repo, filename)]
        if len(data) < SMALL:  # a git file: no redirect, no X-Linked-*; the git blob id as ETag
            return self._send(data, with_body, {"X-Repo-Commit": COMMIT, "ETag": f'"{git_blob_id(data)}"'})
        sha = "f" * 64 if hub.lie_about_sha else sha256_of(data)
        self.send_response(302)
        self.send_header("Location", f"http://localhost:{hub.server_port}/cdn/{repo}/{filename}")
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", '"3a8e5ad1b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5"')  # pointer's git sha
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _listing(self, repo: str, with_body: bool) -> None:
        """What HfApi.model_info reads: the commit and every file of the repository."""
        names = [name for r, name in self.server.files if r == repo]
        if not names:
            return self._error("RepoNotFound")
        body = json.dumps({"id": repo, "sha": COMMIT, "siblings": [{"rfilename": n} for n in names]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def _cdn(self, repo: str, filename: str, with_body: bool) -> None:
        self._send(self.server.files[(repo, filename)], with_body)

    def _send(self, data: bytes, with_body: bool, headers: dict[str, str] | None = None) -> None:
        start = 0
        wanted = self.headers.get("Range")
        if wanted:  # huggingface_hub resumes with "bytes=N-"
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
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
    base = next(e for e in catalog.load_catalog() if e.hf_repo is not None and not e.is_mlx)
    fields = {"id": "tiny-test", "hf_repo": REPO, "hf_file": FILE, "size_bytes": len(CONTENT)}
    return dataclasses.replace(base, **{**fields, **changes})


def mlx_entry(**changes) -> catalog.CatalogEntry:
    base = next(e for e in catalog.load_catalog() if e.is_mlx)
    return dataclasses.replace(base, **{"id": "tiny-mlx", "hf_repo": MLX_REPO, **changes})


@pytest.fixture(scope="session")
def mlx_model_files(smollm2_path, tmp_path_factory) -> dict[str, bytes]:
    """A real MLX model folder's files (SmolLM2 converted from the bundled GGUF), as a repo serves them."""
    pytest.importorskip("mlx", reason="building an MLX folder needs MLX (pip install -e '.[mlx]')")
    from app.engines.mlx_convert import convert_gguf

    folder = convert_gguf(smollm2_path, tmp_path_factory.mktemp("mlx-repo") / "smollm2-mlx")
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    files["README.md"] = b"# A stand-in for an mlx-community repository\n"
    return files


@pytest.fixture
def mlx_hub(hub, mlx_model_files) -> FakeHub:
    hub.serve_repo(MLX_REPO, mlx_model_files)
    return hub


# A complete MLX folder as far as the checks go (file contents are the engine's business): for the
# error paths, which need no real model.
SMALL_MLX_REPO = {"docs/empty.txt": b"", "config.json": b'{"model_type": "llama"}', "model.safetensors": CONTENT,
                  "tokenizer.json": OTHER_CONTENT}  # a file in a folder, and an empty one, listed first


@pytest.fixture(params=["gguf", "mlx"])
def entry(request, hub) -> catalog.CatalogEntry:
    """Each format's entry on the stand-in: the paths they share fail the same way."""
    if request.param == "gguf":
        return hub_entry()
    hub.serve_repo(MLX_REPO, SMALL_MLX_REPO)
    return mlx_entry(size_bytes=sum(map(len, SMALL_MLX_REPO.values())))


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


def test_cancel_before_start_fetches_nothing(hub, entry, models_dir):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        fetch(hub, models_dir, entry=entry, cancel=cancel)
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


def test_unreachable_hub_is_no_network(hub, entry, models_dir):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir, entry=entry, endpoint=closed)
    assert caught.value.kind == "no_network"
    assert "Cannot reach Hugging Face" in caught.value.message
    assert "internet connection" in caught.value.message


def test_offline_mode_is_no_network(hub, entry, models_dir, monkeypatch, request):
    from huggingface_hub import constants, utils

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    # Before 1.0 the switch is read when huggingface_hub makes its cached requests session.
    reset_sessions = getattr(utils, "reset_sessions", lambda: None)
    reset_sessions()
    request.addfinalizer(reset_sessions)
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir, entry=entry)
    assert caught.value.kind == "no_network" and "HF_HUB_OFFLINE" in caught.value.message
    assert hub.requests == []


def test_too_little_disk_space_is_refused_before_downloading(hub, entry, models_dir, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir, entry=entry)
    assert caught.value.kind == "disk_full"
    assert "free some space" in caught.value.message and "HF_HUB_CACHE" in caught.value.message
    assert hub.transfers() == []  # at most the repository's listing


def test_disk_filling_up_midway_is_disk_full(hub, entry, models_dir, monkeypatch):
    import huggingface_hub.file_download

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(huggingface_hub.file_download, "http_get", full)
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir, entry=entry)
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


# --- MLX: a whole repository ---------------------------------------------------------------------


def repo_dir() -> Path:
    return catalog.hf_repo_dir(MLX_REPO, Path(os.environ["HF_HUB_CACHE"]))


def test_an_mlx_repository_downloads_whole_with_progress_over_its_total(mlx_hub, mlx_model_files, models_dir):
    entry, total = mlx_entry(), sum(map(len, mlx_model_files.values()))
    seen: list[DownloadProgress] = []
    path = fetch(mlx_hub, models_dir, entry=entry, progress=seen.append)

    assert path == repo_dir() / "snapshots" / COMMIT
    assert {p.name: p.read_bytes() for p in path.iterdir()} == mlx_model_files
    assert check_mlx_folder(path)["model_type"] == "llama"
    assert catalog.locate(entry, models_dir) == path
    spec = catalog.resolve(entry.id, catalog=[entry], models_dir=models_dir)
    assert (spec.path, spec.engine) == (str(path), "mlx")

    counts = [p.downloaded_bytes for p in seen]
    assert len(seen) > 5 and counts == sorted(counts)
    assert all(p.model_id == entry.id and p.total_bytes == total for p in seen)
    assert seen[-1].done and seen[-1].downloaded_bytes == total
    assert not any(p.done for p in seen[:-1])
    assert not list((repo_dir() / "blobs").glob("*.incomplete"))
    config = mlx_model_files["config.json"]  # a git file: stored under its git blob id, not a SHA-256
    assert (repo_dir() / "blobs" / git_blob_id(config)).read_bytes() == config
    # config.json comes last: until then the snapshot does not look like a model.
    resolved = [r[1] for r in mlx_hub.requests if r[0] == "HEAD"]
    assert resolved[-1].endswith("/config.json")

    mlx_hub.requests.clear()
    assert fetch(mlx_hub, models_dir, entry=entry) == path and mlx_hub.requests == []


def test_an_mlx_download_cancelled_midway_resumes_where_it_stopped(mlx_hub, mlx_model_files, models_dir):
    entry, total = mlx_entry(), sum(map(len, mlx_model_files.values()))
    weights = mlx_model_files["model.safetensors"]
    cancel = threading.Event()

    def stop_halfway(p: DownloadProgress) -> None:
        if p.downloaded_bytes >= total // 2:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        fetch(mlx_hub, models_dir, entry=entry, progress=stop_halfway, cancel=cancel)
    assert catalog.locate(entry, models_dir) is None
    partial = repo_dir() / "blobs" / f"{sha256_of(weights)}.incomplete"
    kept = partial.stat().st_size
    assert total // 3 < kept < len(weights) and partial.read_bytes() == weights[:kept]

    mlx_hub.requests.clear()
    seen: list[DownloadProgress] = []
    path = fetch(mlx_hub, models_dir, entry=entry, progress=seen.append)
    assert (path / "model.safetensors").read_bytes() == weights
    assert catalog.locate(entry, models_dir) == path
    weight_gets = [r for r in mlx_hub.transfers() if r[1].endswith("/model.safetensors")]
    assert [r[2] for r in weight_gets] == [f"bytes={kept}-"]  # only the rest of the weights
    assert len(weights) - kept in mlx_hub.sent
    assert seen[0].downloaded_bytes > kept and seen[-1].done and seen[-1].downloaded_bytes == total


def test_files_in_folders_and_empty_files_of_an_mlx_repository_arrive_too(hub, models_dir):
    hub.serve_repo(MLX_REPO, SMALL_MLX_REPO)
    path = fetch(hub, models_dir, entry=mlx_entry())
    assert path == repo_dir() / "snapshots" / COMMIT
    assert {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()} == SMALL_MLX_REPO


@pytest.mark.parametrize("missing, words", [("tokenizer.json", "a tokenizer"), ("model.safetensors", "weights")])
def test_a_repository_that_is_not_a_complete_mlx_model_is_reported_and_removed(hub, models_dir, missing, words):
    hub.serve_repo(MLX_REPO, {k: v for k, v in SMALL_MLX_REPO.items() if k != missing})
    entry = mlx_entry()
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir, entry=entry)
    message = caught.value.message
    assert caught.value.kind == "not_mlx_model"
    assert message.startswith(f"{MLX_REPO} is not a complete MLX model: it lacks {words}")
    assert "removed" in message and f"hf_repo of {entry.id} in models/catalog.toml" in message
    assert not repo_dir().exists()  # nothing half-valid left behind
    assert catalog.locate(entry, models_dir) is None


def test_an_mlx_repository_that_is_not_there_is_not_found(hub, models_dir):
    entry = mlx_entry(hf_repo="nobody/nothing")
    with pytest.raises(DownloadError) as caught:
        fetch(hub, models_dir, entry=entry)
    assert caught.value.kind == "not_found"
    assert "Hugging Face has no repository nobody/nothing" in caught.value.message
    assert f"fix hf_repo of {entry.id} in models/catalog.toml" in caught.value.message


def test_the_models_overview_shows_a_downloaded_mlx_entry_once(mlx_hub, mlx_model_files, models_dir, monkeypatch):
    from app.hardware import memory_state
    from app.models_overview import overview

    entry = mlx_entry()
    monkeypatch.setattr(catalog, "load_catalog", lambda path=catalog.CATALOG_PATH: [entry])
    (row,) = overview(2048, memory_state(), models_dir)  # what `fastslow models` prints
    assert (row["model"], row["format"], row["where"], row["size_bytes"]) == (entry.id, "MLX", "not downloaded",
                                                                              entry.size_bytes)
    path = fetch(mlx_hub, models_dir, entry=entry)
    # Also put where huggingface-cli would: still one row, the catalog's.
    shutil.copytree(path, models_dir / entry.local_name)
    (row,) = overview(2048, memory_state(), models_dir)
    assert row["path"] == str(models_dir / entry.local_name) and row["format"] == "MLX"
    assert row["size_bytes"] == sum(map(len, mlx_model_files.values()))
    assert (row["quant"], row["architecture"], row["context_length"]) == ("MLX 4-bit", "llama", 8192)
    assert row["fit"].split("? (~")[0] in ("fits", "tight", "too_big") and "the model's size" in row["fit_detail"]

    monkeypatch.setattr("app.models_overview.mlx_unavailable", lambda: "MLX is not installed (mlx)")
    (row,) = overview(2048, memory_state(), models_dir)
    assert row["fit"] == "needs MLX" and row["fit_detail"].startswith("MLX is not installed (mlx). ")


def test_delete_frees_a_downloaded_mlx_repository(mlx_hub, mlx_model_files, models_dir):
    entry = mlx_entry()
    fetch(mlx_hub, models_dir, entry=entry)
    assert delete_model(entry, models_dir=models_dir) == sum(map(len, mlx_model_files.values()))
    assert catalog.locate(entry, models_dir) is None and not repo_dir().exists()
    assert delete_model(entry, models_dir=models_dir) == 0


def test_an_mlx_folder_put_into_models_is_found_and_deleted(hub, models_dir):
    entry = mlx_entry()
    folder = models_dir / entry.local_name  # where `huggingface-cli download … --local-dir` puts it
    folder.mkdir()
    for name, data in SMALL_MLX_REPO.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(data)
    assert fetch(hub, models_dir, entry=entry) == folder and hub.requests == []
    assert delete_model(entry, models_dir=models_dir) == sum(map(len, SMALL_MLX_REPO.values()))
    assert not folder.exists() and catalog.locate(entry, models_dir) is None


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


def test_without_symlinks_the_file_moves_into_the_snapshot_and_is_found_and_deleted(hub, models_dir, monkeypatch):
    """As huggingface_hub does where the filesystem has no links (Windows without developer mode)."""
    def no_links(*args, **kwargs):
        raise OSError("symbolic links are not available here")

    monkeypatch.setattr(os, "symlink", no_links)
    path = fetch(hub, models_dir)
    assert path.read_bytes() == CONTENT and not path.is_symlink()
    assert catalog.locate(hub_entry(), models_dir) == path
    assert not any(blobs_dir().iterdir())  # moved, not copied: the model is on disk once
    assert delete_model(hub_entry(), models_dir=models_dir) == len(CONTENT)
    assert catalog.locate(hub_entry(), models_dir) is None and not blobs_dir().parent.exists()
