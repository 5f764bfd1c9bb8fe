"""A token budget for the thinking phase, enforced inside the generation loop.

It has to live with the engine: closing the thought means putting an end-of-thinking message into
the model's context between two tokens, which only the worker can do. It tracks just enough of
the text to know whether the model is thinking; app/reasoning labels the stream for display.
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"
# Qwen3's documented message (and llama.cpp's --reasoning-budget-message idea): the model is told
# why the thought ends, then answers from what it has.
DEFAULT_CLOSE_MESSAGE = (
    "\n\nConsidering the limited time, I have to give the solution based on the thinking directly now.\n"
    "</think>\n\n"
)


class ThinkingBudget:
    """Feed it each generated token's text; it says when the thought must be closed."""

    def __init__(self, budget: int | None, opened_in_prompt: bool) -> None:
        if budget is not None and budget < 0:
            raise ValueError(f"a thinking budget must be 0 or more tokens, not {budget}")
        self.budget = budget
        self.thinking = opened_in_prompt
        self.spent = 0  # tokens generated while thinking, the opening tag included
        self.finished = budget is None  # nothing left to watch
        self.forced = False  # the budget, not the model, ended the thought
        self._text = ""

    def must_close_now(self) -> bool:
        """Before any token: a budget of 0 on a prompt that opened the thought closes it at once."""
        return self.thinking and not self.finished and self.budget == 0

    def after_token(self, text: str) -> bool:
        """Record one token; True when the budget is spent and the thought must be closed now."""
        if self.finished:
            return False
        self._text += text
        if not self.thinking:
            start = self._text.lstrip()
            if start.startswith(OPEN):
                self.thinking, self._text = True, start[len(OPEN) :]
            elif start and not OPEN.startswith(start):
                self.finished = True  # it answered without thinking
                return False
            else:
                return False  # only whitespace, or half of "<think>", so far
        self.spent += 1
        if CLOSE in self._text:
            self.finished = True  # the model closed its thought itself
            return False
        if self.spent >= self.budget:
            self.finished = self.forced = True
            return True
        return False
