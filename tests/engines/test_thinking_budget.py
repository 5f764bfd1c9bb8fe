"""The thinking budget: counted in the worker, closed with a message, then the model answers."""

import dataclasses

import pytest

from app.engines.thinking_budget import ThinkingBudget
from app.engines.types import GenerationRequest, Sampling
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


THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n<think>\n"
)


@pytest.fixture(scope="module")
def thinking_smollm2(smollm2_spec):
    """SmolLM2 behind a template that opens <think>, as DeepSeek-R1 distills' does."""
    spec = dataclasses.replace(smollm2_spec, chat_template=THINKING_TEMPLATE, thinking="think-tags")
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
