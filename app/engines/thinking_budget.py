"""Limits on the thinking phase, enforced inside the generation loop: a budget and a minimum.

They have to live with the engine: closing the thought, or refusing to let it close, means changing
the model's context between two tokens, which only the worker can do. This tracks just enough of
the text to know whether the model is thinking; app/reasoning labels the stream for display.

- Budget: after that many thinking tokens, an end-of-thinking message is put in and the model
  answers from what it has (Qwen3's documented method; llama.cpp's --reasoning-budget-message).
- Minimum (budget forcing, as in the s1 paper): when the model tries to end its thought early, with
  `</think>` or its end of turn, that token is dropped and "Wait" is put in, so it thinks on.

Three ways of marking a thought: <think>…</think>; gpt-oss's harmony channels, where the thought
is the analysis channel (<|channel|>analysis<|message|>…<|end|>) and the answer the final one; and a
scaffold (app/reasoning/modes.py), for a model that cannot think natively: asked to reason first, its
thought is open from the first token and ends where it starts its answer ("The answer is", or another
of the parser's markers). A scaffold's budget puts in "The answer is", which the model completes. It
has no minimum: its markers are ordinary words, not an end-of-thought token that could be refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generator, Iterator

from app.thinking_styles import (
    HARMONY_ANSWER_OPEN,
    HARMONY_END,
    HARMONY_THOUGHT_OPEN,
    SCAFFOLD_MARKERS,
    SCAFFOLD_MIN_UNSUPPORTED,
    SCAFFOLD_STYLE,
    THINK_CLOSE,
    THINK_OPEN,
    minimum_problem,
)

_WHY = "\n\nConsidering the limited time, I have to give the solution based on the thinking directly now."


@dataclass(frozen=True)
class ThoughtMarkers:
    open: str  # what starts the thought ("": nothing, it is open from the first token)
    closes: tuple[str, ...]  # what ends it: any one of these
    close_message: str  # put in when the budget is spent: why, then the close and the answer's start
    no_minimum: str | None = None  # why a minimum cannot be held on such a thought, where it cannot


THINK_TAGS = ThoughtMarkers(THINK_OPEN, (THINK_CLOSE,), f"{_WHY}\n{THINK_CLOSE}\n\n")
HARMONY = ThoughtMarkers(HARMONY_THOUGHT_OPEN, (HARMONY_END,), _WHY + HARMONY_END + HARMONY_ANSWER_OPEN)
# The parser's own markers (app/thinking_styles.py), so the engine and the display agree where the
# answer starts. The close message ends with the first of them ("The answer is"): the model completes it.
SCAFFOLD = ThoughtMarkers("", SCAFFOLD_MARKERS, _WHY + "\n\n" + SCAFFOLD_MARKERS[0], SCAFFOLD_MIN_UNSUPPORTED)
DEFAULT_CONTINUE_MESSAGE = "\nWait"
# s1 appended "Wait" up to 6 times; a model that closes again at once each time would otherwise loop
# for ever without spending a token, so after this many the model's own close stands.
MAX_EXTENSIONS = 8

# What an engine does next, when a generation pass stops for the thought's sake.
CLOSE_THOUGHT, EXTEND_THOUGHT = "close-thought", "extend-thought"


def markers_for(style: str | None) -> ThoughtMarkers:
    if style == SCAFFOLD_STYLE:
        return SCAFFOLD
    return HARMONY if style == "harmony" else THINK_TAGS


class ThinkingBudget:
    """Feed it each generated token's text; it says when the thought must be closed or kept open."""

    def __init__(self, budget: int | None, opened_in_prompt: bool, minimum: int | None = None,
                 markers: ThoughtMarkers = THINK_TAGS) -> None:
        if budget is not None and budget < 0:
            raise ValueError(f"a thinking budget must be 0 or more tokens, not {budget}")
        if minimum is not None and minimum < 0:
            raise ValueError(f"a minimum thought must be 0 or more tokens, not {minimum}")
        if problem := minimum_problem(minimum, budget):
            raise ValueError(problem)
        if minimum and markers.no_minimum:
            raise ValueError(markers.no_minimum)
        self.budget, self.minimum, self.markers = budget, minimum or None, markers
        self.thinking = opened_in_prompt or not markers.open
        self.spent = 0  # tokens generated while thinking, the opening tag included
        self.finished = self.budget is None and self.minimum is None  # nothing to watch
        self.forced = False  # the budget, not the model, ended the thought
        self.extensions = 0  # times the model's early close was refused
        self._text = ""

    def must_close_now(self) -> bool:
        """Before any token: a budget of 0 on a prompt that opened the thought closes it at once."""
        return self.thinking and not self.finished and self.budget == 0

    def refuses(self, piece: str, end_of_turn: bool = False) -> bool:
        """Before a token is taken: True when it would end the thought short of the minimum.

        The engine then drops the token and puts in the continue message. A close tag split over
        several tokens is caught at its first piece ("</"), since the pieces cannot be taken back.
        """
        if not self.thinking or self.finished or self.minimum is None or self.spent >= self.minimum:
            return False
        if self.extensions >= MAX_EXTENSIONS:
            return False
        start, text = piece.lstrip(), self._text + piece
        closes = any(close in text or (len(start) >= 2 and close.startswith(start)) for close in self.markers.closes)
        return end_of_turn or closes

    def injected(self, text: str, kind: str) -> None:
        """The engine put in the message for `kind`; it is not a generated token."""
        if kind == CLOSE_THOUGHT:
            self.finished = self.forced = True  # the thought is over: nothing more to watch
        else:
            self._text += text
            self.extensions += 1

    def after_token(self, text: str) -> bool:
        """Record one generated token; True when the budget is spent and the thought must be closed now."""
        if self.finished:
            return False
        self._text += text
        opening = self.markers.open
        if not self.thinking:
            start = self._text.lstrip()
            if start.startswith(opening):
                self.thinking, self._text = True, start[len(opening) :]
            elif start and not opening.startswith(start):
                self.finished = True  # it answered without thinking
                return False
            else:
                return False  # only whitespace, or half of "<think>", so far
        self.spent += 1
        if any(close in self._text for close in self.markers.closes):
            self.finished = True  # the model closed its thought itself
            return False
        # Only a close split over tokens is still to be found: the rest of the thought is not needed.
        self._text = self._text[-max(len(close) for close in self.markers.closes) :]
        if self.budget is not None and self.spent >= self.budget:
            self.finished = self.forced = True
            return True
        return False

    def message(self, kind: str, close_message: str | None, continue_message: str | None) -> str:
        """The text to put in for a pass that stopped with `kind`, the request's own wording first."""
        if kind == CLOSE_THOUGHT:
            return close_message or self.markers.close_message
        return continue_message or DEFAULT_CONTINUE_MESSAGE


def budget_for(request, opened_in_prompt: bool, style: str | None) -> ThinkingBudget:
    """The request's limits on its thought; ValueError, worded for the user, when they make no sense.

    `style` is the model's; a scaffolded request (request.strategy) is marked by the scaffold
    whatever the model, and its thought is open from the first generated token.
    """
    if request.strategy == SCAFFOLD_STYLE:
        style, opened_in_prompt = SCAFFOLD_STYLE, True
    return ThinkingBudget(request.thinking_budget, opened_in_prompt, request.thinking_min, markers_for(style))


def prefill_direct(rendered: str, thinking: bool | None, style: str | None) -> tuple[str, bool]:
    """The rendered prompt as the model should see it, and whether it leaves a thought open.

    Direct mode on a model without a switch in its template (DeepSeek-R1 distills): an empty
    thought, already closed, is how these models are told to answer directly.
    """
    opening = markers_for(style).open
    opened = bool(opening) and rendered.rstrip().endswith(opening)
    if thinking is False and style == "think-tags":
        empty = f"\n\n{THINK_TAGS.closes[0]}\n\n"
        rendered = rendered.rstrip() + empty if opened else rendered + THINK_TAGS.open + empty
        return rendered, False
    return rendered, opened


def drive_passes(
    budget: ThinkingBudget,
    request,
    put_in: Callable[[str], Iterator],
    generate_pass: Callable[[], Generator],
) -> Generator:
    """The loop both engines run: generation passes, and between them the message the thought
    needs (closing it, or "Wait"). `put_in(message)` yields its injected Token events and queues
    the message for the model; `generate_pass()` yields events and returns a finish reason, or
    CLOSE_THOUGHT / EXTEND_THOUGHT. Returns the finish reason of the last pass."""
    kind = CLOSE_THOUGHT if budget.must_close_now() else None
    while True:
        if kind:
            message = budget.message(kind, request.thinking_budget_message, request.thinking_continue_message)
            yield from put_in(message)
            budget.injected(message, kind)
        finish = yield from generate_pass()
        if finish not in (CLOSE_THOUGHT, EXTEND_THOUGHT):
            return finish
        kind = finish


def pass_end(hit: bool, n_generated: int, max_new: int, budget: ThinkingBudget, shown: str) -> str | None:
    """After a token is taken: why the pass ends there (a stop string, the token limit, the budget), if it does."""
    if hit:
        return "stop"
    if n_generated >= max_new:
        return "length"
    if budget.after_token(shown):
        return CLOSE_THOUGHT
    return None
