"""A pane's plan becomes its request: Direct switches thinking off, Thinking sets the budget, Auto asks the router."""

import pytest

from app.plan import PanePlan, budget_limit, describe_decision, plan_request, route
from app.routing.heuristic import decide

MATH = "Tom has 3 boxes with 12 apples each. He gives away 7 apples, then buys twice as many. How many apples now?"
CHAT = "hello there"


def test_direct_switches_thinking_off():
    request, decision = plan_request(MATH, PanePlan(mode="direct", max_tokens=64, temperature=0.2, seed=3))
    assert decision is None
    assert request.thinking is False and request.thinking_budget is None
    assert (request.max_tokens, request.sampling.temperature, request.seed) == (64, 0.2, 3)
    assert request.messages[-1].content == MATH


def test_thinking_carries_the_budget():
    request, _ = plan_request(MATH, PanePlan(mode="thinking", thinking_budget=128))
    assert request.thinking is True and request.thinking_budget == 128


def test_a_minimum_thought_goes_with_thinking_only():
    request, _ = plan_request(MATH, PanePlan(mode="thinking", thinking_budget=128, thinking_min=32))
    assert (request.thinking_budget, request.thinking_min) == (128, 32)
    request, _ = plan_request(MATH, PanePlan(mode="direct", thinking_min=32))
    assert request.thinking is False and request.thinking_min is None
    request, decision = plan_request(CHAT, PanePlan(mode="auto", thinking_min=32))
    assert decision.route == "direct" and request.thinking_min is None


def test_auto_follows_the_router_and_keeps_its_decision():
    request, decision = plan_request(MATH, PanePlan(mode="auto", max_tokens=4096))
    assert decision == decide(MATH) and decision.route == "think"
    assert request.thinking is True and request.thinking_budget == decision.budget
    request, decision = plan_request(CHAT, PanePlan(mode="auto"))
    assert decision.route == "direct" and request.thinking is False


def test_auto_can_be_overridden_and_the_banner_says_so():
    request, decision = plan_request(MATH, PanePlan(mode="auto", override="direct"))
    assert decision.route == "think" and request.thinking is False
    assert "overridden: Direct" in describe_decision(decision, "direct")
    assert describe_decision(decision).startswith("Thinking (budget")


def test_the_router_never_proposes_a_budget_the_request_cannot_hold():
    # It asked for 815 tokens of thought with max tokens 512: the thought would leave no room to answer.
    assert decide(MATH).budget > 512
    request, decision = plan_request(MATH, PanePlan(mode="auto", max_tokens=512))
    assert decision.budget == request.thinking_budget == budget_limit(512) == 448
    assert f"budget lowered from {decide(MATH).budget} to 448 tokens" in decision.reasons[-1]
    assert "(budget 448 tokens)" in describe_decision(decision)
    assert route(MATH, max_tokens=2048).budget == decide(MATH).budget  # room enough: left as it was


def test_a_thinking_budget_that_leaves_no_room_to_answer_is_refused():
    with pytest.raises(ValueError, match=r"thinking budget \(600 tokens\) leaves no room for the answer within "
                                         r"max tokens \(512\): lower the budget to 448 or less"):
        PanePlan(mode="thinking", thinking_budget=600, max_tokens=512)
    PanePlan(mode="thinking", thinking_budget=448, max_tokens=512)  # room for 64 answer tokens
    PanePlan(mode="direct", thinking_budget=600, max_tokens=512)  # not used by a direct answer
    with pytest.raises(ValueError, match="leaves no room"):  # Auto with the pane's own budget
        plan_request(MATH, PanePlan(mode="auto", thinking_budget=600, max_tokens=512))


def test_a_system_message_goes_first():
    request, _ = plan_request(MATH, PanePlan(), system="Be brief.")
    assert [m.role for m in request.messages] == ["system", "user"]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"mode": "slow"}, "mode must be one of"),
        ({"thinking_budget": -1}, "0 or more"),
        ({"thinking_min": -1}, "minimum thought must be 0 or more"),
        ({"thinking_budget": 10, "thinking_min": 20}, r"minimum thought \(20 tokens\) is longer than the budget \(10 tokens\)"),
        ({"max_tokens": 0}, "1 or more"),
        ({"temperature": 9.0}, "between 0 and 5"),
        ({"override": "maybe"}, "override must be"),
    ],
)
def test_bad_plans_are_refused_with_a_reason(kwargs, words):
    with pytest.raises(ValueError, match=words):
        PanePlan(**kwargs)


def test_an_empty_prompt_is_refused():
    with pytest.raises(ValueError, match="empty"):
        plan_request("   ", PanePlan())


def test_auto_can_ask_the_trained_router_instead():
    from app.routing import classifier

    request, decision = plan_request(MATH, PanePlan(mode="auto"), router="classifier")
    assert decision.route == classifier.decide(MATH).route and request.thinking is (decision.route == "think")
    with pytest.raises(ValueError, match="router must be"):
        plan_request(MATH, PanePlan(mode="auto"), router="oracle")
