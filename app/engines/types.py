"""The Engine contract: what a loaded model takes and what it streams back.

An engine is load(spec) -> ModelInfo, generate(request) -> events, cancel(), close(): the worker's
PipelineEngine (pipeline.py) and the parent's EngineClient (client.py) both honour it.

Everything here is a plain, picklable dataclass, because requests and events cross a process
boundary (parent <-> worker) over a pipe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Union


def now() -> float:
    """The clock of every event: monotonic and system-wide, so parent and worker stamps compare.

    perf_counter is CLOCK_MONOTONIC on Linux, mach_absolute_time on macOS and QPC on Windows,
    all shared by every process on the machine (time.monotonic has 15 ms steps on Windows).
    """
    return time.perf_counter()


class EngineError(Exception):
    """A failure the user can act on. `kind` names the category; the message is one clear line."""

    def __init__(self, message: str, kind: str = "engine") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def message(self) -> str:
        return str(self)


@dataclass(frozen=True)
class ModelSpec:
    """Which model file to load and how."""

    path: str
    name: str = ""
    chat_template: str | None = None  # used when the GGUF carries none (or to override it)
    stop: tuple[str, ...] = ()  # extra stop strings the family needs beyond its EOG tokens
    thinking: str | None = None  # "none", "think-tags", "think-tags-switch", "harmony"; None: detect
    n_ctx: int = 4096
    n_gpu_layers: int | None = None  # None: as many as fit the GPU (offload.py); -1: all; 0: the CPU
    n_threads: int | None = None  # None: every physical core
    n_batch: int = 512
    engine: str = "llama.cpp"

    @property
    def label(self) -> str:
        return self.name or self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ModelInfo:
    """What a load actually produced: the figures a run is labelled with."""

    name: str
    path: str
    engine: str
    architecture: str
    n_params: int
    quantization: str
    file_size: int
    n_ctx: int
    n_ctx_train: int
    chat_template_source: str  # "gguf", "catalog", or "none"
    backends_available: tuple[str, ...]  # compiled into this llama.cpp build
    backend_used: str  # where the layers actually run: "CPU", "CUDA", "Metal"...
    n_gpu_layers_requested: int | None  # None: auto
    n_gpu_layers_offloaded: int
    n_layers: int
    n_threads: int
    load_s: float
    engine_version: str
    # How the model marks its thought (app/thinking_styles.py): the spec's, else detected from its
    # template, once, by the worker that loaded it. The parent reads it here.
    thinking_style: str = "none"
    device: str = ""  # the GPU(s) the offloaded layers are on, as the engine names them; "" on the CPU
    offload_note: str = ""  # why this many layers (offload.py's plan), in a sentence

    @property
    def placement(self) -> str:
        """Where it runs, in a few words ("CUDA · RTX 4070 · 20/28 layers"): offload.placement.
        (Imported here: offload reads GGUF headers, whose module raises this module's errors.)"""
        from app.engines.offload import placement

        return placement(self.backend_used, self.device, self.n_gpu_layers_offloaded, self.n_layers, self.n_threads)


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0


@dataclass(frozen=True)
class SampleLimits:
    """One sample's own limits where the k samples of a request differ in them (a sweep's greedy
    answers at several thinking budgets, decoded together)."""

    max_tokens: int
    thinking_budget: int | None = None
    thinking_min: int | None = None
    temperature: float | None = None  # None: the request's (a greedy answer beside sampled ones: 0)


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple[Message, ...]
    max_tokens: int = 512
    sampling: Sampling = field(default_factory=Sampling)
    seed: int = 0
    stop: tuple[str, ...] = ()
    thinking: bool | None = None  # None: the model's default; passed to templates that switch it
    thinking_budget: int | None = None  # tokens of thought before it is closed for an answer
    thinking_budget_message: str | None = None  # None: the default end-of-thinking message
    thinking_min: int | None = None  # budget forcing: an earlier end of the thought is refused with "Wait"
    thinking_continue_message: str | None = None  # None: the default "Wait"
    n_threads: int | None = None  # override the load-time thread count for this request
    cache_prompt: bool = True  # reuse the KV cache of the previous request's common prefix
    strategy: str = "native"  # "native" or "scaffold" (reasoning/modes.py): a scaffold's budget closes on "The answer is"
    logprobs: bool = False  # give each token's log-probability (a cascade router reads its confidence)
    # k samples of this one prompt (seeded seed, seed + 1, …), each its own reply: llama.cpp decodes them
    # in one batch, the prompt evaluated once; every Token and Finished names its sample.
    n_samples: int = 1
    sample_limits: tuple[SampleLimits, ...] = ()  # one per sample where they differ; else the request's

    def for_sample(self, i: int) -> "GenerationRequest":
        """Sample i as a request of its own: its seed (seed + i) and its limits."""
        if not self.sample_limits:
            return replace(self, seed=self.seed + i, n_samples=1)
        limits = self.sample_limits[i]
        sampling = self.sampling if limits.temperature is None else replace(self.sampling,
                                                                            temperature=limits.temperature)
        return replace(self, seed=self.seed + i, n_samples=1, sample_limits=(), max_tokens=limits.max_tokens,
                       thinking_budget=limits.thinking_budget, thinking_min=limits.thinking_min, sampling=sampling)

    @classmethod
    def from_prompt(cls, prompt: str, **kwargs) -> "GenerationRequest":
        return cls(messages=(Message("user", prompt),), **kwargs)


# Events. `t` is taken with now() in the worker, where the thing happened.

THINKING, ANSWER = "thinking", "answer"  # the two channels of a reply


@dataclass(frozen=True)
class Piece:
    """A stretch of a reply's text, labelled: the worker splits the stream once (thought_parser.py),
    and every reader takes the pieces as they come, with no parser of its own."""

    channel: str  # THINKING or ANSWER
    text: str


@dataclass(frozen=True)
class Started:
    t: float
    n_prompt_tokens: int  # the rendered prompt, counted by the model's tokenizer
    n_threads: int
    prompt_opens_thinking: bool = False  # the template ended the prompt with <think>: output starts mid-thought


@dataclass(frozen=True)
class PromptDone:
    t: float
    n_prompt_tokens: int
    n_prompt_evaluated: int  # fewer than n_prompt_tokens when the KV cache prefix was reused
    prompt_eval_s: float | None  # the engine's own timer for the prompt batches; None: a server that keeps none


@dataclass(frozen=True)
class Token:
    t: float
    text: str  # may be "" while a multi-byte character is still incomplete
    token_id: int
    injected: bool = False  # put in by the app (the end-of-thinking message), not generated
    logprob: float | None = None  # natural log of the token's probability, when the request asked
    pieces: tuple[Piece, ...] = ()  # the labelled text this token settles (a marker's may come later)
    channel: str = ANSWER  # where the reply is after this token: THINKING or ANSWER
    sample: int = 0  # which of the request's n_samples replies it belongs to


@dataclass(frozen=True)
class Finished:
    t: float
    finish_reason: str  # "stop" (end of turn or stop string), "length", "cancelled"
    n_generated: int
    engine_decode_s: float  # llama.cpp's timer for single-token decodes, to cross-check ours
    text_tail: str = ""  # text held back at the end (a partial character or stop-string prefix)
    thinking_budget_hit: bool = False  # the budget, not the model, ended the thought
    thinking_extended: int = 0  # times the model's early close was refused for the minimum
    peak_memory_bytes: int | None = None  # the engine's own count at its peak (MLX); None where it keeps none
    pieces: tuple[Piece, ...] = ()  # the labelled text still held at the end (text_tail's, and any marker's)
    thinking_unclosed: bool = False  # the reply ended inside its thought
    limits_note: str = ""  # where the engine could not hold the request's thought limits, in a sentence
    sample: int = 0  # which of the request's n_samples replies ended
    samples_note: str = ""  # how the request's samples were run where it matters (fewer fit; one after another)
    final: bool = True  # the request's last event: False on each of k samples' ends but the last


@dataclass(frozen=True)
class Failed:
    t: float
    kind: str  # e.g. "prompt_too_long", "worker_died", "engine"
    message: str


Event = Union[Started, PromptDone, Token, Finished, Failed]


# The failures every engine checks for before it generates, worded once for all of them.


def refused(spec: "ModelSpec | None", request: "GenerationRequest") -> Failed | None:
    """Why an engine will not start `request` at all (no model loaded, an empty prompt); None: it will.
    Every engine asks first, so each says the same sentence for the same mistake."""
    if spec is None:
        return Failed(now(), "not_loaded", "no model is loaded in this engine")
    return empty_prompt(request)


def empty_prompt(request: "GenerationRequest") -> Failed | None:
    if any(m.content.strip() for m in request.messages):
        return None
    return Failed(now(), "empty_prompt", "the prompt is empty: type a question first")


def render_interrupted(exc) -> Event:
    """A chat template's rendering stopped by a cancel (the run ends cancelled) or its time limit."""
    if exc.cancelled:
        return Finished(now(), "cancelled", 0, 0.0)
    return Failed(now(), "template", f"{exc}: the template loops too long to be used; give the model another "
                                     "chat template (the catalog's chat_template)")


def template_failed(label: str, exc: Exception) -> Failed:
    return Failed(now(), "template", f"{label}'s chat template failed: {exc}")


def prompt_too_long(n_prompt: int, label: str, n_ctx: int) -> Failed | None:
    if n_prompt < n_ctx:
        return None
    return Failed(now(), "prompt_too_long", f"the prompt is {n_prompt:,} tokens but {label} was loaded with a "
                                            f"{n_ctx:,}-token context: shorten the prompt or load it with a larger --ctx")

