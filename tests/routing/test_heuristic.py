"""The heuristic router on real questions: GSM8K thinks, lookups and small talk do not."""

import pytest

from app.eval.suites import GSM8K_PATH, load_suite
from app.routing.heuristic import DIRECT, THINK, calibrate_threshold, decide

PLAIN = [
    "What is the capital of France?",
    "Who wrote Pride and Prejudice?",
    "Hello!",
    "Thanks, that helps.",
    "Translate 'good night' into Spanish.",
    "Define photosynthesis.",
    "When was the Eiffel Tower built?",
    "What does 'ephemeral' mean?",
    "Where is Mount Kilimanjaro?",
    "Name a primary colour.",
]


@pytest.fixture(scope="module")
def gsm8k_questions():
    return [p.question for p in load_suite(GSM8K_PATH, limit=300)]


def test_grade_school_math_goes_to_thinking(gsm8k_questions):
    routes = [decide(q).route for q in gsm8k_questions]
    assert routes.count(THINK) / len(routes) >= 0.85


def test_lookups_and_small_talk_are_answered_directly():
    assert [decide(q).route for q in PLAIN].count(DIRECT) >= 9


def test_every_decision_says_why():
    ducks = decide(
        "Janet's ducks lay 16 eggs per day. She eats three for breakfast and bakes muffins with four. "
        "She sells the remainder for $2 each. How much does she make every day?"
    )
    assert ducks.route == THINK and ducks.budget >= 256
    assert "multi-step wording" in ducks.reasons
    assert 0.5 <= ducks.confidence <= 1
    capital = decide("What is the capital of France?")
    assert capital.route == DIRECT and capital.budget is None
    assert capital.reasons[0] == "a factual lookup"


def test_code_and_logic_think():
    assert decide("Why does this function return None?\n```python\ndef f(x): x + 1\n```").route == THINK
    assert "a constraint puzzle" in decide("Solve this riddle: what has keys but no locks?").reasons


@pytest.mark.parametrize("prompt", ["Prove that there are infinitely many primes.", "Derive the quadratic formula.",
                                    "Show that the square root of 2 is irrational."])
def test_a_short_proof_or_derivation_thinks(prompt):
    decision = decide(prompt)
    assert decision.route == THINK and decision.reasons[0] == "a proof or derivation"


def test_multi_digit_arithmetic_thinks_and_one_digit_sums_do_not():
    assert decide("What is 17 times 23?").route == THINK
    assert "multi-digit arithmetic" in decide("What is 17 times 23?").reasons
    assert decide("What is 2 + 2?").route == DIRECT


def test_threshold_calibrated_to_a_target_share_of_thinking(gsm8k_questions):
    mixed = gsm8k_questions[:40] + PLAIN * 6  # 40 math, 60 plain
    for share in (0.1, 0.25, 0.4):
        threshold = calibrate_threshold(mixed, share)
        routed = [decide(p, threshold).route for p in mixed].count(THINK) / len(mixed)
        assert abs(routed - share) <= 0.1, (share, routed)


def test_calibration_edges():
    assert all(decide(p, calibrate_threshold(PLAIN, 0.0)).route == DIRECT for p in PLAIN)
    assert all(decide(p, calibrate_threshold(PLAIN, 1.0)).route == THINK for p in PLAIN)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: decide("x", threshold=0), "between 0 and 1"),
        (lambda: decide("x", threshold=1.5), "between 0 and 1"),
        (lambda: calibrate_threshold([], 0.5), "at least one prompt"),
        (lambda: calibrate_threshold(["x"], 2), "between 0 and 1"),
    ],
)
def test_bad_settings_are_refused(call, words):
    with pytest.raises(ValueError, match=words):
        call()
