"""No catalog entry can name a path outside models/ or the hub cache, so Delete never reaches beyond them.

An entry's local name (hf_file for a GGUF, the id for an MLX folder) becomes models/<name>, and its
hf_repo the cache folder models--owner--name: load_catalog() refuses, in one sentence naming the
entry, any that would lead elsewhere; delete_model() checks the paths it removes again, for an entry
made in code. By hand (the cases of the issue "Nothing lost, nothing let in") and with hypothesis.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from app import catalog
from app.catalog import CatalogError, load_catalog
from app.downloads import delete_model, remove_local
from app.engines.types import EngineError
from tests.test_catalog import VALID_ENTRY, VALID_MLX_ENTRY


def toml_string(text: str) -> str:
    """text as a TOML basic string."""
    escaped = "".join("\\" + c if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c
                      for c in text)
    return f'"{escaped}"'


def entry_text(model_id: str = "tiny", hf_repo: str = "someone/Tiny-GGUF", hf_file: str | None = "tiny.gguf") -> str:
    base = VALID_ENTRY if hf_file is not None else VALID_MLX_ENTRY
    lines = []
    for line in base.splitlines():
        key = line.split(" = ")[0]
        if key == "id":
            line = f"id = {toml_string(model_id)}"
        elif key == "hf_repo":
            line = f"hf_repo = {toml_string(hf_repo)}"
        elif key == "hf_file":
            line = f"hf_file = {toml_string(hf_file)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def load(folder: Path, text: str) -> list[catalog.CatalogEntry]:
    path = folder / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return load_catalog(path)


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and ". " not in message.rstrip(".").split(": ", 1)[-1]


@pytest.fixture
def machine(tmp_path) -> tuple[Path, Path, Path]:
    """models/ and a hub cache inside a folder of their own, with a file beside them that must survive."""
    root = tmp_path / "root"
    models, cache = root / "models", root / "hf"
    models.mkdir(parents=True)
    cache.mkdir()
    (root / "victim.gguf").write_bytes(b"someone else's")
    return root, models, cache


# --- By hand: the cases of the issue ---------------------------------------------------------------


@pytest.mark.parametrize("hf_file", ["../victim.gguf", "/tmp/victim.gguf", "a/../../victim.gguf", "..\\victim.gguf",
                                     "./tiny.gguf", "a//tiny.gguf", "C:victim.gguf", "a/\x00.gguf", "/.gguf"])
def test_an_hf_file_that_leaves_models_is_refused_when_the_catalog_loads(tmp_path, hf_file):
    with pytest.raises(CatalogError) as caught:
        load(tmp_path, entry_text(hf_file=hf_file))
    message = caught.value.message
    assert caught.value.kind == "bad_catalog" and "model 'tiny'" in message and "hf_file" in message
    assert repr(hf_file) in message and one_sentence(message)


@pytest.mark.parametrize("model_id", ["..", ".", ".hidden", "a\\..\\..", "tiny\x00", "~", "-rf"])
def test_an_id_that_is_no_plain_folder_name_is_refused(tmp_path, model_id):
    mlx = entry_text(model_id=model_id, hf_repo="someone/Tiny-4bit", hf_file=None)  # its folder is models/<id>
    for text in (entry_text(model_id=model_id), mlx):
        with pytest.raises(CatalogError) as caught:
            load(tmp_path, text)
        assert "lowercase id" in caught.value.message and one_sentence(caught.value.message)


@pytest.mark.parametrize("hf_repo", ["../x", "a/..", "a/.", "./a", "a/b/c", "a\\..\\b/c", "a--b/c", "a/b..c",
                                     "-a/b", "a/b-", "a /b", "a/b\n", "/a/b"])
def test_an_hf_repo_that_is_no_owner_slash_name_is_refused(tmp_path, hf_repo):
    with pytest.raises(CatalogError) as caught:
        load(tmp_path, entry_text(hf_repo=hf_repo))
    assert "owner/name" in caught.value.message and repr(hf_repo) in caught.value.message
    assert one_sentence(caught.value.message)


def test_the_real_catalogs_names_are_all_plain():
    for entry in load_catalog():
        assert catalog.path_problem(entry.local_name or entry.package_file) is None, entry.id


def test_delete_never_removes_a_file_beside_models(machine):
    """An entry made in code, past the catalog's checks: delete refuses it and removes nothing."""
    root, models, cache = machine
    gguf = next(e for e in load_catalog() if e.hf_repo and not e.is_mlx)
    mlx = next(e for e in load_catalog() if e.is_mlx)
    for entry in (dataclasses.replace(gguf, hf_file="../victim.gguf"),
                  dataclasses.replace(gguf, hf_file=str(root / "victim.gguf")),
                  dataclasses.replace(mlx, id=".."),
                  dataclasses.replace(mlx, id=".")):
        with pytest.raises(EngineError) as caught:
            delete_model(entry, models_dir=models, cache_dir=cache)
        assert caught.value.kind == "unsafe_path"
        assert (root / "victim.gguf").read_bytes() == b"someone else's" and models.is_dir() and cache.is_dir()


def test_remove_local_within_a_folder_stays_in_it(machine):
    root, models, _ = machine
    with pytest.raises(EngineError) as caught:
        remove_local(models / ".." / "victim.gguf", within=models)
    assert caught.value.kind == "unsafe_path"
    assert (root / "victim.gguf").exists()
    (models / "mine.gguf").write_bytes(b"1234")
    assert remove_local(models / "mine.gguf", within=models) == 4


def test_inside_keeps_a_name_in_its_folder(tmp_path):
    assert catalog.inside(tmp_path, "a/b.gguf") == tmp_path / "a" / "b.gguf"
    (tmp_path / "out").symlink_to(tmp_path.parent)
    for name in ("..", ".", "", "../x", "/etc/passwd", "a/../../x", "out/x", "x\x00"):
        with pytest.raises(EngineError) as caught:
            catalog.inside(tmp_path, name)
        assert caught.value.kind == "unsafe_path" and one_sentence(caught.value.message)
    # A link inside the folder is itself the path (removing it removes the link), wherever it points.
    (tmp_path / "link.gguf").symlink_to("/etc/passwd")
    assert catalog.inside(tmp_path, "link.gguf") == tmp_path / "link.gguf"


# --- Property-based: arbitrary strings in the catalog -----------------------------------------------

_segments = st.lists(st.sampled_from(["..", ".", "", "a", "victim", "Tiny-GGUF", "/", "\\", "~", "C:", " ", "\x00",
                                      "-"]), max_size=6)
_path_like = st.one_of(_segments.map("/".join), _segments.map("\\".join), _segments.map("".join))
_text = st.one_of(st.text(max_size=40), _path_like)
# Near-valid values, so that many entries load and their paths get checked, not only refused ones.
_ids = st.from_regex(r"[a-z0-9._~\\/ -]{1,8}", fullmatch=True)
_repos = st.from_regex(r"[A-Za-z0-9._/\\-]{1,6}/[A-Za-z0-9._/\\-]{1,8}", fullmatch=True)
_files = st.from_regex(r"(\.\.|\.|[a-z]{1,4}|)(/(\.\.|\.|[a-z]{1,4}|)){0,3}\.gguf", fullmatch=True)


def _inside(folder: Path, name: str) -> bool:
    """Checked here without app code: folder/name, normalised, lies strictly inside folder."""
    folder = os.path.realpath(folder)
    path = os.path.normpath(os.path.join(folder, name))
    return path != folder and os.path.commonpath([folder, path]) == folder


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model_id=st.sampled_from(["valid", "near", "any"]).flatmap(lambda k: {"valid": st.just("tiny"), "near": _ids,
                                                                           "any": _text}[k]),
       hf_repo=st.sampled_from(["valid", "near", "any"]).flatmap(
           lambda k: {"valid": st.just("someone/Tiny-GGUF"), "near": _repos, "any": _text}[k]),
       hf_file=st.sampled_from(["mlx", "valid", "near", "any"]).flatmap(
           lambda k: {"mlx": st.none(), "valid": st.just("tiny.gguf"), "near": _files,
                      "any": st.one_of(_text.map(lambda s: s + ".gguf"), _text)}[k]))
@example(model_id="tiny", hf_repo="someone/Tiny-GGUF", hf_file="../victim.gguf")
@example(model_id="..", hf_repo="someone/Tiny-4bit", hf_file=None)
def test_no_catalog_entry_leads_outside_models_or_the_cache(tmp_path_factory, model_id, hf_repo, hf_file):
    root = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    models, cache = root / "models", root / "hf"
    models.mkdir()
    cache.mkdir()
    (root / "victim.gguf").write_bytes(b"someone else's")
    try:
        (entry,) = load(root, entry_text(model_id, hf_repo, hf_file))
    except CatalogError as exc:
        event("refused")
        assert exc.message.startswith(f"Model catalog {root / 'catalog.toml'}: model ")
        return
    event("accepted")
    assert _inside(models, entry.local_name)
    repo_dir = catalog.hf_repo_dir(entry.hf_repo, cache)
    assert os.path.dirname(os.path.normpath(repo_dir)) == os.path.normpath(cache)
    assert repo_dir.name not in ("..", ".") and _inside(cache, repo_dir.name)
    # And Delete, on a machine with nothing to delete, leaves everything where it was.
    assert delete_model(entry, models_dir=models, cache_dir=cache) == 0
    assert (root / "victim.gguf").read_bytes() == b"someone else's"
    assert sorted(p.name for p in root.iterdir()) == ["catalog.toml", "hf", "models", "victim.gguf"]
