"""A comparison's columns: a model spec per pane, and loading it into an engine of its own.

The engine is made by a factory (by default a worker process, EngineClient), so the session's
logic can be driven by a stand-in engine that honours the same few methods.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Protocol

from app.engines.backends import Preflight, preflight
from app.engines.types import EngineError, Event, GenerationRequest, ModelInfo, ModelSpec
from app.hardware import FitEstimate, MemoryState, estimate_fit
from app.reasoning.modes import thinking_request


class LoadedEngine(Protocol):
    """What a session needs of a loaded model: EngineClient, or a stand-in in tests."""

    pid: int | None

    def load(self, spec: ModelSpec, prepared: Preflight | None = None) -> ModelInfo:
        """Load the model; the ModelInfo says what the load produced, its thinking style included."""
        ...

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        """Send the request at once (clearing an earlier cancel) and return its events."""
        ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


EngineFactory = Callable[[], LoadedEngine]


def worker_engine() -> LoadedEngine:
    """The default: each model in a worker process of its own."""
    from app.engines.client import EngineClient

    return EngineClient()


@dataclass
class Pane:
    """One column of the comparison: a model spec, and once loaded its engine and info."""

    spec: ModelSpec
    client: LoadedEngine | None = None
    info: ModelInfo | None = None
    fit: FitEstimate | None = None
    load_error: EngineError | None = None
    thinking_style: str = "none"

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def pid(self) -> int | None:
        return self.client.pid if self.client is not None else None

    @property
    def uses_local_cores(self) -> bool:
        """False for a served model: its server decodes, so live mode leaves this machine's cores to the others."""
        return self.spec.engine != "remote"

    def plan(self, request: GenerationRequest) -> GenerationRequest:
        """The request for this pane: asked to think, a model that cannot is scaffolded instead."""
        if request.thinking and self.thinking_style == "none" and request.strategy == "native":
            return thinking_request(request, self.thinking_style)
        return request


def load_pane(
    spec: ModelSpec, cores: int, make_engine: EngineFactory = worker_engine,
    memory: MemoryState | None = None, force: bool = False,
) -> Pane:
    """A pane with `spec` loaded; one that cannot load keeps its error (and no engine).

    The backend's preflight checks the model once, in this process (a GGUF's header is read here
    and handed to the worker); a model that does not fit is refused unless forced. It loads with
    every core (live mode narrows it per request); the worker resolves its thinking style.
    """
    pane = Pane(spec)
    try:
        prepared = preflight(spec)
        if prepared.header is not None:  # a format without a header (MLX) has no fit estimate
            pane.fit = estimate_fit(prepared.header, prepared.n_ctx, spec.n_gpu_layers, memory=memory)
        if pane.fit is not None and pane.fit.verdict == "too_big" and not force:
            raise EngineError(f"{pane.label} does not fit: {pane.fit.message()}", kind="does_not_fit")
        engine = make_engine()
        pane.info = engine.load(replace(spec, n_threads=spec.n_threads or cores), prepared)
        pane.client = engine
        pane.thinking_style = pane.info.thinking_style
    except EngineError as exc:
        pane.load_error = exc
    return pane
