"""Decision cost of the two routers that run no model (goal: under 5 ms a prompt), side by side."""

import time

import pytest

from app.eval.suites import GSM8K_PATH, load_suite
from app.routing import classifier, heuristic

pytestmark = pytest.mark.perf


@pytest.mark.parametrize("name, decide", [("heuristic", heuristic.decide), ("classifier", classifier.decide)])
def test_router_decision_cost(name, decide):
    prompts = [p.question for p in load_suite(GSM8K_PATH)]
    decide(prompts[0])  # the classifier reads its weights once
    started = time.perf_counter()
    for prompt in prompts:
        decide(prompt)
    per_prompt_ms = (time.perf_counter() - started) / len(prompts) * 1000
    print(f"\n[bench] {name} router: {per_prompt_ms * 1000:.0f} µs a prompt over {len(prompts)} GSM8K questions "
          f"(goal < 5 ms)")
    assert per_prompt_ms < 50  # only catches a pathological regression; the goal is printed above
