"""RunRecorder turns one pane's event stream into a RunResult: text, counts and timings, and into
RunUpdates: immutable records of what each event did, which views keep their own state from.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

from app.engines.types import Event, Failed, Finished, ModelInfo, PromptDone, Started, Token
from app.reasoning.answers import check_answer
from app.reasoning.parser import ANSWER, THINKING, Piece, ReasoningParser


@dataclass
class RunResult:
    """One model's answer to one prompt, with the figures that say what it cost."""

    pane: int
    model: str
    mode: str  # "fair" (panes one after another, all cores each) or "live" (at once, cores split)
    status: str = "running"  # "ok", "cancelled", "failed"
    finish_reason: str | None = None  # "stop", "length", "cancelled"
    error_kind: str | None = None
    error: str | None = None
    text: str = ""  # the answer
    thinking: str = ""  # the reasoning before it, when the model thinks
    thinking_style: str = "none"
    thinking_unclosed: bool = False  # the run ended mid-thought (out of tokens, or cancelled)
    thinking_budget: int | None = None  # the request's budget, if any
    strategy: str = "native"  # "native" thinking, or "scaffold" for a model that cannot think
    thinking_budget_hit: bool = False  # the budget, not the model, closed the thought
    thinking_min: int | None = None  # budget forcing: the request's minimum thought, if any
    thinking_extended: int = 0  # times the model's early close was refused with "Wait"
    # What ran, so a number is never read without its conditions.
    model_path: str = ""
    engine: str = ""
    backend: str = ""
    quantization: str = ""
    n_threads: int = 0
    n_gpu_layers: int = 0
    on_mains: bool | None = None  # at the run's end: False on battery; None without a battery (or unknown)
    battery_percent: float | None = None  # laptops slow down and draw less on battery: numbers differ
    # Counts, by the model's tokenizer.
    n_prompt_tokens: int = 0
    n_prompt_evaluated: int = 0  # the rest came from the reused KV cache prefix
    n_generated: int = 0
    n_thinking_tokens: int = 0  # tag tokens included: they are what thinking costs
    n_answer_tokens: int = 0
    # Timings in seconds, from the request leaving the parent.
    ttft_s: float | None = None
    ttfat_s: float | None = None  # time to the first visible answer token: what a reader waits for
    prompt_eval_s: float | None = None
    prompt_tps: float | None = None
    decode_tps: float | None = None  # (tokens after the first) / (time after the first)
    total_s: float | None = None
    engine_decode_tps: float | None = None  # llama.cpp's own timer, for cross-checking ours
    # Energy: never a bare number — energy_source says where it came from (app/telemetry).
    energy_j: float | None = None
    energy_source: str = ""  # "measured:rapl", "estimated:tdp, shared by CPU time", ...
    energy_approximate: bool = False  # e.g. a run too short for the sensor; notes in energy_detail
    avg_w: float | None = None
    peak_w: float | None = None
    thinking_energy_j: float | None = None
    answer_energy_j: float | None = None
    j_per_token: float | None = None
    j_per_thinking_token: float | None = None
    j_per_answer_token: float | None = None
    energy_detail: dict = field(default_factory=dict)  # breakdown by source, notes, TDP and formula
    peak_rss_bytes: int | None = None  # the worker's high-water mark (its model load included)
    engine_peak_memory_bytes: int | None = None  # the engine's own peak count for the request (MLX)
    token_times_s: list[float] = field(default_factory=list)  # each token, from submit
    answer_logprob_mean: float | None = None  # mean log-probability of the answer's tokens, when asked
    started_at: str = ""  # wall clock, ISO 8601, for the log
    # A run that ended without an answer says why and what to change ("" when it answered).
    no_answer: str = ""
    correct: bool | None = None  # against the prompt's known answer; None when there was none

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Progress:
    """A run's running counts right after one event: small and immutable, so it can cross threads."""

    n_generated: int = 0
    n_thinking: int = 0
    n_answer: int = 0
    ttft_s: float | None = None
    ttfat_s: float | None = None


@dataclass(frozen=True)
class RunUpdate:
    """What one event did to one pane's run.

    Immutable: updates cross from the thread that runs a model to the views, and a view builds its
    own state from them (app/live.py's LiveRun), so nothing a view reads is mutated by another
    thread. Every pane's updates end with exactly one closing update, which carries the finished
    record (energy and log included): `result` is a copy of its own, never touched again.
    """

    pane: int
    t_submit: float  # when the request left (perf_counter): the time origin of the run's figures
    event: Event | None = None  # None on the closing update
    pieces: tuple[Piece, ...] = ()  # the labelled text this event added
    progress: Progress = Progress()
    result: RunResult | None = None  # the closing update only

    @property
    def closing(self) -> bool:
        return self.result is not None


class RunRecorder:
    """Feed it a pane's events as they arrive; it keeps the running text and the figures."""

    def __init__(
        self, pane: int, info: ModelInfo | None, mode: str, t_submit: float, thinking_style: str = "none"
    ) -> None:
        self.t_submit = t_submit
        self.result = RunResult(pane=pane, model=info.name if info else "", mode=mode)
        self.result.thinking_style = thinking_style
        self.parser = ReasoningParser(thinking_style)
        self.max_tokens: int | None = None  # the request's, to say what to change when no answer came
        self.channels: list[str] = []  # each generated token's channel, beside result.token_times_s
        self.result.started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if info is not None:
            r = self.result
            r.model_path, r.engine, r.backend = info.path, info.engine, info.backend_used
            r.quantization, r.n_threads = info.quantization, info.n_threads
            r.n_gpu_layers = info.n_gpu_layers_offloaded
        self._answer_logprobs: list[float] = []
        self._held: list[tuple[int, float | None]] = []  # scaffold tokens not yet counted: (index, logprob)
        self._first_token_t: float | None = None
        self._last_token_t: float | None = None

    @property
    def done(self) -> bool:
        return self.result.status != "running"

    def feed(self, event: Event) -> RunUpdate:
        """Record one event; return what it did (the labelled text it adds, the counts after it)."""
        pieces = tuple(self._record(event))
        r = self.result
        progress = Progress(r.n_generated, r.n_thinking_tokens, r.n_answer_tokens, r.ttft_s, r.ttfat_s)
        return RunUpdate(r.pane, self.t_submit, event, pieces, progress)

    def closing_update(self) -> RunUpdate:
        """The pane's last update: the finished record, as a copy no one else holds."""
        r = self.result
        progress = Progress(r.n_generated, r.n_thinking_tokens, r.n_answer_tokens, r.ttft_s, r.ttfat_s)
        return RunUpdate(r.pane, self.t_submit, None, (), progress, copy.deepcopy(r))

    def _record(self, event: Event) -> list[Piece]:
        r = self.result
        if isinstance(event, Started):
            r.n_prompt_tokens, r.n_threads = event.n_prompt_tokens, event.n_threads
            if event.prompt_opens_thinking:
                self.parser = ReasoningParser(r.thinking_style, starts_in_thinking=True)
        elif isinstance(event, PromptDone):
            r.n_prompt_evaluated, r.prompt_eval_s = event.n_prompt_evaluated, event.prompt_eval_s
            if event.prompt_eval_s > 0 and event.n_prompt_evaluated > 0:
                r.prompt_tps = event.n_prompt_evaluated / event.prompt_eval_s
        elif isinstance(event, Token) and event.injected:
            # The end-of-thinking message: shown and parsed, but the model did not generate it.
            pieces = self.parser.feed(event.text)
            self._settle_held(pieces)
            self._add(pieces, event.t)
            return pieces
        elif isinstance(event, Token):
            if self._first_token_t is None:
                self._first_token_t = event.t
                r.ttft_s = event.t - self.t_submit
            self._last_token_t = event.t
            r.n_generated += 1
            r.token_times_s.append(event.t - self.t_submit)
            before = self.parser.channel
            pieces = self.parser.feed(event.text)
            if self.parser.style == "scaffold":
                # Its thought ends at ordinary words ("The answer is"), held back until they settle:
                # a token counts where its text lands, so the marker's tokens are answer, not thought.
                self._held.append((len(self.channels), event.logprob))
                self.channels.append(THINKING)  # settled below, or by a later piece
                self._settle_held(pieces)
            else:
                # A token that opened, continued or closed the thought is thinking; the rest is answer.
                thinking = THINKING in (before, self.parser.channel) or any(p.channel == THINKING for p in pieces)
                self._count(THINKING if thinking else ANSWER, event.logprob)
                self.channels.append(THINKING if thinking else ANSWER)
            self._add(pieces, event.t)
            return pieces
        elif isinstance(event, Finished):
            pieces = self.parser.feed(event.text_tail) + self.parser.flush()
            self._settle_held(pieces, final=True)
            self._add(pieces, event.t)
            r.thinking_unclosed = self.parser.unclosed
            r.thinking_budget_hit = event.thinking_budget_hit
            r.thinking_extended = event.thinking_extended
            r.engine_peak_memory_bytes = event.peak_memory_bytes
            r.finish_reason = event.finish_reason
            r.status = "cancelled" if event.finish_reason == "cancelled" else "ok"
            r.no_answer = no_answer_reason(r, self.max_tokens)
            r.total_s = event.t - self.t_submit
            if r.n_generated >= 2:
                r.decode_tps = (r.n_generated - 1) / (self._last_token_t - self._first_token_t)
            if event.engine_decode_s > 0 and r.n_generated >= 2:
                r.engine_decode_tps = (r.n_generated - 1) / event.engine_decode_s
            return pieces
        elif isinstance(event, Failed):
            self._settle_held([], final=True)
            r.status, r.error_kind, r.error = "failed", event.kind, event.message
            r.total_s = event.t - self.t_submit
        return []

    def _count(self, channel: str, logprob: float | None) -> None:
        r = self.result
        if channel == THINKING:
            r.n_thinking_tokens += 1
            return
        r.n_answer_tokens += 1
        if logprob is not None:
            self._answer_logprobs.append(logprob)
            r.answer_logprob_mean = sum(self._answer_logprobs) / len(self._answer_logprobs)

    def _settle_held(self, pieces, final: bool = False) -> None:
        """Tokens whose text the parser held back count where that text went: with the last piece
        it gave out (the held text starts it); at the end, with the channel it ended in."""
        if not self._held or not (pieces or final):
            return
        channel = pieces[-1].channel if pieces else self.parser.channel
        for index, logprob in self._held:
            self.channels[index] = channel
            self._count(channel, logprob)
        self._held = []

    def _add(self, pieces: list[Piece], t: float) -> None:
        r = self.result
        for piece in pieces:
            if piece.channel == ANSWER:
                if r.ttfat_s is None and piece.text.strip():
                    r.ttfat_s = t - self.t_submit
                r.text += piece.text
            else:
                r.thinking += piece.text

    def fail(self, kind: str, message: str) -> RunResult:
        """Record a failure that happened before any event (e.g. the model did not load)."""
        r = self.result
        r.status, r.error_kind, r.error = "failed", kind, message
        return r

    def cancel_unstarted(self) -> RunResult:
        """Record a run cancelled before it started (fair mode: Esc while another pane ran)."""
        r = self.result
        r.status, r.finish_reason = "cancelled", "cancelled"
        r.no_answer = "cancelled before it started"
        return r

    def mark(self, known_answer: str | None) -> None:
        """Right or wrong against the prompt's known answer, for a run that finished."""
        r = self.result
        if known_answer and known_answer.strip() and r.status == "ok":
            r.correct = check_answer(r.text, known_answer)


SCAFFOLD_MARKER_SAID = "The answer is …"


def no_answer_reason(r: RunResult, max_tokens: int | None = None) -> str:
    """Why a finished run has no answer, and what to change; "" when it has one."""
    if r.text.strip():
        return ""
    if r.status == "cancelled":
        return "cancelled before it answered"
    limit = f" ({max_tokens})" if max_tokens else ""
    if r.finish_reason == "length":
        if r.n_thinking_tokens and (r.thinking_unclosed or not r.n_answer_tokens) and not r.thinking_budget_hit:
            fix = ("set a thinking budget below max tokens, so the thought is closed in time"
                   if r.thinking_budget is None else "lower the thinking budget")
            return f"it thought until max tokens{limit} ran out and never answered: raise max tokens, or {fix}"
        return f"max tokens{limit} ran out before the answer: raise max tokens"
    if "scaffold" in (r.strategy, r.thinking_style):
        return (f"it stopped without writing \"{SCAFFOLD_MARKER_SAID}\", so its whole reply is shown as the "
                "thought: try Direct mode, or a model that thinks natively")
    if r.n_thinking_tokens and r.thinking_unclosed:
        return "it ended its turn inside its thought, without answering: try again, or try Direct mode"
    return "it ended its turn without an answer: try again with another seed, or rephrase the prompt"


def power_supply(on_mains: bool | None, battery_percent: float | None) -> str:
    """Whether a run ran on battery, in words; "" where there is no battery to speak of."""
    if on_mains is None:
        return ""
    if on_mains:
        return "on mains power"
    return "on battery" + (f" ({battery_percent:.0f}%)" if battery_percent is not None else "")
