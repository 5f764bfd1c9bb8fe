"""What one engine library has to provide: a Backend. The request walk they all share is pipeline.py.

A backend knows its library (llama.cpp, MLX): how to load a model, render and tokenize a prompt,
how big the context is, and how to run one decoding pass. It knows nothing of budgets, stop
strings, template time limits or events other than PromptDone: the pipeline does those once for all.
A third backend (a remote server, a batched sampler) is one new file and one line in backends.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

from app.engines.gguf_header import GGUFInfo
from app.engines.types import GenerationRequest, ModelInfo, ModelSpec, PromptDone


@dataclass(frozen=True)
class Rendered:
    """A request's prompt as text, before the pipeline fits the thought's opening to it."""

    text: str
    templated: bool  # False: the model has no chat template and completes the messages' plain text


@dataclass(frozen=True, slots=True)
class Step:
    """One token a decoding pass produced, before the pipeline takes it or refuses it."""

    t: float  # now() when the library handed it over
    token: int
    end_of_turn: bool = False  # an end-of-generation token: it ends the turn and is never shown
    piece: str = ""  # its text as the thinking budget reads it
    raw: bytes = b""  # its bytes, for a backend that decodes its text itself (llama.cpp)
    logprob: float | None = None  # when the request asked for them


@dataclass(frozen=True)
class Ending:
    """What a backend says once a request's passes are over, for its Finished event."""

    text: str  # text still held in its decoder (a partial character, a detokenizer's last word)
    decode_s: float  # the library's own decode timer, to cross-check ours
    peak_memory_bytes: int | None = None  # where the library counts its own memory (MLX)


class PassCancelled(Exception):
    """Raised out of a decoding pass that a cancel stopped inside the library (mid-prompt)."""


class Backend(Protocol):
    """One loaded model in one library. Built with the engine's cancel flag (anything with a
    `.value`), which it may poll where the pipeline cannot: inside prompt processing."""

    def load(self, spec: ModelSpec, header: GGUFInfo | None) -> ModelInfo:
        """Load the model; `header` is the GGUF header the parent read (None: read it, or none).
        The info carries the thinking style, resolved here once (app/thinking_styles.resolve_style).
        Raises EngineError with one clear line when it cannot."""
        ...

    def render(self, request: GenerationRequest) -> Rendered:
        """The prompt text; may be slow or loop (a chat template): the pipeline limits its time."""
        ...

    def tokenize(self, rendered: Rendered) -> list[int]:
        """The prompt's tokens, BOS as the model wants it."""
        ...

    def context_size(self) -> int:
        """The most tokens prompt and reply can take together."""
        ...

    def begin(self, request: GenerationRequest, prompt: list[int]) -> int:
        """Get ready to decode `prompt` (threads, seed, KV cache reuse); returns the threads it runs on."""
        ...

    def decode(self, request: GenerationRequest, limit: int) -> Iterator[PromptDone | Step]:
        """One decoding pass: what was put in since the last (the prompt, first), then up to `limit`
        tokens. PromptDone comes once per request, just before its first Step. The pipeline closes
        the pass early when it is done with it. Raises PassCancelled, or EngineError."""
        ...

    def take(self, step: Step) -> str:
        """The step's token is kept: it joins the context, and its text (may be "") is returned."""
        ...

    def take_back(self, step: Step) -> None:
        """The step's token is refused (a thought closed short of its minimum): undo what it did."""
        ...

    def put_in(self, text: str) -> list[tuple[int, str]]:
        """Queue text the app writes into the reply (a budget's message) for the next pass; its
        tokens and each one's text, to show."""
        ...

    def finish(self) -> Ending:
        """The request's passes are over (ended, stopped or cancelled)."""
        ...

    def close(self) -> None: ...
