"""Models Ollama and LM Studio keep or serve: found where those tools put them, checked, listed, used by -m.

The folders are laid out as those tools lay them out (tests/store_layouts.py): Ollama's manifests
naming blobs by their real sha256, LM Studio's <publisher>/<repo>/<file>.gguf. The GGUFs are a tiny
complete one written by gguf-py (fast lane) or the bundled SmolLM2 (the `model` marker, from its
fixture). Servers are stand-ins on 127.0.0.1 answering the JSON those tools document.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from app import cli, local_stores
from app.engines.types import EngineError
from app.hardware import memory_state
from app.local_stores import (
    LM_STUDIO,
    LM_STUDIO_SERVER,
    OLLAMA,
    Looked,
    OLLAMA_SERVER,
    Places,
    discover,
    lookup,
    ollama_name,
    ollama_url,
    places_from_environment,
    scan_lmstudio,
    scan_ollama,
)
from app.models_overview import store_rows
from tests.engines.test_gguf_header import write_small_gguf
from tests.store_layouts import (
    MODEL,
    StandIn,
    lmstudio_model,
    lmstudio_models,
    model_blob,
    ollama_model,
    ollama_tags,
    write_blob,
    write_manifest,
)

LIBRARY = ("registry.ollama.ai", "library", "tiny", "1b")
NOWHERE = "http://127.0.0.1:9"  # port 9 (discard): nothing answers


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_small_gguf(tmp_path / "tiny.gguf")


@pytest.fixture
def ollama_root(tmp_path) -> Path:
    return tmp_path / "ollama" / "models"


@pytest.fixture
def lms_root(tmp_path) -> Path:
    return tmp_path / "lmstudio" / "models"


def places(ollama: Path | None = None, lms: Path | None = None, **urls) -> Places:
    return Places(ollama_dirs=(ollama,) if ollama else (), lmstudio_dirs=(lms,) if lms else (),
                  ollama_url=urls.get("ollama_url"), lmstudio_url=urls.get("lmstudio_url"))


def only(found):
    assert len(found) == 1, found
    return found[0]


# --- Ollama's store -------------------------------------------------------------------------------


def test_an_ollama_model_is_its_manifests_model_blob_checked_and_named_as_ollama_names_it(ollama_root, tiny):
    ollama_model(ollama_root, tiny, LIBRARY)
    ollama_model(ollama_root, tiny, ("registry.ollama.ai", "someone", "tiny", "latest"))
    ollama_model(ollama_root, tiny, ("hf.co", "bartowski", "Tiny-GGUF", "Q8_0"))
    found = scan_ollama(ollama_root)
    assert [f.name for f in found] == ["hf.co/bartowski/Tiny-GGUF:Q8_0", "someone/tiny:latest", "tiny:1b"]
    model = found[-1]
    blob = ollama_root / "blobs" / f"sha256-{model_blob(ollama_root, tiny)['digest'][7:]}"
    assert (model.source, model.path, model.size_bytes, model.problem) == (OLLAMA, blob, tiny.stat().st_size, None)
    assert (model.architecture, model.ref, model.store) == ("llama", "ollama:tiny:1b", str(ollama_root))
    assert model.header is not None and model.header.chat_template  # the GGUF's own template is the one used
    # The layers beside the model, read as far as they matter here.
    assert any(n.startswith("Ollama's chat template is a Go template") and "the GGUF's own chat template is used" in n
               for n in model.notes)
    assert any("Ollama's settings for it (stop, temperature, top_p) are not applied" in n for n in model.notes)


@pytest.mark.parametrize("parts, name", [
    (("registry.ollama.ai", "library", "qwen3", "1.7b"), "qwen3:1.7b"),
    (("registry.ollama.ai", "jmorgan", "qwen3", "latest"), "jmorgan/qwen3:latest"),
    (("hf.co", "unsloth", "Qwen3-GGUF", "Q4_K_M"), "hf.co/unsloth/Qwen3-GGUF:Q4_K_M"),
])
def test_ollama_names(parts, name):
    assert ollama_name(*parts) == name


def test_a_manifest_whose_digest_leads_outside_the_store_is_refused(ollama_root, tiny):
    layers = [{"mediaType": MODEL, "digest": "sha256:../../../../etc/passwd", "size": 10}]
    write_manifest(ollama_root, LIBRARY, layers)
    model = only(scan_ollama(ollama_root))
    assert model.path is None and model.header is None
    assert model.problem == ("Its manifest names the model blob 'sha256:../../../../etc/passwd', "
                             "which is not a sha256 digest; refused.")


def test_a_blob_that_links_outside_the_store_is_refused(ollama_root, tiny):
    layer = model_blob(ollama_root, tiny)
    blob = ollama_root / "blobs" / f"sha256-{layer['digest'][7:]}"
    blob.unlink()
    blob.symlink_to(tiny)  # a real GGUF, but not Ollama's
    write_manifest(ollama_root, LIBRARY, [layer])
    model = only(scan_ollama(ollama_root))
    assert model.header is None
    assert model.problem == f"Its model blob {blob} links to {tiny.resolve()}, outside Ollama's store; refused."


def test_a_manifest_that_links_outside_the_store_is_refused(ollama_root, tiny, tmp_path):
    elsewhere = write_manifest(tmp_path / "other", LIBRARY, [model_blob(ollama_root, tiny)])
    link = ollama_root / "manifests" / Path(*LIBRARY)
    link.parent.mkdir(parents=True)
    link.symlink_to(elsewhere)
    model = only(scan_ollama(ollama_root))
    assert model.problem == f"Its manifest {link} links to {elsewhere.resolve()}, outside Ollama's store; refused."


def test_a_missing_blob_says_to_pull_again(ollama_root, tiny):
    layer = model_blob(ollama_root, tiny)
    write_manifest(ollama_root, LIBRARY, [layer])
    blob = ollama_root / "blobs" / f"sha256-{layer['digest'][7:]}"
    blob.unlink()
    model = only(scan_ollama(ollama_root))
    assert model.problem == f"Its model blob {blob} is missing; `ollama pull tiny:1b` fetches it again."


def test_a_blob_that_is_not_gguf_is_listed_with_the_header_readers_reason(ollama_root):
    layer = write_blob(ollama_root, json.dumps({"not": "a model"}).encode())
    write_manifest(ollama_root, LIBRARY, [{"mediaType": MODEL, **layer}])
    model = only(scan_ollama(ollama_root))
    assert model.header is None and model.path is not None
    assert "is not a GGUF model (it is a JSON file)" in model.problem


def test_a_blob_shorter_than_its_manifest_says_is_incomplete(ollama_root, tiny):
    layer = model_blob(ollama_root, tiny)
    write_manifest(ollama_root, LIBRARY, [{**layer, "size": layer["size"] + 4096}])
    model = only(scan_ollama(ollama_root))
    assert f"holds {tiny.stat().st_size:,} bytes where the manifest says {tiny.stat().st_size + 4096:,}" in model.problem
    assert "incomplete" in model.problem and "`ollama pull tiny:1b`" in model.problem


@pytest.mark.parametrize("text, problem", [
    ("{not json", "is not valid JSON (Expecting property name enclosed in double quotes at line 1); "
                  "`ollama pull tiny:1b` fetches it again."),
    ("[1, 2]", "has no list of layers, so it is not an Ollama manifest; `ollama pull tiny:1b` fetches it again."),
    ('{"layers": [{"mediaType": "application/vnd.ollama.image.license", "digest": "sha256:' + "0" * 64 + '"}]}',
     "names no model layer (application/vnd.ollama.image.model); `ollama pull tiny:1b` fetches it again."),
])
def test_a_malformed_manifest_is_listed_with_what_is_wrong(ollama_root, text, problem):
    manifest = write_manifest(ollama_root, LIBRARY, text)
    model = only(scan_ollama(ollama_root))
    assert model.problem == f"Its manifest {manifest} {problem}"


def test_files_outside_the_manifest_layout_are_not_models(ollama_root, tiny):
    ollama_model(ollama_root, tiny, LIBRARY)
    (ollama_root / "manifests" / "registry.ollama.ai" / "stray").write_text("{}")  # too shallow
    (ollama_root / "manifests" / "registry.ollama.ai" / "library" / "tiny" / ".DS_Store").write_text("")
    assert [f.name for f in scan_ollama(ollama_root)] == ["tiny:1b"]


# --- LM Studio's folder ---------------------------------------------------------------------------


def test_lm_studio_models_skip_projectors_and_later_split_parts(lms_root, tiny):
    lmstudio_model(lms_root, tiny, "lmstudio-community", "Tiny-GGUF", "Tiny-Q8_0.gguf")
    lmstudio_model(lms_root, tiny, "lmstudio-community", "Tiny-GGUF", "mmproj-Tiny-F16.gguf")
    lmstudio_model(lms_root, tiny, "lmstudio-community", "Tiny-GGUF", "README.md")
    for n in (1, 2):
        lmstudio_model(lms_root, tiny, "bartowski", "Big-GGUF", f"Big-Q4_K_M-{n:05d}-of-00002.gguf")
    found = scan_lmstudio(lms_root)
    assert [f.name for f in found] == ["bartowski/Big-GGUF/Big-Q4_K_M-00001-of-00002.gguf",
                                       "lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf"]
    split, single = found
    assert split.size_bytes == 2 * tiny.stat().st_size and split.problem is None  # every part counted
    assert (single.source, single.problem, single.architecture, single.notes) == (LM_STUDIO, None, "llama", ())
    assert single.ref == "lmstudio:lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf"


def test_a_split_model_with_a_part_missing_says_which(lms_root, tiny):
    first = lmstudio_model(lms_root, tiny, "bartowski", "Big-GGUF", "Big-Q4_K_M-00001-of-00003.gguf")
    lmstudio_model(lms_root, tiny, "bartowski", "Big-GGUF", "Big-Q4_K_M-00003-of-00003.gguf")
    model = only(scan_lmstudio(lms_root))
    assert model.problem == ("Part 2 of 3 of bartowski/Big-GGUF/Big-Q4_K_M-00001-of-00003.gguf "
                             f"(Big-Q4_K_M-00002-of-00003.gguf) is missing from {first.parent}; "
                             "download the model again in LM Studio.")


def test_an_lm_studio_file_that_links_outside_its_folder_is_refused(lms_root, tiny):
    link = lms_root / "someone" / "Tiny-GGUF" / "tiny.gguf"
    link.parent.mkdir(parents=True)
    link.symlink_to(tiny)
    model = only(scan_lmstudio(lms_root))
    assert model.problem == (f"{link} links to {tiny.resolve()}, outside LM Studio's models folder; refused "
                             "(pass that file's own path to -m to use it).")


def test_a_broken_lm_studio_file_is_listed_with_its_reason(lms_root, tiny):
    broken = lms_root / "someone" / "Tiny-GGUF" / "tiny.gguf"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(tiny.read_bytes()[:200])
    model = only(scan_lmstudio(lms_root))
    assert model.header is None and model.problem.startswith(f"Model file '{broken}' ") and "corrupt" in model.problem


# --- where to look --------------------------------------------------------------------------------


def test_places_follow_the_tools_own_variables_and_defaults(tmp_path):
    home = tmp_path / "home"
    linux = places_from_environment({}, home=home, platform="linux")
    assert linux.ollama_dirs == (home / ".ollama/models", Path("/usr/share/ollama/.ollama/models"))
    assert linux.lmstudio_dirs == (home / ".lmstudio/models", home / ".cache/lm-studio/models")
    assert (linux.ollama_url, linux.lmstudio_url) == ("http://127.0.0.1:11434", "http://127.0.0.1:1234")
    assert places_from_environment({}, home=home, platform="darwin").ollama_dirs == (home / ".ollama/models",)
    windows = places_from_environment({"USERPROFILE": str(tmp_path / "me")}, platform="win32")
    assert windows.ollama_dirs == (tmp_path / "me" / ".ollama" / "models",)
    chosen = places_from_environment({"OLLAMA_MODELS": "/data/ollama", "LMSTUDIO_MODELS": "/data/lms",
                                      "OLLAMA_HOST": "0.0.0.0:8080", "FASTSLOW_LMSTUDIO_URL": "http://box:5678/"},
                                     home=home, platform="linux")
    assert (chosen.ollama_dirs, chosen.lmstudio_dirs) == ((Path("/data/ollama"),), (Path("/data/lms"),))
    assert (chosen.ollama_url, chosen.lmstudio_url) == ("http://127.0.0.1:8080", "http://box:5678")


@pytest.mark.parametrize("host, url", [
    ("", "http://127.0.0.1:11434"),
    ("127.0.0.1", "http://127.0.0.1:11434"),
    ("box.lan:9000", "http://box.lan:9000"),
    ("https://ollama.example.com", "https://ollama.example.com:443"),
    ("http://[::1]:11434/", "http://[::1]:11434"),
    ("0.0.0.0", "http://127.0.0.1:11434"),
])
def test_ollama_host_is_read_as_ollamas_client_reads_it(host, url):
    assert ollama_url(host) == url


# --- servers --------------------------------------------------------------------------------------


@pytest.fixture
def servers(request):
    made: list[StandIn] = []

    def make(answers: dict, delay_s: float = 0.0) -> StandIn:
        server = StandIn(answers, delay_s)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def test_served_models_come_from_each_servers_documented_api(servers):
    ollama = servers({"/api/tags": ollama_tags("qwen3:1.7b", "gpt-oss:20b")})
    lms = servers({"/v1/models": lmstudio_models("qwen/qwen3-4b", "text-embedding-nomic-embed-text-v1.5")})
    found = discover(places(ollama_url=ollama.url, lmstudio_url=lms.url))
    served = [(m.source, m.name, m.store) for m in found.models]
    assert served == [(OLLAMA_SERVER, "qwen3:1.7b", ollama.url), (OLLAMA_SERVER, "gpt-oss:20b", ollama.url),
                      (LM_STUDIO_SERVER, "qwen/qwen3-4b", lms.url),
                      (LM_STUDIO_SERVER, "text-embedding-nomic-embed-text-v1.5", lms.url)]
    qwen = found.models[0]
    assert (qwen.quantization, qwen.architecture, qwen.params, qwen.size_bytes) == ("Q4_K_M", "qwen3", "2.0B", 1359296330)
    assert qwen.served and qwen.ref is None and qwen.path is None  # listed, not run (no remote engine yet)
    assert [(l.source, l.state) for l in found.looked] == [(OLLAMA_SERVER, "found"), (LM_STUDIO_SERVER, "found")]


def test_a_server_that_does_not_answer_in_time_is_given_up_on_with_a_clear_message(servers):
    slow = servers({"/api/tags": ollama_tags("qwen3:1.7b")}, delay_s=5)
    started = time.monotonic()
    found = discover(places(ollama_url=slow.url, lmstudio_url=NOWHERE))
    assert time.monotonic() - started < 1.5  # one short wait, not the server's five seconds
    assert found.models == ()
    late, absent = found.looked
    assert (late.source, late.state) == (OLLAMA_SERVER, "failed")
    assert late.message == f"{slow.url} did not answer within 0.3 s; it may be busy loading a model"
    assert (absent.source, absent.state, absent.message) == (LM_STUDIO_SERVER, "absent", f"not running at {NOWHERE}")


@pytest.mark.parametrize("answers, message", [
    ({}, "/api/tags answered HTTP 404 Not Found"),
    ({"/api/tags": b"<html>hello</html>"}, "/api/tags answered with something other than JSON"),
    ({"/api/tags": {"data": []}}, "/api/tags answered without a list of models; is it an Ollama server?"),
])
def test_a_server_that_answers_badly_says_how(servers, answers, message):
    server = servers(answers)
    found = discover(places(ollama_url=server.url))
    (looked,) = found.looked
    assert looked.state == "failed" and looked.message == f"{server.url}{message}"


def test_served_names_that_cannot_be_shown_safely_are_left_out(servers):
    answer = {"models": [{"name": "ok:1b"}, {"name": "bad\x1b[2Jname"}, {"name": 5}, "junk", {"size": 3}]}
    server = servers({"/api/tags": answer})
    assert [m.name for m in discover(places(ollama_url=server.url)).models] == ["ok:1b"]


# --- the listing and -m ---------------------------------------------------------------------------


def test_discovery_says_where_it_looked(ollama_root, lms_root, tiny):
    ollama_model(ollama_root, tiny, LIBRARY)
    found = discover(places(ollama_root, lms_root))
    assert [m.name for m in found.models] == ["tiny:1b"]
    assert [(l.source, l.where, l.state, l.message) for l in found.looked] == [
        (OLLAMA, str(ollama_root), "found", None), (LM_STUDIO, str(lms_root), "absent", f"no folder at {lms_root}")]


def test_a_store_that_cannot_be_read_is_said_and_the_others_still_listed(ollama_root, lms_root, tiny, monkeypatch):
    ollama_model(ollama_root, tiny, LIBRARY)
    lmstudio_model(lms_root, tiny, "someone", "Tiny-GGUF", "tiny.gguf")
    real = os.scandir

    def scandir(path="."):  # what a folder of another user's service (0700) answers; root reads through chmod
        if Path(path) == ollama_root / "manifests":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = discover(places(ollama_root, lms_root))
    assert [m.name for m in found.models] == ["someone/Tiny-GGUF/tiny.gguf"]
    assert found.looked[0] == Looked(OLLAMA, str(ollama_root), "failed",
                                     f"could not read {ollama_root} (Permission denied)")


def test_m_with_a_store_that_cannot_be_read_says_so(ollama_root, tiny, monkeypatch):
    ollama_model(ollama_root, tiny, LIBRARY)
    monkeypatch.setenv("OLLAMA_MODELS", str(ollama_root))

    def scandir(path="."):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(EngineError) as caught:
        cli._resolve("ollama:tiny:1b")
    assert str(caught.value) == f"Could not read Ollama's models in {ollama_root} (Permission denied)."


def test_rows_carry_the_source_fit_and_problems(ollama_root, tiny, servers):
    ollama_model(ollama_root, tiny, LIBRARY)
    write_manifest(ollama_root, ("registry.ollama.ai", "library", "broken", "latest"), "{")
    server = servers({"/api/tags": ollama_tags("qwen3:1.7b")})
    rows = {r["model"]: r for r in store_rows(discover(places(ollama_root, ollama_url=server.url)), 2048, memory_state())}
    good, broken, served = rows["ollama:tiny:1b"], rows["ollama:broken:latest"], rows["qwen3:1.7b"]
    assert (good["source"], good["read_only"], good["quant"], good["architecture"]) == ("ollama", True, "F32", "llama")
    assert good["fit"].split(" (")[0] in ("fits", "tight", "too_big") and "needs ~" in good["fit_detail"]
    assert broken["fit"].startswith("unusable: Its manifest ") and "is not valid JSON" in broken["fit"]
    assert (served["source"], served["format"], served["fit"], served["url"]) == ("ollama-server", "served", "served",
                                                                                 server.url)


def test_m_takes_an_ollama_or_lm_studio_name(ollama_root, lms_root, tiny, monkeypatch):
    ollama_model(ollama_root, tiny, LIBRARY)
    ollama_model(ollama_root, tiny, ("registry.ollama.ai", "library", "tiny", "latest"))
    lmstudio_model(lms_root, tiny, "lmstudio-community", "Tiny-GGUF", "Tiny-Q8_0.gguf")
    monkeypatch.setenv("OLLAMA_MODELS", str(ollama_root))
    monkeypatch.setenv("LMSTUDIO_MODELS", str(lms_root))
    spec = cli._resolve("ollama:tiny:1b", n_ctx=1024)
    assert (spec.name, spec.n_ctx, spec.engine) == ("ollama:tiny:1b", 1024, "llama.cpp")
    assert spec.path == str(lookup("ollama:tiny:1b").path) and Path(spec.path).parent == ollama_root / "blobs"
    assert lookup("ollama:tiny").name == "tiny:latest"  # a bare name is its latest tag, as in Ollama
    for name in ("lmstudio:lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf", "lmstudio:lmstudio-community/Tiny-Q8_0.gguf"):
        spec = cli._resolve(name)
        assert spec.path == str(lms_root / "lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf")
        assert spec.name == "lmstudio:lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf"
    assert lookup("smollm2-135m") is None and lookup(str(tiny)) is None  # catalog ids and paths: resolve's


def test_m_with_a_store_name_that_is_not_there_or_broken_says_so(ollama_root, lms_root, tiny, monkeypatch):
    write_manifest(ollama_root, LIBRARY, "{")
    lmstudio_model(lms_root, tiny, "someone", "A-GGUF", "x.gguf")
    lmstudio_model(lms_root, tiny, "someone", "B-GGUF", "x.gguf")
    monkeypatch.setenv("OLLAMA_MODELS", str(ollama_root))
    monkeypatch.setenv("LMSTUDIO_MODELS", str(lms_root))
    with pytest.raises(EngineError) as missing:
        cli._resolve("ollama:qwen3:1.7b")
    assert missing.value.kind == "unknown_model"
    assert str(missing.value) == (f"Ollama has no model 'qwen3:1.7b' in {ollama_root} (found: ollama:tiny:1b); "
                                  "run `fastslow models` to list them.")
    with pytest.raises(EngineError) as broken:
        cli._resolve("ollama:tiny:1b")
    assert broken.value.kind == "bad_model_file"
    assert str(broken.value).startswith("Ollama model 'tiny:1b' cannot be used: Its manifest ")
    with pytest.raises(EngineError) as two:
        lookup("lmstudio:someone/x.gguf")
    assert "names 2 LM Studio models" in str(two.value) and "give the whole <publisher>/<repo>/<file> name" in str(two.value)


def test_m_with_a_store_that_is_not_here_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "none"))
    with pytest.raises(EngineError) as caught:
        cli._resolve("ollama:qwen3:1.7b")
    assert caught.value.kind == "unknown_model"
    assert str(caught.value) == (f"Ollama keeps no models here: there is no {tmp_path / 'none'}; "
                                 "run `fastslow models` to list the models found.")


def test_m_reads_only_the_named_models_files(ollama_root, tiny, monkeypatch):
    for tag in ("1b", "2b", "3b"):
        ollama_model(ollama_root, tiny, ("registry.ollama.ai", "library", "tiny", tag))
    read = []
    real = local_stores.read_gguf_header
    monkeypatch.setattr(local_stores, "read_gguf_header", lambda path: (read.append(path), real(path))[1])
    assert lookup("ollama:tiny:2b", places(ollama_root)).name == "tiny:2b"
    assert len(read) == 1  # a store of many large models answers -m at once


def test_fastslow_models_has_a_section_per_store_and_server(ollama_root, lms_root, tiny, servers, monkeypatch, capsys):
    ollama_model(ollama_root, tiny, LIBRARY)
    write_manifest(ollama_root, ("registry.ollama.ai", "library", "broken", "latest"), "{")
    slow = servers({"/v1/models": lmstudio_models("qwen/qwen3-4b")}, delay_s=5)
    ollama = servers({"/api/tags": ollama_tags("qwen3:1.7b")})
    monkeypatch.setenv("OLLAMA_MODELS", str(ollama_root))
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    monkeypatch.setenv("FASTSLOW_LMSTUDIO_URL", slow.url)
    assert cli.main(["models", "--ctx", "1024"]) == 0
    out = capsys.readouterr().out
    section = out.split(f"\nOllama ({ollama_root})\n")[1].split("\n\n")[0].splitlines()
    assert section[0].split() == ["model", "params", "quant", "size", "fit"]
    assert section[1].split()[:3] == ["ollama:broken:latest", "—", "—"] and section[1].endswith("unusable (below)")
    assert section[2].split()[:3] == ["ollama:tiny:1b", "0M", "F32"]
    assert section[3].startswith("  ollama:broken:latest: Its manifest ") and "is not valid JSON" in section[3]
    served = out.split(f"\nOllama server ({ollama.url})\n")[1].split("\n\n")[0].splitlines()
    assert served[1].split() == ["qwen3:1.7b", "2.0B", "Q4_K_M", "1.27", "GiB", "served"]
    assert f"\nLM Studio server ({slow.url}): {slow.url} did not answer within 0.3 s" in out
    assert f"\nnot here:\n  LM Studio: no folder at {os.environ['LMSTUDIO_MODELS']}\n" in out
    assert "-m takes these by name (the model column) or by path" in out

    assert cli.main(["models", "--json"]) == 0
    captured = capsys.readouterr()
    rows = {row["model"]: row for row in map(json.loads, captured.out.splitlines())}
    assert rows["ollama:tiny:1b"]["source"] == "ollama" and rows["qwen3:1.7b"]["source"] == "ollama-server"
    assert "smollm2-135m" in rows  # the catalog's rows as before
    assert captured.err == f"fastslow: note: LM Studio server: {slow.url} did not answer within 0.3 s; " \
                           "it may be busy loading a model\n"


# --- with the real bundled model (the `model` marker, from the fixture) -----------------------------


def test_the_bundled_smollm2_pulled_into_ollama_and_lm_studio_is_found_and_fits(tmp_path, smollm2_path):
    gguf = Path(smollm2_path)
    ollama_root, lms_root = tmp_path / "ollama", tmp_path / "lms"
    ollama_model(ollama_root, gguf, ("registry.ollama.ai", "library", "smollm2", "135m"))
    lmstudio_model(lms_root, gguf)
    rows = store_rows(discover(places(ollama_root, lms_root)), 2048, memory_state())
    assert [(r["model"], r["quant"], r["params"], r["size_bytes"]) for r in rows] == [
        ("ollama:smollm2:135m", "Q4_1", "135M", gguf.stat().st_size),
        ("lmstudio:lmstudio-community/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_1.gguf", "Q4_1", "135M",
         gguf.stat().st_size)]
    for row in rows:
        assert row["fit"].split(" (")[0] in ("fits", "tight", "too_big") and row["context_length"] == 8192


def test_compare_runs_a_model_ollama_keeps_by_its_ollama_name(tmp_path, smollm2_path, monkeypatch):
    import subprocess
    import sys

    ollama_root = tmp_path / "ollama"
    ollama_model(ollama_root, Path(smollm2_path), ("registry.ollama.ai", "library", "smollm2", "135m"))
    out = subprocess.run([sys.executable, "-m", "app.cli", "compare", "What is 2 + 2?", "-m", "ollama:smollm2:135m",
                          "--max-tokens", "8", "--json"], capture_output=True, text=True, timeout=240,
                         env={**os.environ, "OLLAMA_MODELS": str(ollama_root)})
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.splitlines()[-1])
    assert record["status"] == "ok" and record["model_info"]["name"] == "ollama:smollm2:135m"
    assert Path(record["model_info"]["path"]).parent == ollama_root / "blobs"  # the blob, not a copy


def test_an_absent_folder_beside_a_found_one_is_no_news():
    found = local_stores.Discovery((), (Looked(OLLAMA, "/home/me/.ollama/models", "found"),
                                        Looked(OLLAMA, "/usr/share/ollama/.ollama/models", "absent", "no folder"),
                                        Looked(LM_STUDIO, "/a", "absent", "no folder"),
                                        Looked(LM_STUDIO, "/b", "absent", "no folder")))
    text = cli._store_sections([], found)
    assert "\nOllama (/home/me/.ollama/models)\nno models\n" in text
    assert text.endswith("\nnot here:\n  LM Studio: no folder at /a or /b\n") and "/usr/share" not in text
