"""How models mark their thought: the styles, their markers, and how a style is found.

The one home of this knowledge. The worker needs it to hold a budget (app/engines/thinking_budget.py)
and to split the stream into thought and answer (app/engines/thought_parser.py, once, for every
reader), the parent to check the catalog (app/catalog.py). It imports nothing from app, so both sides of the engine boundary can use it
without importing each other.

- "think-tags": <think> … </think> then the answer (DeepSeek-R1 distills, Qwen3, SmolLM3).
- "think-tags-switch": the same, with a template that takes `enable_thinking` (Qwen3).
- "harmony": gpt-oss's channels; the analysis (and commentary) channel is thought, final the answer.
- "none": a model that never thinks.
- "scaffold": not a model's style but a request's (app/reasoning/modes.py): a model that cannot
  think is asked to reason first; its thought ends where it writes "The answer is".
"""

from __future__ import annotations

# What a model can be: the catalog's `thinking` values, and what detect_style() returns.
MODEL_STYLES = ("none", "think-tags", "think-tags-switch", "harmony")
SCAFFOLD_STYLE = "scaffold"
# Everything a stream can be read as: a model's style, or a scaffolded request's.
STYLES = MODEL_STYLES + (SCAFFOLD_STYLE,)

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# gpt-oss's harmony format: <|start|>role<|channel|>name<|message|>text<|end|>
HARMONY_START, HARMONY_CHANNEL, HARMONY_MESSAGE = "<|start|>", "<|channel|>", "<|message|>"
HARMONY_END = "<|end|>"
HARMONY_DROPPED = (HARMONY_END, "<|return|>", "<|call|>")  # ends of a message: never shown
HARMONY_ANSWER_CHANNELS = ("final",)
HARMONY_THOUGHT_OPEN = f"{HARMONY_CHANNEL}analysis{HARMONY_MESSAGE}"
HARMONY_ANSWER_OPEN = f"{HARMONY_START}assistant{HARMONY_CHANNEL}final{HARMONY_MESSAGE}"

# Where a scaffolded thought ends and its answer starts. The first is what the instruction asks
# for, and what a budget puts in to close the thought (the model completes the sentence).
SCAFFOLD_MARKERS = ("The answer is", "the answer is", "Final answer", "final answer", "Answer:")

# Budget forcing refuses the token that would end the thought and puts in "Wait"; a scaffold's
# thought ends with ordinary words ("The answer is"), which can be refused only once written.
SCAFFOLD_MIN_UNSUPPORTED = (
    "a minimum thought is not held on a model that cannot think natively: a scaffolded thought has no "
    "end-of-thought token to refuse, so a minimum cannot be held"
)


def detect_style(chat_template: str | None) -> str:
    """Guess a model's thinking style from its chat template, for models not in the catalog."""
    if not chat_template:
        return "none"
    if HARMONY_CHANNEL in chat_template:
        return "harmony"
    if THINK_OPEN in chat_template:
        return "think-tags-switch" if "enable_thinking" in chat_template else "think-tags"
    return "none"


def resolve_style(declared: str | None, chat_template: str | None) -> str:
    """The style a model is run with: the one its spec declares (the catalog's), else detected."""
    return declared or detect_style(chat_template)


def minimum_problem(minimum: int | None, budget: int | None) -> str | None:
    """The one rule between a thought's two limits: its minimum must fit in its budget. What is
    wrong, in words, or None (the engine's budget, a pane's plan and the CLI's flags all ask here)."""
    if minimum is None or budget is None or minimum <= budget:
        return None
    return f"the minimum thought ({minimum} tokens) is longer than the budget ({budget} tokens)"
