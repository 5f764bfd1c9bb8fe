"""Thinking modes as requests: how a plan becomes what the engine is asked.

Native thinking uses the model's own switch and budget (engine); a model that cannot think is
scaffolded: asked to reason step by step first, its reasoning shown as thinking and its final
sentence as the answer (parser style "scaffold").
"""

from __future__ import annotations

from dataclasses import replace

from app.engines.types import GenerationRequest, Message

SCAFFOLD_INSTRUCTION = (
    "Think it through step by step first. Then finish with one line: The answer is <answer>."
)


def thinking_request(request: GenerationRequest, thinking_style: str) -> GenerationRequest:
    """A request that thinks on this model: native where it can, scaffolded where it cannot."""
    if thinking_style != "none":
        return replace(request, thinking=True, strategy="native")
    messages = list(request.messages)
    if messages and messages[0].role == "system":
        messages[0] = Message("system", f"{messages[0].content}\n\n{SCAFFOLD_INSTRUCTION}")
    else:
        messages.insert(0, Message("system", SCAFFOLD_INSTRUCTION))
    # The budget is the engine's, for native <think>; a scaffold is bounded by max_tokens alone.
    return replace(request, messages=tuple(messages), thinking=None, thinking_budget=None, thinking_min=None,
                   strategy="scaffold")
