"""Fetch a catalog model from Hugging Face (progress, cancel, resume, checksum); tidy up.

A GGUF entry is one file of its repository; an MLX entry is every file of its repository (the model
folder), fetched one after another by the same code, with one progress over the total and one
disk-space check up front. Qt-free: the GUI's model manager runs download_model() in a worker
thread. Files land in the standard hub cache, where catalog.locate() finds them.

Why not hf_hub_download alone: since 1.x it writes to a process-unique temporary file that it
deletes on any failure (huggingface_hub PR #4228), so a cancelled 5 GB download restarts from zero.
Here huggingface_hub's own http_get (its session, auth, proxies, retries) appends to
blobs/<sha256>.incomplete, which survives a cancel or a dropped network, and the next call asks for
the rest with a Range header. The checked blob is then linked into snapshots/<commit>/ and refs/main
names the commit: the layout huggingface_hub itself writes and reads.

Nothing the Hub answers is trusted as a path: a blob is named only by a SHA-256 (an LFS file) or a
git blob id (a file kept in git), and checked against it; a snapshot only by a commit hash; a listed
file only by a plain relative path; and every path made from them (or from a catalog entry, to
write or to delete) goes through catalog.inside(), which refuses any that leaves its folder.
"""

from __future__ import annotations

import errno
import hashlib
import inspect
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from app import catalog
from app.catalog import CatalogEntry
from app.engines.gguf_header import read_gguf_header
from app.engines.mlx_convert import check_mlx_folder
from app.engines.types import EngineError
from app.units import size_text

_SHA256 = re.compile(r"[0-9a-f]{64}")  # an LFS file's ETag: its content's SHA-256
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")  # a git file's ETag (its blob id), and a commit hash
_BLOCK = 1 << 20


class DownloadError(EngineError):
    """A download (or import) that could not finish; `kind` says why, the message what to do."""


class DownloadCancelled(DownloadError):
    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"Download of {model_id} was cancelled; start it again to resume where it stopped.",
            kind="cancelled",
        )


@dataclass(frozen=True)
class DownloadProgress:
    model_id: str
    downloaded_bytes: int  # including what an earlier, interrupted call already fetched
    total_bytes: int | None
    bytes_per_s: float  # bytes fetched by this call over its time so far
    done: bool = False


class _Reporter:
    """Counts one download's bytes, reports them, and stops the transfer once `cancel` is set."""

    def __init__(self, model_id: str, total: int | None, callback, cancel) -> None:
        self.model_id, self.total, self.callback, self.cancel = model_id, total, callback, cancel
        self.downloaded = self._fresh = 0
        self.base = 0  # bytes of the files before the current one (an MLX repository has several)
        self._start = time.monotonic()

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled(self.model_id)

    def advance(self, n: int) -> None:
        self.check_cancel()  # raised before the chunk is written, so the partial file stays whole
        self.downloaded += n
        self._fresh += n
        self.report()

    def report(self, done: bool = False) -> None:
        if self.callback is not None:
            elapsed = time.monotonic() - self._start
            rate = self._fresh / elapsed if elapsed > 0 else 0.0
            self.callback(DownloadProgress(self.model_id, self.downloaded, self.total, rate, done))


def _bar_class(reporter: _Reporter) -> type:
    """A tqdm that huggingface_hub drives: it draws nothing and forwards every update."""
    from tqdm import tqdm

    class _Bar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            super().__init__(*args, **{**kwargs, "disable": True})  # the GUI draws the bar
            reporter.downloaded = reporter.base + (kwargs.get("initial") or 0)  # a resumed file starts here

        def update(self, n: float | None = 1) -> bool | None:
            reporter.advance(int(n or 0))
            return None

    return _Bar


def _progress_hook(func: Callable, reporter: _Reporter, initial: int = 0) -> dict[str, Any]:
    params = inspect.signature(func).parameters
    if "tqdm_class" in params:  # recent huggingface_hub
        return {"tqdm_class": _bar_class(reporter)}
    if "_tqdm_bar" in params:  # older http_get: the only hook it has
        return {"_tqdm_bar": _bar_class(reporter)(total=reporter.total, initial=initial)}
    return {}


def download_model(
    entry: CatalogEntry,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    *,
    models_dir: Path | None = None,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
) -> Path:
    """Fetch `entry` into the hub cache and return its path (a GGUF file, or an MLX model folder).

    Resumes an interrupted download. Blocking: run it in a worker thread, one call per model at a
    time; `progress` is called from that thread. Setting `cancel` raises DownloadCancelled within
    one chunk (huggingface_hub reads 10 MB at a time). A model already here (cache or models/)
    returns at once. An MLX repository that turns out not to hold a complete model is removed again.
    """
    _require_hub(entry, f"install it with `{entry.install_command}`")
    hub = _hub()
    cache = catalog.hf_cache_dir() if cache_dir is None else Path(cache_dir)
    folder = catalog.MODELS_DIR if models_dir is None else Path(models_dir)
    reporter = _Reporter(entry.id, entry.size_bytes, progress, cancel)

    found = catalog.locate(entry, folder, cache_dir=cache)
    if found is None:
        reporter.check_cancel()
        with _errors_explained(entry):
            found = _fetch_mlx(hub, entry, cache, endpoint, reporter) if entry.is_mlx else (
                _fetch(hub, entry, [entry.hf_file], cache, endpoint, reporter)[0])
    reporter.downloaded = reporter.total = catalog.size_on_disk(found)
    reporter.report(done=True)
    return found


def _require_hub(entry: CatalogEntry, remedy: str) -> None:
    if entry.is_bundled:
        raise DownloadError(
            f"Model {entry.id} ships in the Python package {entry.package}, not on Hugging Face; "
            f"{remedy}.",
            kind="not_a_hub_model",
        )


def _fetch_mlx(hub: Any, entry: CatalogEntry, cache: Path, endpoint: str | None, rep: _Reporter) -> Path:
    """Every file of the repository, then the check that they make an MLX model."""
    names = [s.rfilename for s in hub.HfApi(endpoint=endpoint).model_info(entry.hf_repo).siblings or []]
    _check_names(entry, names)  # before sorting: a name may be anything, not even text
    # config.json last: until every other file is in, the snapshot does not look like a model.
    names.sort(key=lambda name: name == "config.json")
    paths = _fetch(hub, entry, names, cache, endpoint, rep)
    snapshot = paths[0].parents[names[0].count("/")] if paths else catalog.hf_repo_dir(entry.hf_repo, cache)
    try:
        check_mlx_folder(snapshot)
    except EngineError as exc:
        repo = catalog.hf_repo_dir(entry.hf_repo, cache)
        _remove_from_cache(repo, _all_pointers(repo, entry))  # nothing half-valid stays
        raise DownloadError(
            f"{str(exc).replace(str(snapshot), entry.hf_repo)}; the downloaded files were removed "
            f"again. Check hf_repo of {entry.id} in models/catalog.toml.",
            kind="not_mlx_model",
        ) from None
    return snapshot


def _fetch(
    hub: Any, entry: CatalogEntry, names: list[str], cache: Path, endpoint: str | None, rep: _Reporter
) -> list[Path]:
    """These files of entry's repository into the cache, with one progress and space check for all."""
    _check_names(entry, names)
    metas = [_describe(hub, entry, name, endpoint) for name in names]  # all checked before a byte is written
    rep.total = sum(m.size or 0 for m in metas) or entry.size_bytes
    repo = catalog.hf_repo_dir(entry.hf_repo, cache)
    blobs = repo / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    _check_space(blobs, sum(_still_needed(blobs, m) for m in metas), entry.id,
                 "or point HF_HUB_CACHE at a bigger disk")
    paths = []
    for name, meta in zip(names, metas):
        rep.check_cancel()
        paths.append(_fetch_file(entry, name, meta, repo, rep))
        rep.base += meta.size or 0
        rep.downloaded = rep.base
        rep.report()
    return paths


def _check_names(entry: CatalogEntry, names: list[Any]) -> None:
    """Every file name is a plain relative path in the repository, or the download is refused."""
    for name in names:
        problem = catalog.path_problem(name)
        if problem:
            raise DownloadError(
                f"Refused to download {name!r} of {entry.hf_repo}: the name {problem}, so the file could "
                "land outside the model's folder, and nothing was written.",
                kind="unsafe_path",
            )


def _describe(hub: Any, entry: CatalogEntry, name: str, endpoint: str | None) -> Any:
    """The file's metadata from a HEAD request: ETag (the LFS SHA-256 or git blob id), size, commit, location."""
    meta = hub.get_hf_file_metadata(hub.hf_hub_url(entry.hf_repo, name, endpoint=endpoint))
    if not meta.etag or not meta.commit_hash:
        raise DownloadError(
            f"Hugging Face did not describe {entry.hf_repo}/{name} (no ETag or commit); "
            "check HF_ENDPOINT or any proxy, and try again later.",
            kind="hub_error",
        )
    # The ETag names the blob and the commit the snapshot folder: only a hash can be either.
    if not (_SHA256.fullmatch(meta.etag) or _GIT_SHA1.fullmatch(meta.etag)):
        raise _bad_answer(entry, name, f"ETag {meta.etag!r}, which is neither a SHA-256 nor a git blob id")
    if not _GIT_SHA1.fullmatch(meta.commit_hash):
        raise _bad_answer(entry, name, f"commit {meta.commit_hash!r}, which is no commit hash")
    return meta


def _bad_answer(entry: CatalogEntry, name: str, what: str) -> DownloadError:
    return DownloadError(
        f"Hugging Face answered {entry.hf_repo}/{name} with {what}, so nothing was written; check "
        "HF_ENDPOINT or any proxy, and try again later.",
        kind="bad_hub_answer",
    )


def _still_needed(blobs: Path, meta: Any) -> int:
    """Bytes left to fetch for this file: none once its blob is in, less what a partial file holds."""
    if catalog.inside(blobs, meta.etag, "the ETag").is_file():
        return 0
    partial = catalog.inside(blobs, f"{meta.etag}.incomplete", "the ETag")
    return max((meta.size or 0) - (partial.stat().st_size if partial.is_file() else 0), 0)


def _fetch_file(entry: CatalogEntry, name: str, meta: Any, repo: Path, rep: _Reporter) -> Path:
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    blobs = repo / "blobs"
    blob = catalog.inside(blobs, meta.etag, "the ETag")
    partial = catalog.inside(blobs, f"{meta.etag}.incomplete", "the ETag")
    new = not blob.is_file()
    if new:
        have = partial.stat().st_size if partial.is_file() else 0
        with open(partial, "ab") as f:  # opened even when there is nothing to fetch: an empty file
            if meta.size is None or have < meta.size:
                http_get(
                    meta.location, f, resume_size=have, headers=build_hf_headers(),
                    expected_size=meta.size, **_progress_hook(http_get, rep, initial=have),
                )
        _verify(partial, meta.etag, entry, rep)
        os.replace(partial, blob)
    return _link(repo, name, meta, blob, new)


def _link(repo: Path, name: str, meta: Any, blob: Path, new: bool) -> Path:
    """Put the blob where huggingface_hub looks: snapshots/<commit>/<name> links to it, refs/main names
    the commit. Both come from the same checked HEAD answer as the blob (no second, unchecked one)."""
    snapshot = catalog.inside(repo / "snapshots", meta.commit_hash, "the commit")
    pointer = catalog.inside(snapshot, name, "the file name")
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(pointer):
        pointer.unlink()
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
    except OSError:  # no symlinks (Windows without developer mode): as huggingface_hub, the file itself
        (shutil.move if new else shutil.copyfile)(blob, pointer)  # a new blob moves: no second copy on disk
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(meta.commit_hash)
    return pointer


def _verify(path: Path, etag: str, entry: CatalogEntry, rep: _Reporter) -> None:
    """Compare with the checksum the Hub publishes as the ETag; a bad file is deleted."""
    lfs = _SHA256.fullmatch(etag) is not None
    if (_sha256(path, rep) if lfs else _git_blob_id(path, rep)) != etag:
        path.unlink(missing_ok=True)
        what = "SHA-256" if lfs else "git blob id"
        raise DownloadError(
            f"The download of {entry.id} is damaged (its {what} does not match Hugging Face's); "
            "the bad file was deleted, so download it again.",
            kind="bad_checksum",
        )


def _sha256(path: Path, rep: _Reporter | None = None) -> str:
    return _hash(path, hashlib.sha256(), rep)


def _git_blob_id(path: Path, rep: _Reporter | None = None) -> str:
    """What git names a file kept in git by (and the Hub gives as its ETag): SHA-1 of a header and it."""
    return _hash(path, hashlib.sha1(b"blob %d\0" % path.stat().st_size), rep)


def _hash(path: Path, digest: Any, rep: _Reporter | None = None) -> str:
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            if rep is not None:
                rep.check_cancel()  # hashing gigabytes takes seconds; stay cancellable
            digest.update(block)
    return digest.hexdigest()


def _check_space(folder: Path, needed: int, label: str, alternative: str = "") -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DownloadError(
            f"Not enough disk space for {label}: it needs {size_text(needed)} more but {folder} has "
            f"{size_text(free)} free; free some space {alternative}".rstrip() + ".",
            kind="disk_full",
        )


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise DownloadError(
            "Downloading models needs the huggingface_hub package; "
            "install it with `pip install 'fastslow[hub]'`.",
            kind="no_hub_library",
        ) from None
    return huggingface_hub


def _network_errors() -> tuple[type[BaseException], ...]:
    """Transport errors of whichever HTTP library this huggingface_hub uses (requests, httpx...)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):
        loaded = sys.modules.get(module)  # only a library already in use can have raised
        errors += [getattr(loaded, n) for n in names if hasattr(loaded, n)]
    return tuple(errors)


@contextmanager
def _errors_explained(entry: CatalogEntry) -> Iterator[None]:
    """Turn huggingface_hub's and the OS's exceptions into one DownloadError sentence each."""
    from huggingface_hub import utils as hf  # where the error classes live in every version

    where = entry.hf_repo if entry.is_mlx else f"{entry.hf_repo}/{entry.hf_file}"
    try:
        yield
    except DownloadError:
        raise
    except catalog.UnsafePath as exc:  # a path the Hub's answer would have put outside the cache
        raise DownloadError(exc.message, kind="unsafe_path") from None
    except hf.OfflineModeIsEnabled:
        raise DownloadError(
            f"Cannot download {entry.id}: Hugging Face offline mode is on (HF_HUB_OFFLINE); "
            "unset it and try again.",
            kind="no_network",
        ) from None
    except hf.LocalEntryNotFoundError:  # hf_hub_download's "could not reach the Hub"
        raise _no_network(entry) from None
    except hf.GatedRepoError:
        raise DownloadError(
            f"{entry.hf_repo} is gated: accept its terms on its Hugging Face page, log in with "
            "`hf auth login`, and try again.",
            kind="gated",
        ) from None
    except (hf.RepositoryNotFoundError, hf.RevisionNotFoundError, hf.EntryNotFoundError):
        raise _not_found(entry, where) from None
    except hf.HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        if status == 404:
            raise _not_found(entry, where) from None
        raise DownloadError(
            f"Hugging Face answered {status} for {where}; try again later.", kind="hub_error"
        ) from None
    except _network_errors():
        raise _no_network(entry) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DownloadError(
                f"The disk filled up while downloading {entry.id}; free some space and try again "
                "(it resumes where it stopped).",
                kind="disk_full",
            ) from None
        raise


def _no_network(entry: CatalogEntry) -> DownloadError:
    return DownloadError(
        f"Cannot reach Hugging Face to download {entry.id}; check the internet connection (or "
        "proxy) and try again, and it resumes where it stopped.",
        kind="no_network",
    )


def _not_found(entry: CatalogEntry, where: str) -> DownloadError:
    what, keys = ("repository", "hf_repo") if entry.is_mlx else ("file", "hf_repo/hf_file")
    return DownloadError(
        f"Hugging Face has no {what} {where} (or the repository is gone or private); "
        f"fix {keys} of {entry.id} in models/catalog.toml.",
        kind="not_found",
    )


def delete_model(
    entry: CatalogEntry, *, models_dir: Path | None = None, cache_dir: Path | None = None
) -> int:
    """Remove a hub model (its file, or for MLX its whole folder) from the hub cache and from models/.

    Returns the bytes freed.
    """
    _require_hub(entry, f"remove it with `pip uninstall {entry.package}`")
    folder = catalog.MODELS_DIR if models_dir is None else Path(models_dir)
    dropped = catalog.inside(folder, entry.local_name, f"the local name of {entry.id}")
    repo = catalog.hf_repo_dir(entry.hf_repo, cache_dir)
    pointers = _all_pointers(repo, entry)  # checked, like dropped, before anything is removed
    return remove_local(dropped, within=folder) + _remove_from_cache(repo, pointers)


def _all_pointers(repo: Path, entry: CatalogEntry) -> list[Path]:
    snapshots = repo / "snapshots"
    revisions = list(snapshots.iterdir()) if snapshots.is_dir() else []
    return [p for r in revisions for p in _pointers(r, entry)]


def _remove_from_cache(repo: Path, pointers: list[Path]) -> int:
    """These files of the repo's cached revisions, and the blobs nothing else links to; bytes freed.

    A link is removed, never followed out of the repo's blobs/: only a blob there is deleted with it.
    """
    freed = 0
    snapshots = repo / "snapshots"
    blobs = {b for b in map(_blob_of, pointers) if b is not None and _is_blob_of(repo, b)}
    for pointer in pointers:
        if not pointer.is_symlink():  # a copy, where the filesystem has no symlinks (Windows)
            freed += pointer.stat().st_size
        pointer.unlink()
    # Keep a blob that another file of the repo (another snapshot) still links to.
    in_use = {_blob_of(p) for p in snapshots.rglob("*") if p.is_symlink()} if snapshots.is_dir() else set()
    for blob in blobs - in_use:
        if blob.is_file():
            freed += blob.stat().st_size
            blob.unlink()
    # Nothing else of this repo left: drop its folder too (refs, partial downloads in blobs/).
    if repo.is_dir() and not any(p.is_file() for p in snapshots.rglob("*")):
        freed += sum(p.stat().st_size for p in (repo / "blobs").glob("*") if p.is_file())
        shutil.rmtree(repo)
    return freed


def _blob_of(link: Path) -> Path | None:
    """Where a link points, one step (not through further links), its folder resolved: a blob's path."""
    if not link.is_symlink():
        return None
    target = Path(os.path.normpath(link.parent / os.readlink(link)))
    return target.parent.resolve() / target.name


def _is_blob_of(repo: Path, blob: Path) -> bool:
    try:
        catalog.inside(repo / "blobs", blob)
    except catalog.UnsafePath:
        return False
    return True


def remove_local(path: Path, *, within: Path | None = None) -> int:
    """Delete a model file or MLX folder if it is there; the bytes it held.

    With `within`, path must lie inside that folder (UnsafePath otherwise), as a path made from a
    catalog entry must lie inside models/.
    """
    if within is not None:
        path = catalog.inside(within, path, "the path to remove")
    if path.is_dir() and not path.is_symlink():
        size = catalog.size_on_disk(path)
        shutil.rmtree(path)
        return size
    if path.is_file():
        size = path.stat().st_size
        path.unlink()
        return size
    return 0


def _pointers(revision: Path, entry: CatalogEntry) -> list[Path]:
    """The entry's files in one cached revision: its GGUF, or for MLX every file (links included)."""
    if entry.is_mlx:
        return [p for p in revision.rglob("*") if p.is_symlink() or p.is_file()]
    path = catalog.inside(revision, entry.hf_file, f"hf_file of {entry.id}")
    return [path] if os.path.lexists(path) else []


def import_gguf(path: str | os.PathLike, models_dir: Path | None = None) -> Path:
    """Check a local GGUF file and copy it into models/, where the app lists it; return the copy."""
    source = Path(path).expanduser()
    read_gguf_header(source)  # GGUFError, with its own clear message, for anything unusable
    folder = catalog.MODELS_DIR if models_dir is None else Path(models_dir)
    target = catalog.inside(folder, source.name if source.suffix.lower() == ".gguf" else source.stem + ".gguf",
                            "the file name")
    if target.exists():
        if os.path.samefile(source, target) or _same_content(source, target):
            return target
        raise DownloadError(
            f"{folder} already has a different model named {target.name}; rename "
            f"{source.name} or remove the other file first.",
            kind="file_exists",
        )
    folder.mkdir(parents=True, exist_ok=True)
    _check_space(folder, source.stat().st_size, source.name)
    # Copy under a name the app ignores, so an interrupted copy never looks like a model.
    temporary = target.with_name(target.name + ".importing")
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise _copy_failed(exc, source, folder) from None
    return target


def import_mlx_folder(path: str | os.PathLike, models_dir: Path | None = None) -> Path:
    """Check a local MLX model folder and copy it into models/, where the app lists it; return the copy."""
    source = Path(path).expanduser()
    check_mlx_folder(source)  # a clear EngineError for anything incomplete
    folder = catalog.MODELS_DIR if models_dir is None else Path(models_dir)
    target = catalog.inside(folder, source.name, "the folder name")
    if target.exists():
        if os.path.samefile(source, target):
            return target
        raise DownloadError(f"{folder} already has a model named {target.name}; rename {source.name} "
                            "or remove the other one first.", kind="file_exists")
    folder.mkdir(parents=True, exist_ok=True)
    _check_space(folder, catalog.size_on_disk(source), source.name)
    temporary = target.with_name(target.name + ".importing")  # no config.json at the top level: not listed
    try:
        shutil.copytree(source, temporary)
        os.replace(temporary, target)
    except OSError as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        raise _copy_failed(exc, source, folder) from None
    return target


def _copy_failed(exc: OSError, source: Path, folder: Path) -> Exception:
    """A full disk in one clear sentence; any other error as it was."""
    if exc.errno == errno.ENOSPC:
        return DownloadError(f"The disk filled up while copying {source.name} into {folder}; "
                             "free some space and try again.", kind="disk_full")
    return exc


def _same_content(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and _sha256(a) == _sha256(b)


