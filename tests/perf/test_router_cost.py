"""Decision cost of the heuristic router (goal: under 5 ms a prompt)."""

import time

import pytest

from app.eval.suites import GSM8K_PATH, load_suite
from app.routing.heuristic import decide

pytestmark = pytest.mark.perf


def test_heuristic_decision_cost():
    prompts = [p.question for p in load_suite(GSM8K_PATH)]
    started = time.perf_counter()
    for prompt in prompts:
        decide(prompt)
    per_prompt_ms = (time.perf_counter() - started) / len(prompts) * 1000
    print(f"\n[bench] heuristic router: {per_prompt_ms * 1000:.0f} µs a prompt over {len(prompts)} GSM8K questions (goal < 5 ms)")
    assert per_prompt_ms < 50  # only catches a pathological regex; the goal is printed above
