"""Thinking modes as requests: how a plan becomes what the engine is asked.

Native thinking uses the model's own switch and budget (engine); a model that cannot think is
scaffolded: asked to reason step by step first, its reasoning shown as thinking and its final
sentence as the answer (parser style "scaffold"). A scaffold keeps its budget, held by the engine
as a native one is (app/engines/thinking_budget.py), but not a minimum thought.
"""

from __future__ import annotations

from dataclasses import replace

from app.engines.types import GenerationRequest, Message
# Worded once, in the module the worker reads them from too.
from app.thinking_styles import SCAFFOLD_MARKERS, SCAFFOLD_MIN_UNSUPPORTED

__all__ = ["SCAFFOLD_INSTRUCTION", "minimum_unheld", "thinking_request"]

SCAFFOLD_INSTRUCTION = (
    f"Think it through step by step first. Then finish with one line: {SCAFFOLD_MARKERS[0]} <answer>."
)


def thinking_request(request: GenerationRequest, thinking_style: str) -> GenerationRequest:
    """A request that thinks on this model: native where it can, scaffolded where it cannot.

    Scaffolded, the budget stays (the engine closes the thought with "The answer is") and the
    minimum is dropped: minimum_unheld() says why, for the reader.
    """
    if thinking_style != "none":
        return replace(request, thinking=True, strategy="native")
    messages = list(request.messages)
    if messages and messages[0].role == "system":
        messages[0] = Message("system", f"{messages[0].content}\n\n{SCAFFOLD_INSTRUCTION}")
    else:
        messages.insert(0, Message("system", SCAFFOLD_INSTRUCTION))
    return replace(request, messages=tuple(messages), thinking=None, thinking_min=None, strategy="scaffold")


def minimum_unheld(request: GenerationRequest, thinking_style: str) -> str | None:
    """Why this request's minimum thought will not be held on a model of this style, as it is asked
    before thinking_request(); None when it will be, or when none was asked."""
    scaffolded = request.strategy == "scaffold" or (request.thinking and thinking_style == "none")
    if request.thinking_min and scaffolded:
        return SCAFFOLD_MIN_UNSUPPORTED
    return None
