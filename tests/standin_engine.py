"""A stand-in engine for session logic: it honours the session's engine contract (app/panes.py's
LoadedEngine) and streams scripted tokens on the real clock, so scheduling, cancelling, planning and
logging can be tested without a model or a worker process."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from app.engines.thought_parser import StreamSplit
from app.engines.types import (
    EngineError, Event, Failed, GenerationRequest, ModelInfo, ModelSpec, PromptDone, Started, now,
)


@dataclass
class Script:
    """What the stand-in says to every request: these token texts, one every `step_s`."""

    tokens: tuple[str, ...] = ("The", " answer", " is", " 4", ".")
    step_s: float = 0.002
    fail_load: str | None = None  # a load error's message
    fail_with: str | None = None  # a Failed event's kind, after the prompt
    requests: list[GenerationRequest] = field(default_factory=list)  # what it was asked, in order
    spans: list[tuple[float, float]] = field(default_factory=list)  # each request's (start, end)


class StandinEngine:
    """One loaded "model" in this process; cancel() is seen between tokens, as the real engines do."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.pid: int | None = None  # no worker process: nothing for the sampler to follow
        self._cancel = threading.Event()
        self.spec: ModelSpec | None = None

    def load(self, spec: ModelSpec, prepared=None) -> ModelInfo:
        if self.script.fail_load:
            raise EngineError(self.script.fail_load, kind="load_failed")
        self.spec = spec
        return ModelInfo(
            name=spec.label, path=spec.path, engine="stand-in", architecture="none", n_params=0,
            quantization="none", file_size=0, n_ctx=spec.n_ctx, n_ctx_train=spec.n_ctx,
            chat_template_source="none", backends_available=("CPU",), backend_used="CPU",
            n_gpu_layers_requested=0, n_gpu_layers_offloaded=0, n_layers=1, n_threads=spec.n_threads or 1,
            load_s=0.0, engine_version="0", thinking_style=spec.thinking or "none")

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        self._cancel.clear()  # eager, as EngineClient: a cancel after this returns is seen
        self.script.requests.append(request)
        return self._events(request)

    def _events(self, request: GenerationRequest) -> Iterator[Event]:
        start = now()
        style = "scaffold" if request.strategy == "scaffold" else (self.spec.thinking or "none")
        split = StreamSplit(style)  # the events as a worker's pipeline makes them
        yield Started(start, 7, request.n_threads or 1)
        yield PromptDone(now(), 7, 7, 0.001)
        if self.script.fail_with:
            self.script.spans.append((start, now()))
            yield Failed(now(), self.script.fail_with, "the stand-in was told to fail")
            return
        reason, n = "stop", 0
        for text in self.script.tokens[: request.max_tokens]:
            if self._cancel.is_set():
                reason = "cancelled"
                break
            time.sleep(self.script.step_s)
            n += 1
            yield split.token(now(), text, n)
        else:
            if len(self.script.tokens) > request.max_tokens:
                reason = "length"
        self.script.spans.append((start, now()))
        yield split.finished(now(), reason, n, 0.0)

    def cancel(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        pass


def registered(monkeypatch, thinking: str = "none") -> ModelSpec:
    """A "stand-in" backend of its own in the registry (one entry, as a third backend would be): its
    preflight has no file to check and the stand-in engine does the generating. Returns its spec."""
    from app.engines import backends

    monkeypatch.setitem(backends.BACKENDS, "stand-in", backends.BackendKind(
        "stand-in", "standin_engine:StandinEngine", lambda spec, _header: backends.Preflight(None, None, spec.n_ctx)))
    return ModelSpec(path="stand-in", name="stand-in", thinking=thinking, engine="stand-in")
