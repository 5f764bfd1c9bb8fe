"""The worker process's first code: the engine's native libraries load before anything imports numpy.

Seen on an NVIDIA H200 machine (CUDA 13.0, llama-cpp-python 0.3.36 built for CUDA, numpy 2.5):
with numpy imported first, llama.cpp crashed (SIGSEGV) loading any model's vocabulary: its
std::regex called a C++ runtime function resolved into libggml-cuda's own copy. With llama.cpp's
libraries loaded first, the same model loaded and generated. So a worker starts here, importing
nothing of the app, and the parent spawns it without re-importing its main module (client.py),
whose imports (the CLI, the window) load numpy long before any engine.
"""

from __future__ import annotations

import importlib

# The module whose import loads each engine's native libraries (llama_cpp loads libllama and
# libggml in llama_cpp.llama_cpp, before its own numpy import in llama_cpp.llama).
NATIVE_FIRST = {"llama.cpp": "llama_cpp"}


def preload(engine: str) -> None:
    """Load `engine`'s native libraries now; one that cannot be imported is left for the load to
    report in its own words."""
    module = NATIVE_FIRST.get(engine)
    if module is None:
        return
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 — the load says why (a missing or broken build), not the boot
        pass


def boot(conn, cancel_flag, engine: str) -> None:
    """The worker's target: its engine's libraries first, then the worker loop (worker.py)."""
    preload(engine)
    from app.engines.worker import worker_main

    worker_main(conn, cancel_flag)
