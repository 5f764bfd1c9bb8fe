"""Nothing the Hub answers can make a download write, or a delete remove, anything outside its folder.

What a download turns into paths comes from outside: the ETag (a blob's name), the commit (a snapshot
folder's name) and, for an MLX repository, the listed file names. The stand-in Hub of
tests/test_downloads.py is made to lie about each, by hand (the cases of the issue "Nothing lost,
nothing let in") and with hypothesis (arbitrary text): every answer is either refused in one
sentence, before anything is written, or lands inside the hub cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from app import catalog
from app.downloads import DownloadError, delete_model, download_model
from app.engines.types import EngineError
from tests.test_downloads import (  # noqa: F401 (hub, models_dir: fixtures used here)
    COMMIT,
    CONTENT,
    FILE,
    MLX_REPO,
    REPO,
    SMALL,
    FakeHub,
    _Handler,
    git_blob_id,
    hub,
    hub_entry,
    mlx_entry,
    models_dir,
)

# Small enough to be quick, big enough (>= SMALL) to be served as an LFS file, with a SHA-256 ETag.
LFS_FILE, LFS_CONTENT = "lfs-small.gguf", CONTENT[: SMALL + 2000]
LFS_SHA = hashlib.sha256(LFS_CONTENT).hexdigest()
GIT_FILE, GIT_CONTENT = "git-small.gguf", b"a file kept in git, not in LFS"
QUICK_MLX_REPO = {"config.json": b'{"model_type": "llama"}', "model.safetensors": LFS_CONTENT,
                  "tokenizer.json": b"{}"}


class _LyingHandler(_Handler):
    """The stand-in Hub with some of its headers replaced by what `server.lies` says (lowercase names)."""

    def send_header(self, keyword: str, value: str) -> None:
        super().send_header(keyword, getattr(self.server, "lies", {}).get(keyword.lower(), value))


@pytest.fixture
def lying_hub(hub) -> FakeHub:
    hub.lies = {}
    hub.RequestHandlerClass = _LyingHandler  # read per request by socketserver
    hub.files[(REPO, LFS_FILE)] = LFS_CONTENT
    hub.files[(REPO, GIT_FILE)] = GIT_CONTENT
    return hub


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root (links not followed) with a file's bytes: to see what changed."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in root.rglob("*")}


def outside(root: Path, *folders: Path) -> dict[str, bytes | None]:
    """tree(root) less what lies in `folders` (where writes are allowed)."""
    allowed = [str(f.relative_to(root)) for f in folders]
    return {p: v for p, v in tree(root).items()
            if not any(p == a or p.startswith(a + os.sep) for a in allowed)}


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and ". " not in message.rstrip(".")


def download(hub: FakeHub, entry, cache: Path, models: Path) -> Path:
    return download_model(entry, models_dir=models, cache_dir=cache, endpoint=hub.url)


# --- By hand: the cases of the issue ---------------------------------------------------------------


@pytest.mark.parametrize("etag", ["../../../pwned", "../pwned", "..", "not-a-sha256", "A" * 64, "f" * 63],
                         ids=["up-three", "up-one", "dotdot", "no-sha", "uppercase", "short"])
def test_an_etag_that_is_no_sha256_is_refused_before_anything_is_written(lying_hub, models_dir, tmp_path, etag):
    cache = Path(os.environ["HF_HUB_CACHE"])
    lying_hub.lies = {"x-linked-etag": f'"{etag}"'}
    before = outside(tmp_path, cache)
    with pytest.raises(DownloadError) as caught:
        download(lying_hub, hub_entry(), cache, models_dir)
    assert caught.value.kind == "bad_hub_answer"
    assert repr(etag) in caught.value.message and "ETag" in caught.value.message
    assert one_sentence(caught.value.message)
    assert lying_hub.transfers() == []  # refused on the HEAD's answer: no byte fetched
    assert not (tmp_path / "pwned").exists() and outside(tmp_path, cache) == before
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_a_git_files_etag_is_its_checked_blob_id(lying_hub, models_dir):
    """A file kept in git has its git blob id as ETag: a blob name too, and checked like a SHA-256."""
    cache = Path(os.environ["HF_HUB_CACHE"])
    entry = hub_entry(hf_file=GIT_FILE)
    path = download(lying_hub, entry, cache, models_dir)
    assert path.read_bytes() == GIT_CONTENT
    assert (catalog.hf_repo_dir(REPO, cache) / "blobs" / git_blob_id(GIT_CONTENT)).is_file()

    delete_model(entry, models_dir=models_dir, cache_dir=cache)
    lying_hub.lies = {"etag": '"' + "0" * 40 + '"'}  # a blob id, but not this file's
    with pytest.raises(DownloadError) as caught:
        download(lying_hub, entry, cache, models_dir)
    assert caught.value.kind == "bad_checksum" and "deleted" in caught.value.message
    assert not [p for p in cache.rglob("*") if p.is_file()]


@pytest.mark.parametrize("commit", ["../../../../evil", "..", "main", COMMIT[:-1], COMMIT.upper()],
                         ids=["up", "dotdot", "branch", "short", "uppercase"])
def test_a_commit_that_is_no_commit_hash_is_refused_before_anything_is_written(
        lying_hub, models_dir, tmp_path, commit):
    cache = Path(os.environ["HF_HUB_CACHE"])
    lying_hub.lies = {"x-repo-commit": commit}
    before = outside(tmp_path, cache)
    with pytest.raises(DownloadError) as caught:
        download(lying_hub, hub_entry(hf_file=LFS_FILE), cache, models_dir)
    assert caught.value.kind == "bad_hub_answer" and repr(commit) in caught.value.message
    assert one_sentence(caught.value.message)
    assert lying_hub.transfers() == [] and outside(tmp_path, cache) == before
    assert not [p for p in cache.rglob("*") if p.is_file()]


@pytest.mark.parametrize("name", ["../../../../evil.json", "../evil.json", "/tmp/evil.json", "docs/../../evil.json",
                                  "docs/./evil.json", "docs//evil.json", "..\\..\\evil.json", "C:evil.json", ".", ""],
                         ids=["up-four", "up-one", "absolute", "up-inside", "dot", "empty-part", "backslashes",
                              "drive", "only-dot", "empty"])
def test_a_listed_file_name_that_is_no_plain_relative_path_is_refused(lying_hub, models_dir, tmp_path, name):
    cache = Path(os.environ["HF_HUB_CACHE"])
    lying_hub.serve_repo(MLX_REPO, {**QUICK_MLX_REPO, name: b"x" * 50})
    before = outside(tmp_path, cache)
    with pytest.raises(DownloadError) as caught:
        download(lying_hub, mlx_entry(), cache, models_dir)
    assert caught.value.kind == "unsafe_path" and repr(name) in caught.value.message
    assert one_sentence(caught.value.message)
    assert [r for r in lying_hub.requests if r[0] == "HEAD"] == []  # refused on the listing alone
    assert outside(tmp_path, cache) == before and not [p for p in cache.rglob("*") if p.is_file()]


def test_a_gguf_entry_whose_file_leaves_the_folder_is_refused_before_asking(lying_hub, models_dir, tmp_path):
    """An entry made in code (not read from the catalog, which refuses it) is still refused."""
    cache = Path(os.environ["HF_HUB_CACHE"])
    for name in ("../victim.gguf", "/tmp/victim.gguf", "a/../../victim.gguf"):
        with pytest.raises(EngineError) as caught:
            download(lying_hub, hub_entry(hf_file=name), cache, models_dir)
        assert caught.value.kind == "unsafe_path" and repr(name) in caught.value.message
    assert lying_hub.requests == []


def test_a_cached_link_leading_outside_is_removed_not_followed(hub, models_dir, tmp_path):
    """Delete removes the entry's link in the cache, never the file it points to outside the cache."""
    cache = Path(os.environ["HF_HUB_CACHE"])
    entry = hub_entry()
    download(hub, entry, cache, models_dir)
    pointer = catalog.hf_repo_dir(REPO, cache) / "snapshots" / COMMIT / FILE
    victim = tmp_path / "victim.gguf"
    victim.write_bytes(b"not the cache's")
    pointer.unlink()
    pointer.symlink_to(victim)
    delete_model(entry, models_dir=models_dir, cache_dir=cache)
    assert victim.read_bytes() == b"not the cache's"
    assert not os.path.lexists(pointer)


# --- Property-based: arbitrary answers from the Hub ---------------------------------------------------

# What a header can carry (http.server writes latin-1; CR/LF would split it): printable ASCII.
_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
_path_like = st.lists(st.sampled_from(["..", ".", "", "pwned", "a", "/", "\\", "~", "C:", "%2e%2e", " "]),
                      max_size=8).map("/".join)


def _hex_of(n: int) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from("0123456789abcdef"), min_size=n, max_size=n)


_hex = st.sampled_from([38, 39, 40, 41, 63, 64, 65]).flatmap(_hex_of)
# Near misses of a real hash: one character changed into a separator, a dot, an uppercase letter.
_mangled = st.tuples(st.sampled_from([LFS_SHA, COMMIT]), st.integers(0, 39),
                     st.sampled_from(["/", ".", "A", "\\", ""])).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1:])
_answer = st.one_of(_header_text, _path_like, _hex, _mangled)


@st.composite
def _etag_and_commit(draw) -> tuple[str, str]:
    """The true ETag and commit, either or both replaced by an arbitrary answer."""
    spoilt = draw(st.sampled_from(["nothing", "etag", "commit", "both", "another file", "another commit"]))
    if spoilt == "another file":  # a well-formed SHA-256, but not of these bytes
        return draw(_hex_of(64)), COMMIT
    if spoilt == "another commit":  # any well-formed commit is a snapshot folder's name
        return LFS_SHA, draw(_hex_of(40))
    etag = draw(_answer) if spoilt in ("etag", "both") else LFS_SHA
    commit = draw(_answer) if spoilt in ("commit", "both") else COMMIT
    return etag, commit


# File names a repository might list: plain ones, in folders, and the same spoilt.
_plain_name = st.from_regex(r"[a-z][a-z0-9_-]{0,6}(/[a-z][a-z0-9_-]{0,6}){0,2}\.json", fullmatch=True)
_spoilt_name = st.one_of(_plain_name.map(lambda n: "../" + n), _plain_name.map(lambda n: n.replace("/", "/../")),
                         _plain_name.map(lambda n: "/" + n), st.text(max_size=30), _path_like,
                         _path_like.map(lambda s: s + "/x.json"))
# A listing of plain names, about half the time with an arbitrary one among them, in any order.
_names = st.tuples(st.lists(_plain_name, min_size=1, max_size=3), st.lists(_spoilt_name, max_size=1)).flatmap(
    lambda t: st.permutations(t[0] + t[1]))


def _fresh(root: Path) -> tuple[Path, Path]:
    """A new cache and models folder, deep enough below root that any '..' climb still lands in root."""
    base = Path(tempfile.mkdtemp(dir=root)) / "a" / "b" / "c" / "d"
    cache, models = base / "hf", base / "models"
    cache.mkdir(parents=True)
    models.mkdir()
    return cache, models


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=_etag_and_commit())
@example(answer=("../../../pwned", COMMIT))
@example(answer=("../../../../../../pwned", COMMIT))
@example(answer=(LFS_SHA, "../../../../../pwned"))
def test_no_etag_or_commit_writes_outside_the_cache(lying_hub, tmp_path_factory, answer):
    etag, commit = answer
    root = tmp_path_factory.mktemp("etag")
    cache, models = _fresh(root)
    lying_hub.files[(REPO, LFS_FILE)] = LFS_CONTENT
    lying_hub.lies = {"x-linked-etag": f'"{etag}"', "x-repo-commit": commit}
    before = outside(root, cache)
    try:
        path = download(lying_hub, hub_entry(hf_file=LFS_FILE), cache, models)
    except DownloadError as exc:
        event(f"refused: {exc.kind}")
        assert exc.kind in ("bad_hub_answer", "bad_checksum", "hub_error"), exc
        assert not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".incomplete")]
    else:
        event("downloaded")
        assert path.read_bytes() == LFS_CONTENT
        assert Path(cache).resolve() in path.parent.resolve().parents
    assert outside(root, cache) == before


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=_names)
@example(names=["../../../../pwned.json"])
@example(names=["/tmp/pwned.json"])
@example(names=["docs/../../../../../pwned.json"])
def test_no_listed_file_name_writes_or_deletes_outside_the_cache(lying_hub, tmp_path_factory, names):
    root = tmp_path_factory.mktemp("names")
    cache, models = _fresh(root)
    (root / "keep.json").write_bytes(b"keep")  # what a '..' climb would reach, and must leave alone
    lying_hub.serve_repo(MLX_REPO, {**QUICK_MLX_REPO, **{n: b"y" * 20 for n in names}})
    entry = mlx_entry()
    before = outside(root, cache, models)
    try:
        path = download(lying_hub, entry, cache, models)
    except EngineError as exc:  # refused, or a name the stand-in cannot serve: either way said in words
        event(f"refused: {exc.kind}")
        assert isinstance(exc, DownloadError) and exc.message, exc
    else:
        event("downloaded")
        snapshot = path.resolve()
        assert all(snapshot in p.parent.resolve().parents or p.parent.resolve() == snapshot
                   for p in path.rglob("*"))
    assert outside(root, cache, models) == before
    delete_model(entry, models_dir=models, cache_dir=cache)
    assert outside(root, cache, models) == before
    lying_hub.files = {k: v for k, v in lying_hub.files.items() if k[0] != MLX_REPO}
