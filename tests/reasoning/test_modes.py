"""Thinking requests: native where the model can, scaffolded where it cannot."""

from app.engines.types import GenerationRequest, Message
from app.reasoning.modes import SCAFFOLD_INSTRUCTION, minimum_unheld, thinking_request
from app.thinking_styles import SCAFFOLD_MIN_UNSUPPORTED


def test_native_thinking_uses_the_switch_and_keeps_the_budget():
    request = thinking_request(GenerationRequest.from_prompt("2+2?", thinking_budget=64), "think-tags-switch")
    assert request.thinking is True and request.thinking_budget == 64 and request.strategy == "native"


def test_a_model_that_cannot_think_is_scaffolded_and_keeps_its_budget():
    request = thinking_request(GenerationRequest.from_prompt("2+2?", thinking_budget=64), "none")
    assert request.strategy == "scaffold" and request.thinking is None and request.thinking_budget == 64
    assert request.messages[0] == Message("system", SCAFFOLD_INSTRUCTION)
    assert request.messages[1] == Message("user", "2+2?")


def test_scaffold_joins_an_existing_system_message():
    original = GenerationRequest(messages=(Message("system", "Be brief."), Message("user", "2+2?")))
    request = thinking_request(original, "none")
    assert request.messages[0].content == f"Be brief.\n\n{SCAFFOLD_INSTRUCTION}" and len(request.messages) == 2


def test_a_scaffold_drops_the_minimum_thought_and_says_why():
    asked = GenerationRequest.from_prompt("2+2?", thinking=True, thinking_budget=64, thinking_min=16)
    request = thinking_request(asked, "none")
    assert request.thinking_min is None and request.thinking_budget == 64
    assert minimum_unheld(asked, "none") == SCAFFOLD_MIN_UNSUPPORTED
    assert "no end-of-thought token to refuse" in SCAFFOLD_MIN_UNSUPPORTED
    assert minimum_unheld(asked, "think-tags") is None  # native: held by the engine
    assert minimum_unheld(GenerationRequest.from_prompt("2+2?", thinking=True), "none") is None  # none asked
    native = thinking_request(asked, "think-tags-switch")
    assert native.thinking_min == 16 and native.thinking_budget == 64
