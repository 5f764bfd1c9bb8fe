"""A model served by another program (llama-server, vLLM, SGLang, Ollama, LM Studio), as an Engine.

It implements the Engine contract itself (load, generate, cancel, close, emitting the same events),
not the token-level Backend of pipeline.py: a server renders the template, tokenizes and samples on
its side, and streams text, so there is no pass to run, no token to refuse and no message to put in
between passes. What the pipeline does for local models is done here the server's way: the thought
is split from the answer once (reasoning deltas where the server sends them, else <think> tags or
harmony channels through thought_parser), the thinking switch goes in the request (remote_request),
and a budget the server cannot hold is said to be so.

It runs in a worker like every engine (EngineClient): cancel and crash isolation come with it. The
stream is read on a thread of its own, and the request's loop polls the shared cancel byte every
POLL_S, so a cancel shuts the socket and ends the run well within 100 ms even while the server is
silent. Token times are taken as each chunk arrives here: TTFT and tokens/s include the network.
"""

from __future__ import annotations

import ctypes
import queue
import statistics
import threading
from dataclasses import dataclass, replace

from app.engines.openai_stream import Endpoint, EventStream, Timeouts, endpoint, get_json
from app.engines.remote_request import (
    api_key,
    budget_note,
    guess_style,
    chat_body,
    served_ids,
    server_kind,
)
from app.engines.types import (
    THINKING,
    EngineError,
    Event,
    Failed,
    Finished,
    GenerationRequest,
    ModelInfo,
    ModelSpec,
    Piece,
    PromptDone,
    Started,
    Token,
    refused,
    now,
)
from app.engines.batched import samples_in_turn
from app.engines.thought_parser import ReasoningParser
from app.thinking_styles import SCAFFOLD_STYLE, detect_style

POLL_S = 0.02  # how often a waiting request looks at the cancel byte
SERVED_SAMPLES_NOTE = "the server was asked for the samples one after another, a request each"
CHAT_PATH = "/chat/completions"
FINISH_REASONS = {"stop": "stop", "eos": "stop", "length": "length"}  # the server's words → the app's


class RemoteSplit:
    """The reply's thought and answer: a reasoning delta (`reasoning_content`, `reasoning`) is thought
    as the server labelled it; content goes through the model's style's parser (<think> tags, harmony)."""

    def __init__(self, style: str) -> None:
        self.parser = ReasoningParser(style)
        self._in_reasoning = False  # the last delta was the server's labelled thought
        self._reasoned = False

    @property
    def channel(self) -> str:
        return THINKING if self._in_reasoning else self.parser.channel

    def token(self, t: float, reasoning: str, content: str, logprob: float | None) -> Token:
        pieces: list[Piece] = []
        if reasoning:
            pieces.append(Piece(THINKING, reasoning))
            self._in_reasoning = self._reasoned = True
        if content:
            self._in_reasoning = False
            pieces += self.parser.feed(content)
        return Token(t, reasoning + content, -1, logprob=logprob, pieces=tuple(pieces), channel=self.channel)

    def finished(self, t: float, reason: str, n_generated: int, decode_s: float, limits_note: str = "") -> Finished:
        return Finished(t, reason, n_generated, decode_s, pieces=tuple(self.parser.flush()),
                        thinking_unclosed=self._in_reasoning or self.parser.unclosed, limits_note=limits_note)


@dataclass
class _Counts:
    """What the server said of the request beside its text: its own counts and timers."""

    finish: str | None = None
    prompt_tokens: int | None = None
    prompt_evaluated: int | None = None
    prompt_s: float | None = None
    completion_tokens: int | None = None
    decode_s: float | None = None

    def read(self, chunk: dict) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = _int(usage.get("prompt_tokens"), self.prompt_tokens)
            self.completion_tokens = _int(usage.get("completion_tokens"), self.completion_tokens)
        timings = chunk.get("timings")  # llama-server's own timers
        if isinstance(timings, dict):
            evaluated = _int(timings.get("prompt_n"), None)
            self.prompt_evaluated = evaluated
            if evaluated is not None and self.prompt_tokens is None:
                self.prompt_tokens = evaluated + (_int(timings.get("cache_n"), 0) or 0)
            self.prompt_s = _seconds(timings.get("prompt_ms"))
            self.decode_s = _seconds(timings.get("predicted_ms"))

    def prompt_done(self, t: float) -> PromptDone | None:
        if self.prompt_tokens is None:
            return None  # the server gave no counts: the record keeps 0, not a guess
        evaluated = self.prompt_evaluated if self.prompt_evaluated is not None else self.prompt_tokens
        return PromptDone(t, self.prompt_tokens, evaluated, self.prompt_s)


def _int(value, default):
    return int(value) if isinstance(value, (int, float)) and value >= 0 else default


def _seconds(ms) -> float | None:
    return ms / 1000 if isinstance(ms, (int, float)) and ms >= 0 else None


class _Reader(threading.Thread):
    """Opens the stream and reads it, putting (kind, payload) on a queue: ("open", stream),
    ("chunk", (t, json)), ("end", done) or ("error", EngineError). Its own thread, so the
    request's loop can keep looking at the cancel byte while the server is silent."""

    def __init__(self, ep: Endpoint, body: dict, timeouts: Timeouts) -> None:
        super().__init__(name="fastslow-remote-stream", daemon=True)
        self.ep, self.body, self.timeouts = ep, body, timeouts
        self.out: queue.Queue = queue.Queue()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            stream = EventStream(self.ep, CHAT_PATH, self.body, self.timeouts)
            self.out.put(("open", stream))  # before any I/O: a cancel can shut it while the server is silent
            stream.start()
            if self.stop.is_set():  # cancelled while connecting
                stream.close()
                return
            for item in stream.events():
                self.out.put(("chunk", item))
            self.out.put(("end", stream.done))
        except EngineError as exc:
            self.out.put(("error", exc))
        except Exception as exc:  # anything else still ends the run with one line
            self.out.put(("error", EngineError(f"reading {self.ep.url} failed: {exc}", kind="server_error")))


def lost(ep: Endpoint, n: int) -> str:
    """The sentence for a stream that ended without its end: before any token the request itself may
    have failed there (llama-cpp-python drops the connection on a prompt past its context)."""
    if n:
        return (f"the server at {ep.url} closed the connection mid-reply (after {n} tokens): it may have crashed "
                "or been stopped")
    return (f"the server at {ep.url} closed the connection before its first token: the request failed there (a "
            "prompt longer than its context?), or it crashed or was stopped; its log says which")


def cut(ep: Endpoint, n: int) -> str:
    """The sentence for a stream closed with [DONE] but no finish reason: every server that finishes a
    reply says why (stop, length), so the reply was cut short there, not finished."""
    return (f"the server at {ep.url} ended the reply after {n} tokens without a finish reason: it cut it short; "
            "llama-cpp-python's server cuts a reply whenever another request arrives, unless started with "
            "--interrupt_requests False")


class RemoteEngine:
    """An Engine over one model on an OpenAI-compatible server. `cancel_flag`: anything with a
    `.value` (the worker's shared byte); without one it keeps its own."""

    def __init__(self, cancel_flag=None, timeouts: Timeouts | None = None, extra_body: dict | None = None) -> None:
        self._owns_flag = cancel_flag is None
        self._extra = dict(extra_body or {})  # a server's own fields (a grammar, a cache switch), in every request
        self._cancel = cancel_flag if cancel_flag is not None else ctypes.c_byte(0)
        self._timeouts = timeouts
        self._spec: ModelSpec | None = None
        self._ep: Endpoint | None = None
        self._kind = ""
        self._style = "none"
        self._reader: _Reader | None = None
        self._stream: EventStream | None = None

    def load(self, spec: ModelSpec, header=None) -> ModelInfo:
        """Ask the server for its models (the network's round trip measured on the way); EngineError,
        one sentence, when it cannot be reached, refuses the key, or does not serve `spec.name`."""
        t0 = now()
        self._timeouts = self._timeouts or Timeouts.from_env()
        ep = endpoint(spec.path)
        ep = endpoint(spec.path, api_key(ep.url))
        models, first = get_json(ep, "/models", self._timeouts)
        ids = served_ids(models)
        if ids and spec.name not in ids:
            listed = ", ".join(ids[:8]) + (" …" if len(ids) > 8 else "")
            raise EngineError(f"the server at {ep.url} does not serve {spec.name!r}; it serves: {listed}",
                              kind="load_failed")
        trips = [first] + [get_json(ep, "/models", self._timeouts)[1] for _ in range(2)]
        latency = statistics.median(trips)
        self._spec, self._ep, self._kind = spec, ep, server_kind(models)
        self._style = spec.thinking or self._template_style(spec.name)
        note = (f"served by {self._kind} at {ep.where}; a request's round trip to it took {latency * 1000:.1f} ms "
                "at load (network and server, part of every TTFT); the server holds no thinking budget: "
                "max tokens caps only the whole reply")
        return ModelInfo(
            name=spec.name, path=ep.url, engine="remote", architecture=self._kind, n_params=0, quantization="",
            file_size=0, n_ctx=0, n_ctx_train=0, chat_template_source="server", backends_available=(),
            backend_used="remote", n_gpu_layers_requested=None, n_gpu_layers_offloaded=0, n_layers=0, n_threads=0,
            load_s=now() - t0, engine_version=self._kind, thinking_style=self._style, device=ep.where,
            offload_note=note)

    def _template_style(self, model: str) -> str:
        """llama-server shows its chat template at /props: the style is read from it as for a local
        model. Elsewhere it is guessed from the model's id (remote_request.guess_style)."""
        if self._kind == "llama-server":
            try:
                props, _ = get_json(replace(self._ep, prefix=""), "/props", self._timeouts)  # at the root, not /v1
                template = props.get("chat_template") if isinstance(props, dict) else None
                if template:
                    return detect_style(template)
            except EngineError:
                pass
        return guess_style(model)

    def generate(self, request: GenerationRequest):
        failed = refused(self._spec, request)
        if failed:
            yield failed
            return
        if self._owns_flag:
            self._cancel.value = 0
        if request.n_samples <= 1:
            yield from self._one(request, started=True)
            return
        # k samples: a request each, one after another (OpenAI's `n` is not served alike everywhere).
        yield from samples_in_turn(request.n_samples, lambda i: self._one(request.for_sample(i), started=i == 0),
                                   SERVED_SAMPLES_NOTE)

    def _one(self, request: GenerationRequest, started: bool):
        body = {**chat_body(self._kind, self._spec.name, request, self._spec.stop), **self._extra}
        note = budget_note(self._spec.name, request)  # a budget the server cannot hold, said with the run
        reader = _Reader(self._ep, body, self._timeouts)
        self._reader = reader
        reader.start()
        # Prompt tokens are the server's to count: its usage, when it sends one, comes in PromptDone.
        if started:
            yield Started(now(), 0, 0)
        try:
            # A scaffolded request (a model that cannot think, prompted to reason first) is split as
            # the pipeline splits one for a local model.
            style = SCAFFOLD_STYLE if request.strategy == SCAFFOLD_STYLE else self._style
            yield from self._relay(reader, RemoteSplit(style), note)
        finally:
            self._hang_up()

    def _relay(self, reader: _Reader, split: RemoteSplit, note: str = ""):
        counts, n = _Counts(), 0
        while True:
            if self._cancel.value:
                self._hang_up()
                yield split.finished(now(), "cancelled", n, 0.0, note)
                return
            try:
                kind, payload = reader.out.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if kind == "open":
                self._stream = payload
            elif kind == "error":
                yield Failed(now(), payload.kind, f"{payload}" + (f" (after {n} tokens)" if n else ""))
                return
            elif kind == "end":
                if counts.finish is None:  # no finish reason: the reply did not end, it was ended
                    yield Failed(now(), "server_lost", lost(self._ep, n) if not payload else cut(self._ep, n))
                    return
                done = counts.prompt_done(now())
                if done is not None:
                    yield done
                reason = FINISH_REASONS.get(counts.finish or "stop", counts.finish or "stop")
                yield split.finished(now(), reason, counts.completion_tokens or n, counts.decode_s or 0.0, note)
                return
            else:
                t, chunk = payload
                counts.read(chunk)
                for event in self._tokens(t, chunk, split, counts):
                    n += 1
                    yield event

    @staticmethod
    def _tokens(t: float, chunk: dict, split: RemoteSplit, counts: _Counts) -> list[Event]:
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return []
        choice = choices[0]
        if choice.get("finish_reason"):
            counts.finish = str(choice["finish_reason"])
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        content = delta.get("content") or ""
        if not (isinstance(reasoning, str) and isinstance(content, str)) or not (reasoning or content):
            return []
        logprob = None
        entries = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
        if isinstance(entries, list) and entries and isinstance(entries[0], dict):
            logprob = entries[0].get("logprob")
        return [split.token(t, reasoning, content, logprob)]

    def _hang_up(self) -> None:
        """Shut the request's connection (a cancel, an early exit, a close): the server stops generating."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop.set()
            while True:  # the stream may have opened since the loop last looked
                try:
                    kind, payload = reader.out.get_nowait()
                except queue.Empty:
                    break
                if kind == "open":
                    self._stream = payload
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def cancel(self) -> None:
        self._cancel.value = 1

    def close(self) -> None:
        self._hang_up()
        self._spec = None
