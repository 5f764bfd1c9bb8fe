"""RunRecorder turns one pane's event stream into a RunResult: text, counts and timings, and into
RunUpdates: immutable records of what each event did, which views keep their own state from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from app.engines.types import (
    ANSWER, THINKING, Event, Failed, Finished, GenerationRequest, ModelInfo, Piece, PromptDone, Started, Token,
)
from app.reasoning.answers import check_answer
from app.record import (
    Conditions, Ending, Memory, RunResult, Status, ThoughtControl, Timings, Tokens, decode_rate, model_conditions,
    no_answer_reason, power_supply, rate,
)

__all__ = ["RunRecorder", "RunResult", "RunUpdate", "Progress", "Status", "no_answer_reason", "power_supply"]


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
    sample: int = 0  # which of the request's n_samples replies (each has its own updates and closing one)

    @property
    def closing(self) -> bool:
        return self.result is not None


class RunRecorder:
    """Feed it a pane's events as they arrive; it keeps the running text and counts, and builds the
    run's frozen record (`record()`) from them. Its working state is its own: nothing outside reads it."""

    def __init__(
        self,
        pane: int,
        info: ModelInfo | None,
        mode: str,
        t_submit: float,
        thinking_style: str = "none",
        request: GenerationRequest | None = None,
        label: str = "",
        sample: int = 0,
        n_samples: int = 1,
    ) -> None:
        self.pane, self.t_submit, self.sample = pane, t_submit, sample
        self.request = request
        self.max_tokens = request.max_tokens if request is not None else None  # to say what to change
        # Where the reply is, as the worker's split says (Token.channel): a scaffold starts in its thought.
        self.channel = THINKING if thinking_style == "scaffold" else ANSWER
        self.channels: list[str] = []  # each generated token's channel, beside the token times
        self._conditions = Conditions(
            model=info.name if info else label, mode=mode, started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            sample=sample, n_samples=n_samples,
            **({} if info is None else model_conditions(info)))
        self._thought = ThoughtControl(thinking_style=thinking_style, **({} if request is None else dict(
            strategy=request.strategy, thinking_budget=request.thinking_budget, thinking_min=request.thinking_min)))
        self.text = self.thinking = ""
        self._ending = Ending()
        self._finished: Finished | None = None
        self._n_prompt = self._n_evaluated = 0
        self._prompt_eval_s: float | None = None
        self._n_thinking = self._n_answer = 0
        self._times: list[float] = []  # each generated token, from submit
        self._ttft_s = self._ttfat_s = self._total_s = None
        self._answer_logprobs: list[float] = []
        self._held: list[tuple[int, float | None]] = []  # scaffold tokens not yet counted: (index, logprob)

    @property
    def done(self) -> bool:
        return self._ending.status is not Status.RUNNING

    def _progress(self) -> Progress:
        return Progress(len(self._times), self._n_thinking, self._n_answer, self._ttft_s, self._ttfat_s)

    def feed(self, event: Event) -> RunUpdate:
        """Record one event; return what it did (the labelled text it adds, the counts after it)."""
        pieces = tuple(self._record(event))
        return RunUpdate(self.pane, self.t_submit, event, pieces, self._progress(), sample=self.sample)

    def closing_update(self, result: RunResult | None = None) -> RunUpdate:
        """The pane's last update, carrying the finished record (this one's, or `result`, the same
        record with its energy attached)."""
        return RunUpdate(self.pane, self.t_submit, None, (), self._progress(), result or self.record(), self.sample)

    @property
    def result(self) -> RunResult:
        """The record so far (a frozen snapshot; see record())."""
        return self.record()

    def record(self) -> RunResult:
        """The run's record as it stands: frozen parts, built here and only here."""
        f = self._finished
        n_gen = len(self._times)
        logprobs = self._answer_logprobs
        return RunResult(
            pane=self.pane, text=self.text, thinking=self.thinking,
            conditions=self._conditions,
            thought=self._thought,
            tokens=Tokens(self._n_prompt, self._n_evaluated, n_gen, self._n_thinking, self._n_answer,
                          tuple(self._times), sum(logprobs) / len(logprobs) if logprobs else None),
            timings=Timings(
                ttft_s=self._ttft_s, ttfat_s=self._ttfat_s, prompt_eval_s=self._prompt_eval_s,
                prompt_tps=rate(self._n_evaluated, self._prompt_eval_s),
                decode_tps=decode_rate(self._times) if f is not None else None, total_s=self._total_s,
                engine_decode_tps=rate(n_gen - 1, f.engine_decode_s) if f is not None and n_gen >= 2 else None),
            memory=Memory(engine_peak_memory_bytes=f.peak_memory_bytes if f is not None else None),
            ending=self._ending,
        )

    def _record(self, event: Event) -> list[Piece]:
        if isinstance(event, Started):
            self._n_prompt = event.n_prompt_tokens
            self._conditions = replace(self._conditions, n_threads=event.n_threads)
            if event.prompt_opens_thinking:
                self.channel = THINKING
        elif isinstance(event, PromptDone):
            self._n_evaluated, self._prompt_eval_s = event.n_prompt_evaluated, event.prompt_eval_s
            # A served model's prompt is counted by its server, after the reply (Started had none to say).
            self._n_prompt = event.n_prompt_tokens or self._n_prompt
        elif isinstance(event, Token) and event.injected:
            # The end-of-thinking message: shown and parsed, but the model did not generate it.
            pieces = list(event.pieces)
            self.channel = event.channel
            self._settle_held(pieces)
            self._add(pieces, event.t)
            return pieces
        elif isinstance(event, Token):
            if self._ttft_s is None:
                self._ttft_s = event.t - self.t_submit
            self._times.append(event.t - self.t_submit)
            before, self.channel = self.channel, event.channel
            pieces = list(event.pieces)
            if self._thought.thinking_style == "scaffold":
                # Its thought ends at ordinary words ("The answer is"), held back until they settle:
                # a token counts where its text lands, so the marker's tokens are answer, not thought.
                self._held.append((len(self.channels), event.logprob))
                self.channels.append(THINKING)  # settled below, or by a later piece
                self._settle_held(pieces)
            else:
                # A token that opened, continued or closed the thought is thinking; the rest is answer.
                thinking = THINKING in (before, self.channel) or any(p.channel == THINKING for p in pieces)
                self._count(THINKING if thinking else ANSWER, event.logprob)
                self.channels.append(THINKING if thinking else ANSWER)
            self._add(pieces, event.t)
            return pieces
        elif isinstance(event, Finished):
            pieces = list(event.pieces)
            self._settle_held(pieces, final=True)
            self._add(pieces, event.t)
            self._finished = event
            self._thought = replace(self._thought, thinking_unclosed=event.thinking_unclosed,
                                    thinking_budget_hit=event.thinking_budget_hit,
                                    thinking_extended=event.thinking_extended,
                                    thought_note=event.limits_note)
            if event.samples_note:
                self._conditions = replace(self._conditions, samples_note=event.samples_note)
            self._total_s = event.t - self.t_submit
            status = Status.CANCELLED if event.finish_reason == "cancelled" else Status.OK
            self._ending = Ending(status, event.finish_reason)
            self._ending = replace(self._ending, no_answer=no_answer_reason(self.record(), self.max_tokens))
            return pieces
        elif isinstance(event, Failed):
            self._settle_held([], final=True)
            self._ending = Ending(Status.FAILED, error_kind=event.kind, error=event.message)
            self._total_s = event.t - self.t_submit
        return []

    def _count(self, channel: str, logprob: float | None) -> None:
        if channel == THINKING:
            self._n_thinking += 1
            return
        self._n_answer += 1
        if logprob is not None:
            self._answer_logprobs.append(logprob)

    def _settle_held(self, pieces, final: bool = False) -> None:
        """Tokens whose text the worker's split held back count where that text went: with the last
        piece it gave out (the held text starts it); at the end, with the channel it ended in."""
        if not self._held or not (pieces or final):
            return
        channel = pieces[-1].channel if pieces else self.channel
        for index, logprob in self._held:
            self.channels[index] = channel
            self._count(channel, logprob)
        self._held = []

    def _add(self, pieces: list[Piece], t: float) -> None:
        for piece in pieces:
            if piece.channel == ANSWER:
                if self._ttfat_s is None and piece.text.strip():
                    self._ttfat_s = t - self.t_submit
                self.text += piece.text
            else:
                self.thinking += piece.text

    def fail(self, kind: str, message: str) -> RunResult:
        """Record a failure that happened before any event (e.g. the model did not load)."""
        self._ending = Ending(Status.FAILED, error_kind=kind, error=message)
        return self.record()

    def cancel_unstarted(self) -> RunResult:
        """Record a run cancelled before it started (fair mode: Esc while another pane ran)."""
        self._ending = Ending(Status.CANCELLED, "cancelled", no_answer="cancelled before it started")
        return self.record()

    def mark(self, known_answer: str | None) -> None:
        """Right or wrong against the prompt's known answer, for a run that finished."""
        if known_answer and known_answer.strip() and self._ending.status is Status.OK:
            self._ending = replace(self._ending, correct=check_answer(self.text, known_answer))
