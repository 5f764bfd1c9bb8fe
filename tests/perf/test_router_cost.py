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


def test_knowing_the_model_costs_little_on_top(tmp_path):
    # A model's record read from the log once, then each decision moved by it: the same 5 ms goal.
    from app.plan import route
    from app.routing.evidence import Checked, model_record

    prompts = [p.question for p in load_suite(GSM8K_PATH)]
    record = model_record("m", [Checked(q, thinking, not thinking, 1.0 + thinking, 2.0 + 3 * thinking)
                                for q in prompts[:200] for thinking in (False, True)])
    started = time.perf_counter()
    for prompt in prompts:
        route(prompt, record=record)
    per_prompt_ms = (time.perf_counter() - started) / len(prompts) * 1000
    print(f"\n[bench] heuristic router knowing the model's record ({sum(k.pairs for k in record.kinds.values())} "
          f"checked pairs): {per_prompt_ms * 1000:.0f} µs a prompt (goal < 5 ms)")
    assert per_prompt_ms < 50


def test_held_out_agreement_per_kind():
    # Held out: data/router/heldout/<kind>.txt (written apart from the router, never trained or tuned
    # on) and GSM8K's second half. Goal: >= 95% on every kind.
    from app.eval import train_router as train

    _, holdout = train.dataset()
    weights = classifier.load_weights()
    ours = train.accuracy(weights, holdout, lambda p, w: classifier.decide(p, weights=w).route)
    theirs = train.accuracy(weights, holdout, lambda p, _w: heuristic.decide(p).route)
    print("\n[bench] held-out agreement with each kind's route (goal >= 95% on every kind):")
    for source in ours:
        n = sum(s == source for *_, s in holdout)
        print(f"[bench]   {source:<22} n={n:<4} heuristic {theirs[source]:6.1%}   classifier {ours[source]:6.1%}")
    short = sorted(s for s in ours if min(ours[s], theirs[s]) < 0.95)
    print(f"[bench] kinds under 95% with either router: {', '.join(short) or 'none'}")
    assert min(ours.values()) > 0.5 and min(theirs.values()) > 0.5
