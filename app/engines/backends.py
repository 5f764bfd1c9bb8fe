"""Which backends there are, and the check the parent runs on a model before a worker starts.

A ModelSpec names its backend (`spec.engine`). Each has a preflight, run in the parent: it checks
the model's file or folder once, with a clear message for a bad one, and says what the parent needs
(the GGUF header for the fit check, the chat template, the context the load will get). The
backend's own module is imported only in the worker, since it may pull in a large library.

A new backend is one module with a Backend class (backend.py) and one entry in BACKENDS. A served
model ("remote") is an Engine of its own instead (remote_engine.py): the server renders, tokenizes
and samples, so there is no token-level pass for the pipeline to drive.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from app.engines.gguf_header import GGUFInfo, read_gguf_header
from app.engines.mlx_convert import check_mlx_folder, mlx_chat_template
from app.engines.openai_stream import endpoint
from app.engines.pipeline import PipelineEngine
from app.engines.types import EngineError, ModelSpec


@dataclass(frozen=True)
class Preflight:
    """What the parent learns of a model before loading it."""

    header: GGUFInfo | None  # a GGUF's header, handed on to the worker; None for a format without one
    chat_template: str | None  # the spec's, else the model's own; None: it has none
    n_ctx: int  # the context the load will get: the spec's, at most what the model was trained for


@dataclass(frozen=True)
class BackendKind:
    name: str  # as ModelSpec.engine and ModelInfo.engine spell it
    backend: str  # "module:Class" of its Backend, imported in the worker only
    preflight: Callable[[ModelSpec, GGUFInfo | None], Preflight]
    whole_engine: bool = False  # `backend` names an Engine itself (load/generate/cancel/close), not a Backend


def _gguf_preflight(spec: ModelSpec, header: GGUFInfo | None) -> Preflight:
    header = header or read_gguf_header(spec.path)  # GGUFError, one clear sentence, for a bad file
    n_ctx = min(spec.n_ctx, header.context_length or spec.n_ctx)
    return Preflight(header, spec.chat_template or header.chat_template, n_ctx)


def _mlx_preflight(spec: ModelSpec, _header: GGUFInfo | None) -> Preflight:
    check_mlx_folder(spec.path)  # a folder, not a GGUF: no header, so no fit estimate
    return Preflight(None, spec.chat_template or mlx_chat_template(spec.path), spec.n_ctx)


def _remote_preflight(spec: ModelSpec, _header: GGUFInfo | None) -> Preflight:
    """The URL's shape and a model id, no network: the worker's load asks the server (a wrong host
    then says so in one sentence)."""
    endpoint(spec.path)
    if not spec.name.strip():
        raise EngineError(f"name the model the server at {spec.path} serves: remote:{spec.path}#<model id>",
                          kind="load_failed")
    return Preflight(None, None, spec.n_ctx)


BACKENDS: dict[str, BackendKind] = {kind.name: kind for kind in (
    BackendKind("llama.cpp", "app.engines.llama_engine:LlamaCppBackend", _gguf_preflight),
    BackendKind("mlx", "app.engines.mlx_engine:MlxBackend", _mlx_preflight),
    BackendKind("remote", "app.engines.remote_engine:RemoteEngine", _remote_preflight, whole_engine=True),
)}


def backend_kind(name: str) -> BackendKind:
    kind = BACKENDS.get(name)
    if kind is None:
        known = " and ".join(repr(k) for k in BACKENDS)
        raise EngineError(f"unknown engine {name!r}: this build knows {known}", kind="load_failed")
    return kind


def preflight(spec: ModelSpec, header: GGUFInfo | None = None) -> Preflight:
    """Check `spec`'s model before any worker starts; EngineError, in one clear line, if it is unusable.
    `header`: the GGUF's, when the caller read it already (it is not read again)."""
    return backend_kind(spec.engine).preflight(spec, header)


def make_engine(name: str, cancel_flag=None):
    """An engine of the backend `name`, in this process (the worker's): a PipelineEngine over its
    Backend, or the kind's own Engine."""
    kind = backend_kind(name)
    module, _, cls = kind.backend.partition(":")
    made = getattr(importlib.import_module(module), cls)
    return made(cancel_flag) if kind.whole_engine else PipelineEngine(made, cancel_flag)
