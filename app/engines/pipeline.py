"""The walk of one request, the same over every backend (backend.py):

empty prompt → template (with a time limit) → direct-mode prefill → tokens → too long? → budget →
Started → decoding passes, with the thought's messages put in between them → Finished | Failed.

Each step that can fail ends the run with one Failed event, worded once in types.py. Between tokens
this checks the cancel flag, holds the thinking budget and minimum, and the stop strings; a backend
only produces tokens. It runs inside a worker process (worker.py); nothing here knows about pipes.
"""

from __future__ import annotations

import contextlib
import ctypes
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from app.engines.backend import Backend, PassCancelled
from app.engines.batched import Reply, generate_samples, samples_in_turn, tagged
from app.engines.deadline import RENDER_LIMIT_S, Interrupted, interruptible
from app.engines.stop_strings import StopMatcher
from app.engines.thought_parser import StreamSplit
from app.engines.thinking_budget import (
    EXTEND_THOUGHT,
    ThinkingBudget,
    budget_for,
    drive_passes,
    pass_end,
    prefill_direct,
)
from app.engines.types import (
    EngineError,
    Event,
    Failed,
    Finished,
    GenerationRequest,
    ModelInfo,
    ModelSpec,
    PromptDone,
    Started,
    refused,
    now,
    prompt_too_long,
    render_interrupted,
    template_failed,
)
from app.thinking_styles import SCAFFOLD_STYLE

BackendFactory = Callable[[object], Backend]  # called with the cancel flag
BATCH_FROM = 2  # samples asked for at which the batched path is taken (a benchmark sets 1 to time it alone)
SEQUENTIAL_NOTE = "this engine runs the samples one after another (no batched decoding): each paid its own prompt"


def samples_that_fit(k: int, n_prompt: int, max_new: int, n_ctx_train: int) -> tuple[int, str]:
    """How many of k replies of max_new tokens fit beside one prompt in the model's context, and why
    fewer when fewer ("" when all do)."""
    if not n_ctx_train or n_prompt + k * max_new <= n_ctx_train:
        return k, ""
    fits = max(1, (n_ctx_train - n_prompt) // max(max_new, 1))
    return fits, (f"{fits} of the {k} samples asked for: {k} replies of {max_new} tokens beside the {n_prompt}-token "
                  f"prompt do not fit the model's {n_ctx_train}-token context")


@dataclass
class _Run:
    """What one request's passes share: the token limit, stop strings, the budget, the count."""

    max_new: int
    stops: StopMatcher
    budget: ThinkingBudget
    split: StreamSplit  # the reply's thought and answer, split once, here, for every reader
    n_gen: int = 0


class PipelineEngine:
    """An Engine (load, generate, cancel, close) over one backend.

    `cancel_flag` is anything with a `.value` (a multiprocessing RawValue shared with the parent);
    without one the engine keeps its own, cleared at each request.
    """

    def __init__(self, make_backend: BackendFactory, cancel_flag=None) -> None:
        self._owns_flag = cancel_flag is None
        self._cancel = cancel_flag if cancel_flag is not None else ctypes.c_byte(0)
        self.backend = make_backend(self._cancel)
        self._spec: ModelSpec | None = None
        self._style = "none"  # the model's thinking style, as its load reported it
        self._n_ctx_train = 0  # the most tokens the model takes: what k samples together must fit

    def load(self, spec: ModelSpec, header=None) -> ModelInfo:
        """Load `spec`; `header` is its GGUF header when the parent read it already."""
        info = self.backend.load(spec, header)
        self._spec, self._style, self._n_ctx_train = spec, info.thinking_style, info.n_ctx_train or info.n_ctx
        return info

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        spec = self._spec
        failed = refused(spec, request)
        if failed:
            yield failed
            return
        if self._owns_flag:
            self._cancel.value = 0
        try:
            with interruptible(self._cancel, RENDER_LIMIT_S, f"{spec.label}'s chat template"):
                prompt, opened = self._prompt(request)
        except Interrupted as exc:  # a template that loops for ever must not hang the pane
            yield render_interrupted(exc)
            return
        except Exception as exc:  # a broken or unsuitable chat template
            yield template_failed(spec.label, exc)
            return
        n_prompt, n_ctx = len(prompt), self.backend.context_size()
        failed = prompt_too_long(n_prompt, spec.label, n_ctx)
        if failed:
            yield failed
            return
        samples = [request.for_sample(i) for i in range(request.n_samples)] if request.n_samples > 1 else [request]
        try:
            for asked in samples:  # limits that cannot hold are refused before Started
                budget_for(asked, opened, self._style)
        except ValueError as exc:
            yield Failed(now(), "bad_request", str(exc))
            return
        style = SCAFFOLD_STYLE if request.strategy == "scaffold" else self._style

        def new_run(asked: GenerationRequest) -> _Run:  # each reply's own limits, stops, budget and split
            return _Run(min(asked.max_tokens, n_ctx - n_prompt), StopMatcher(spec.stop + request.stop),
                        budget_for(asked, opened, self._style), StreamSplit(style, starts_in_thinking=opened))

        if request.n_samples >= BATCH_FROM:
            yield from self._samples(request, prompt, opened, [new_run(asked) for asked in samples], samples)
            return
        threads = self.backend.begin(request, prompt)
        yield Started(now(), n_prompt, threads, opened)
        yield from self._passes(request, new_run(request))

    def _samples(self, request: GenerationRequest, prompt: list[int], opened: bool, runs: list[_Run],
                 samples: list[GenerationRequest]) -> Iterator[Event]:
        """k samples: decoded together where the backend batches (llama.cpp), else one after another."""
        max_new = max(run.max_new for run in runs)
        k, note = samples_that_fit(len(runs), len(prompt), max_new, self._n_ctx_train)
        in_memory = getattr(self.backend, "samples_that_fit_memory", None)
        if in_memory is not None and k > 1:  # and their KV cache must fit the memory free now
            k, why = in_memory(k, len(prompt), max_new)
            note = why or note
        threads = self.backend.begin(request, prompt)
        yield Started(now(), len(prompt), threads, opened)
        batch = getattr(self.backend, "batch", None)
        if batch is None:
            def one(i: int) -> Iterator[Event]:
                if i:
                    self.backend.begin(samples[i], prompt)
                return self._passes(samples[i], runs[i])

            yield from samples_in_turn(k, one, " ".join(filter(None, [note, SEQUENTIAL_NOTE])))
            return

        def reply(i: int) -> Reply:
            return Reply(i, runs[i].max_new, runs[i].stops, runs[i].budget, runs[i].split)

        ended = 0
        for event in generate_samples(batch(), request, prompt, k, max(run.max_new for run in runs[:k]), threads,
                                      reply, lambda: bool(self._cancel.value)):
            if isinstance(event, Finished):
                ended += 1
                event = tagged(event, event.sample, note, final=ended == k)
            yield event

    def _prompt(self, request: GenerationRequest) -> tuple[list[int], bool]:
        """The prompt's tokens, and whether the template left it inside an open thought."""
        rendered, opened = self.backend.render(request), False
        if rendered.templated:
            text, opened = prefill_direct(rendered.text, request.thinking, self._style)
            rendered = replace(rendered, text=text)
        return self.backend.tokenize(rendered), opened

    def _passes(self, request: GenerationRequest, run: _Run) -> Iterator[Event]:
        try:
            finish = yield from drive_passes(run.budget, request, lambda message: self._put_in(message, run),
                                             lambda: self._pass(request, run))
        except PassCancelled:  # stopped inside the library, e.g. half-way through the prompt
            finish = "cancelled"
        except EngineError as exc:
            yield Failed(now(), exc.kind, str(exc))
            return
        ending = self.backend.finish()
        # What the decoder still held is shown, unless a stop string ended the reply.
        tail = "" if finish == "stop" else run.stops.feed(ending.text)[0] + run.stops.flush()
        yield run.split.finished(now(), finish, run.n_gen, ending.decode_s, tail, thinking_budget_hit=run.budget.forced,
                                 thinking_extended=run.budget.extensions, peak_memory_bytes=ending.peak_memory_bytes)

    def _put_in(self, message: str, run: _Run) -> Iterator[Event]:
        # Shown, so the reader sees why the thought stopped or goes on.
        for token, text in self.backend.put_in(message):
            yield run.split.token(now(), text, token, injected=True)

    def _pass(self, request: GenerationRequest, run: _Run):
        """One decoding pass; returns the finish reason, or CLOSE_THOUGHT / EXTEND_THOUGHT when the
        thought must be closed or kept open (the next pass then evaluates only the message put in)."""
        with contextlib.closing(self.backend.decode(request, max(run.max_new - run.n_gen, 1))) as steps:
            for step in steps:
                if isinstance(step, PromptDone):
                    yield step
                    continue
                if self._cancel.value:
                    return "cancelled"
                if step.end_of_turn and not run.budget.refuses("", end_of_turn=True):
                    return "stop"
                if step.end_of_turn or run.budget.refuses(step.piece):
                    self.backend.take_back(step)
                    return EXTEND_THOUGHT
                run.n_gen += 1
                shown, hit = run.stops.feed(self.backend.take(step))
                yield run.split.token(step.t, shown, step.token, logprob=step.logprob)
                end = pass_end(hit, run.n_gen, run.max_new, run.budget, shown)
                if end:
                    return end
        return "length"

    def cancel(self) -> None:
        self._cancel.value = 1

    def close(self) -> None:
        self._spec = None
        self.backend.close()
