"""Limits on the thought, in the worker: a budget closes it with a message, then the model answers;
a minimum (budget forcing) refuses an early end with "Wait". Real-model tests run on both engines."""

import dataclasses

import pytest

from app.engines.thinking_budget import (
    CLOSE_THOUGHT, EXTEND_THOUGHT, MAX_EXTENSIONS, SCAFFOLD, ThinkingBudget, budget_for, prefill_direct,
)
from app.engines.types import GenerationRequest, Sampling
from app.reasoning.modes import thinking_request
from app.thinking_styles import SCAFFOLD_MIN_UNSUPPORTED
from app.engines.thought_parser import ANSWER, THINKING, ReasoningParser
from app.thinking_styles import SCAFFOLD_MARKERS
from app.session import Session


def feed(budget, pieces):
    return [budget.after_token(p) for p in pieces]


def test_budget_counts_from_the_opening_tag_and_fires_once():
    budget = ThinkingBudget(3, opened_in_prompt=False)
    assert feed(budget, ["<think>", "a", "b", "c", "d"]) == [False, False, True, False, False]
    assert budget.spent == 3 and budget.forced


def test_a_model_that_closes_its_thought_in_time_is_left_alone():
    budget = ThinkingBudget(10, opened_in_prompt=True)
    assert not any(feed(budget, ["x", "</th", "ink>", "answer"]))
    assert budget.finished and not budget.forced


def test_a_model_that_answers_without_thinking_is_left_alone():
    budget = ThinkingBudget(1, opened_in_prompt=False)
    assert not any(feed(budget, [" ", "Paris", " is", " big"]))
    assert budget.spent == 0


def test_zero_budget_on_an_opened_thought_closes_before_the_first_token():
    assert ThinkingBudget(0, opened_in_prompt=True).must_close_now()
    assert not ThinkingBudget(0, opened_in_prompt=False).must_close_now()
    assert not ThinkingBudget(None, opened_in_prompt=True).must_close_now()


def test_negative_budget_is_refused():
    with pytest.raises(ValueError, match="0 or more"):
        ThinkingBudget(-1, opened_in_prompt=True)


def test_a_minimum_refuses_an_early_close_tag_or_end_of_turn_until_it_is_reached():
    budget = ThinkingBudget(None, opened_in_prompt=True, minimum=3)
    assert budget.refuses("</think>") and budget.refuses("", end_of_turn=True)
    assert budget.refuses(" </") and budget.refuses("</th")  # a tag split over tokens: its first piece
    assert not budget.refuses("<") and not budget.refuses(" the")
    budget.injected("\nWait", EXTEND_THOUGHT)
    assert feed(budget, ["a", "b", "c"]) == [False, False, False] and budget.spent == 3
    assert not budget.refuses("</think>") and budget.extensions == 1


def test_a_minimum_leaves_a_model_that_answers_directly_alone():
    budget = ThinkingBudget(None, opened_in_prompt=False, minimum=50)
    feed(budget, ["Paris", "."])
    assert not budget.refuses("", end_of_turn=True)


def test_a_model_that_closes_at_once_every_time_is_let_go_after_max_extensions():
    budget = ThinkingBudget(None, opened_in_prompt=True, minimum=100)
    for _ in range(MAX_EXTENSIONS):
        assert budget.refuses("</think>")
        budget.injected("\nWait", EXTEND_THOUGHT)
    assert not budget.refuses("</think>")


@pytest.mark.parametrize("budget, minimum, message", [
    (None, -1, "minimum thought must be 0 or more"),
    (10, 20, r"minimum thought \(20 tokens\) is longer than the budget \(10 tokens\)"),
])
def test_a_minimum_that_makes_no_sense_is_refused(budget, minimum, message):
    with pytest.raises(ValueError, match=message):
        ThinkingBudget(budget, opened_in_prompt=True, minimum=minimum)


def test_on_a_harmony_model_the_thought_is_the_analysis_channel():
    request = GenerationRequest.from_prompt("hi", thinking_budget=3, thinking_min=2)
    budget = budget_for(request, False, "harmony")
    assert feed(budget, ["<|channel|>", "analysis", "<|message|>"]) == [False, False, False]
    assert budget.thinking and budget.spent == 1  # the token that completed the header
    assert budget.refuses("<|end|>") and budget.refuses("", end_of_turn=True)
    assert feed(budget, ["Let", " me"]) == [False, True] and budget.forced
    assert budget.message(CLOSE_THOUGHT, None, None).endswith("<|end|><|start|>assistant<|channel|>final<|message|>")
    direct = budget_for(request, False, "harmony")
    feed(direct, ["<|channel|>", "final", "<|message|>", "Hi"])
    assert direct.finished and not direct.thinking  # it went straight to its answer
    assert prefill_direct("<|start|>assistant<|channel|>analysis<|message|>", None, "harmony")[1]


def scaffolded(budget, **kwargs):
    """A thinking request as the session sends it to a model that cannot think natively."""
    return thinking_request(GenerationRequest.from_prompt("2+2?", thinking=True, thinking_budget=budget, **kwargs), "none")


@pytest.mark.parametrize("model_style", ["none", "think-tags", "harmony"])
def test_a_scaffolded_request_is_watched_by_the_scaffold_markers_whatever_the_model(model_style):
    budget = budget_for(scaffolded(3), opened_in_prompt=False, style=model_style)
    assert budget.markers is SCAFFOLD and budget.markers.closes is SCAFFOLD_MARKERS  # the parser's own list
    assert budget.thinking  # open from the first generated token: there is no opening tag
    assert feed(budget, ["Two", " plus", " two"]) == [False, False, True] and budget.spent == 3 and budget.forced


def test_a_scaffold_marker_split_across_tokens_ends_the_thought():
    budget = budget_for(scaffolded(4), False, "none")
    assert feed(budget, ["2+2=4.", " The ans", "wer is", " 4", "."]) == [False] * 5
    assert budget.finished and not budget.forced and budget.spent == 3  # the marker's tokens are thought


@pytest.mark.parametrize("pieces", [
    ["So 2", "+2 is 4, the answer is", " 4"],  # mid-line, lower case
    ["Adding", " up.", " Final answer", ": 4"],
    ["Adding", " up. Answer:", " 4"],
])
def test_a_scaffold_marker_mid_line_ends_the_thought(pieces):
    budget = budget_for(scaffolded(len(pieces)), False, "none")
    assert not any(feed(budget, pieces)) and budget.finished and not budget.forced


def test_a_scaffold_budget_of_zero_closes_before_the_first_token():
    assert budget_for(scaffolded(0), False, "none").must_close_now()
    assert not budget_for(scaffolded(None), False, "none").must_close_now()


def test_a_spent_scaffold_budget_puts_in_the_first_marker_which_the_parser_reads_as_the_answer():
    budget = budget_for(scaffolded(2), False, "none")
    assert feed(budget, ["Two", " and"]) == [False, True]
    message = budget.message(CLOSE_THOUGHT, None, None)
    assert message.endswith("\n\nThe answer is") and message.startswith("\n\nConsidering the limited time")
    parser = ReasoningParser("scaffold")
    pieces = parser.feed("Two and") + parser.feed(message) + parser.feed(" 4.") + parser.flush()
    said = {channel: "".join(p.text for p in pieces if p.channel == channel) for channel in (THINKING, ANSWER)}
    assert said[ANSWER] == "The answer is 4." and said[THINKING].startswith("Two and\n\nConsidering")
    assert parser.closed_thinking and not parser.unclosed


def test_a_scaffold_holds_no_minimum_and_says_why():
    with pytest.raises(ValueError) as refused:
        budget_for(dataclasses.replace(scaffolded(8), thinking_min=4), False, "none")
    assert str(refused.value) == SCAFFOLD_MIN_UNSUPPORTED
    assert scaffolded(8, thinking_min=4).thinking_min is None  # the session's scaffold drops it before
    with pytest.raises(ValueError, match="no end-of-thought token to refuse"):
        ThinkingBudget(8, opened_in_prompt=True, minimum=4, markers=SCAFFOLD)


def test_a_close_tag_still_closes_a_native_thought_after_a_long_one():
    # Only the text a split close could still need is kept: a long thought closes as a short one does.
    budget = ThinkingBudget(None, opened_in_prompt=True, minimum=1)
    feed(budget, ["word "] * 500 + ["</", "think>"])
    assert budget.finished and budget.spent == 502


def test_direct_mode_prefills_an_empty_thought_only_where_the_template_has_no_switch():
    assert prefill_direct("<|im_start|>assistant\n<think>\n", False, "think-tags") == (
        "<|im_start|>assistant\n<think>\n\n</think>\n\n", False)
    assert prefill_direct("<|im_start|>assistant\n", False, "think-tags") == (
        "<|im_start|>assistant\n<think>\n\n</think>\n\n", False)
    assert prefill_direct("A:<think>", None, "think-tags") == ("A:<think>", True)
    assert prefill_direct("A:", False, "think-tags-switch") == ("A:", False)


THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n<think>\n"
)


@pytest.fixture(scope="module", params=["llama.cpp", "mlx"])
def thinking_smollm2(request, smollm2_spec):
    """SmolLM2 behind a template that opens <think>, as DeepSeek-R1 distills' does, on each engine."""
    spec = dataclasses.replace(smollm2_spec, chat_template=THINKING_TEMPLATE, thinking="think-tags")
    if request.param == "mlx":
        spec = dataclasses.replace(spec, path=request.getfixturevalue("smollm2_mlx_path"), engine="mlx")
    with Session([spec]) as session:
        session.load()
        yield session


def ask(session, **kwargs):
    request = GenerationRequest.from_prompt("Is 91 prime?", sampling=Sampling(temperature=0.0), **kwargs)
    [result] = session.compare(request)
    return result


@pytest.mark.parametrize("budget", [0, 6])
def test_real_model_thought_is_closed_at_the_budget_and_it_then_answers(thinking_smollm2, budget):
    result = ask(thinking_smollm2, max_tokens=40, thinking_budget=budget)
    assert result.status == "ok" and result.thinking_budget == budget
    assert result.thinking_budget_hit
    assert result.n_thinking_tokens == budget  # the closing message is not counted as generated
    assert "Considering the limited time" in result.thinking
    assert result.n_answer_tokens > 0 and result.text.strip()
    assert result.n_generated == result.n_thinking_tokens + result.n_answer_tokens
    assert not result.thinking_unclosed


def test_real_model_custom_budget_message(thinking_smollm2):
    result = ask(thinking_smollm2, max_tokens=20, thinking_budget=2, thinking_budget_message="\nTime's up.\n</think>\n")
    assert result.thinking.endswith("Time's up.\n") and result.thinking_budget_hit


def test_negative_budget_fails_the_run_with_a_clear_message(thinking_smollm2):
    result = ask(thinking_smollm2, max_tokens=8, thinking_budget=-3)
    assert result.status == "failed" and result.error_kind == "bad_request"
    assert "0 or more tokens" in result.error


def test_direct_mode_on_a_model_without_a_switch_prefills_an_empty_thought(thinking_smollm2):
    result = ask(thinking_smollm2, max_tokens=10, thinking=False)
    assert result.status == "ok"
    assert result.n_thinking_tokens == 0 and result.thinking == ""
    assert result.n_answer_tokens == result.n_generated > 0 and result.text.strip()


def test_real_model_minimum_thought_refuses_its_end_of_turn_with_wait(thinking_smollm2):
    # Left alone, SmolLM2 "thinks" 85 tokens here and ends its turn inside the thought.
    free = ask(thinking_smollm2, max_tokens=160)
    forced = ask(thinking_smollm2, max_tokens=160, thinking_min=100)
    assert free.thinking_extended == 0 and "Wait" not in free.thinking
    assert forced.status == "ok" and forced.thinking_min == 100 and forced.thinking_extended >= 1
    assert forced.thinking.count("Wait") >= forced.thinking_extended
    assert forced.n_thinking_tokens >= 100 or forced.finish_reason == "length" or \
        forced.thinking_extended == MAX_EXTENSIONS
    assert forced.n_generated == forced.n_thinking_tokens + forced.n_answer_tokens  # "Wait" is not generated
    # Again, over the KV cache that run left (its refused tokens trimmed off): the same greedy thought.
    again = ask(thinking_smollm2, max_tokens=160, thinking_min=100)
    assert again.n_prompt_evaluated < again.n_prompt_tokens and again.thinking == forced.thinking


def test_real_model_minimum_then_budget_thinks_on_then_is_closed(thinking_smollm2):
    result = ask(thinking_smollm2, max_tokens=90, thinking_min=40, thinking_budget=50,
                 thinking_continue_message="\nHmm, let me check.")
    assert result.thinking_budget_hit and result.n_thinking_tokens == 50
    assert "let me check" in result.thinking if result.thinking_extended else True
    assert result.n_answer_tokens > 0


def test_real_model_minimum_longer_than_the_budget_fails_the_run_clearly(thinking_smollm2):
    result = ask(thinking_smollm2, max_tokens=8, thinking_min=30, thinking_budget=10)
    assert result.status == "failed" and result.error_kind == "bad_request"
    assert "longer than the budget" in result.error


HARMONY_TEMPLATE = (
    "{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{% endfor %}"
    "<|start|>assistant<|channel|>analysis<|message|>"
)


@pytest.mark.parametrize("engine", ["llama.cpp", "mlx"])
def test_real_model_budget_closes_a_harmony_analysis_channel_and_the_final_channel_answers(
        request, smollm2_spec, engine):
    """gpt-oss's format, written out as text for SmolLM2: the thought is the analysis channel."""
    spec = dataclasses.replace(smollm2_spec, chat_template=HARMONY_TEMPLATE, thinking=None)  # detected
    if engine == "mlx":
        spec = dataclasses.replace(spec, path=request.getfixturevalue("smollm2_mlx_path"), engine="mlx")
    with Session([spec]) as session:
        session.load()
        assert session.panes[0].thinking_style == "harmony"
        result = ask(session, max_tokens=40, thinking_budget=8)
    assert result.status == "ok" and result.thinking_budget_hit and result.n_thinking_tokens == 8
    assert "Considering the limited time" in result.thinking and "<|" not in result.thinking
    assert result.n_answer_tokens > 0 and result.text.strip() and "<|channel|>" not in result.text


SWITCH_TEMPLATE = (  # Qwen3's way: enable_thinking=false writes an empty, closed thought into the prompt
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% endif %}"
)


@pytest.mark.parametrize("engine", ["llama.cpp", "mlx"])
def test_the_templates_thinking_switch_reaches_the_prompt_on_both_engines(request, smollm2_spec, engine):
    spec = dataclasses.replace(smollm2_spec, chat_template=SWITCH_TEMPLATE, thinking="think-tags-switch")
    if engine == "mlx":
        spec = dataclasses.replace(spec, path=request.getfixturevalue("smollm2_mlx_path"), engine="mlx")
    with Session([spec]) as session:
        session.load()
        on, off = (ask(session, max_tokens=6, thinking=switch) for switch in (True, False))
    assert off.n_prompt_tokens > on.n_prompt_tokens  # the empty thought is in the prompt
    assert off.status == on.status == "ok" and off.n_thinking_tokens == 0 and off.n_answer_tokens > 0
