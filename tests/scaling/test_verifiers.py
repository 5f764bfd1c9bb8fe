"""The verifiers on known cases: the oracle's ceiling, the vote, the arithmetic check, the judge."""

import pytest

from app.scaling.verifiers import (
    Candidate,
    arithmetic_checks,
    distinct_answers,
    judge_prompt,
    majority,
    oracle,
    program,
    read_judgement,
    wilson_interval,
)

RIGHT = Candidate("29", "3 * 12 = 36 apples. 36 - 7 = 29. The answer is 29.")
SLOPPY = Candidate("31", "3 * 12 = 36 apples. 36 - 7 = 31. The answer is 31.")  # wrong subtraction
NO_WORK = Candidate("31", "The answer is 31.")
UNREADABLE = Candidate(None, "I do not know.")


def test_the_oracle_is_right_when_any_candidate_is():
    assert oracle([SLOPPY, RIGHT], "29")
    assert not oracle([SLOPPY, NO_WORK, UNREADABLE], "29")


def test_majority_follows_the_count_and_ignores_unreadable_answers():
    assert majority([SLOPPY, NO_WORK, RIGHT]) == "31"
    assert majority([UNREADABLE, RIGHT]) == "29"
    assert majority([UNREADABLE]) is None


def test_the_arithmetic_check_recomputes_what_a_solution_states():
    assert arithmetic_checks(RIGHT.solution) == (2, 2)
    assert arithmetic_checks(SLOPPY.solution) == (2, 1)
    assert arithmetic_checks("$1,200 / 4 = 300 and 2.5 x 4 = 10 and 7 ÷ 0 = 1") == (2, 2)
    assert arithmetic_checks("no sums here") == (0, 0)


def test_the_program_verifier_overrules_a_majority_with_bad_arithmetic():
    # Two wrong answers outvote one right one; only the right one's arithmetic holds.
    assert majority([SLOPPY, SLOPPY, RIGHT]) == "31"
    assert program([SLOPPY, SLOPPY, RIGHT]) == "29"
    # With no checkable solution it falls back to the vote.
    assert program([NO_WORK, NO_WORK, UNREADABLE]) == "31"


def test_the_judge_sees_each_answer_once_and_its_pick_is_read_back():
    answers = distinct_answers([SLOPPY, RIGHT, NO_WORK, UNREADABLE])
    assert answers == ["31", "29"]
    prompt = judge_prompt("How many apples?", answers)
    assert "(1) 31" in prompt and "(2) 29" in prompt
    assert read_judgement("The correct one is (2).", answers) == "29"
    assert read_judgement("1", answers) == "31"
    assert read_judgement("(7)", answers) is None and read_judgement("none", answers) is None


def test_wilson_interval_is_honest_at_the_edges():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.25 < high < 0.35
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
