"""A router that knows its model: each model's checked answers are its record, the record moves
Auto's decision for prompts of the same kind, weighed against what thinking costs that model, and
the decision says so in words. The record lives in the session log, so it survives restarts."""

from __future__ import annotations

import subprocess
import sys

import pytest
from standin_engine import Script, StandinEngine, registered

from app.engines.types import GenerationRequest
from app.plan import route
from app.routing.evidence import Checked, model_record

ARITHMETIC = [f"Ann buys {n} boxes of {n + 3} pens each and gives away {n * 2} pens. How many pens does she "
              f"have left after that, and how many did she buy in total?" for n in range(3, 23)]
SIMILAR = "Bo buys 7 bags of 12 apples each and eats 9 of them. How many apples does he have left in total?"


def checked(questions, helped: int, direct_j: float = 2.0, think_j: float = 5.6):
    """Each question answered directly (wrong) and thinking (right for the first `helped`), newest first."""
    return [Checked(q, thinking, thinking and i < helped, 1.0 + 2 * thinking, think_j if thinking else direct_j)
            for i, q in enumerate(questions) for thinking in (True, False)]


def test_a_model_whose_thinking_never_helps_answers_such_questions_directly_and_says_why():
    assert route(SIMILAR).route == "think"  # the prompt alone: arithmetic in several steps
    record = model_record("smollm2-135m", checked(ARITHMETIC, helped=0))
    decision = route(SIMILAR, record=record)
    assert decision.route == "direct" and decision.budget is None
    assert decision.reasons[0] == "on smollm2-135m thinking helped 0 of 20 checked multi-step arithmetic questions here"
    assert decision.reasons[1].startswith("it would cost ~2.8× the energy")
    assert "the prompt alone said" in decision.reasons[2] and "moved by 20 checked questions" in decision.reasons[2]
    # A greeting is another kind: arithmetic evidence says nothing of it, and the prompt alone decides.
    hello = route("hello! how are you today?", record=record)
    assert hello.route == "direct" and hello.reasons[0].startswith("no checked small talk question of smollm2-135m")


def test_a_model_whose_thinking_helps_thinks_on_such_questions():
    record = model_record("qwen3-thinker", checked(ARITHMETIC, helped=12))
    decision = route(SIMILAR, record=record)
    assert decision.route == "think" and decision.budget is not None
    assert decision.reasons[0] == "on qwen3-thinker thinking helped 12 of 20 checked multi-step arithmetic questions here"


def test_what_a_right_answer_is_worth_weighs_against_the_cost():
    # Thinking helped 4 of 20 (about a fifth) at 2.8x the energy: worth it when a right answer is
    # worth 10 direct answers (the bar is 18%), not when it is worth 3 (the bar is 60%).
    record = model_record("m", checked(ARITHMETIC, helped=4))
    assert route(SIMILAR, record=record, worth=10).route == "think"
    cautious = route(SIMILAR, record=record, worth=3)
    assert cautious.route == "direct" and "worth it from an expected gain of 60%" in cautious.reasons[1]
    with pytest.raises(ValueError, match="worth must be more than 0"):
        route(SIMILAR, record=record, worth=0)


def test_pairs_count_the_newest_run_each_way_and_what_thinking_broke():
    runs = [Checked("Q 1 plus 2 then 3 more", True, False), Checked("Q 1 plus 2 then 3 more", False, True),
            Checked("Q 1 plus 2 then 3 more", True, True)]  # older: it was right once; the newest counts
    record = model_record("m", runs)
    mine = next(k for k in record.kinds.values() if k.pairs)
    assert (mine.pairs, mine.helped, mine.hurt) == (1, 0, 1)
    lone = model_record("m", [Checked("What is 2+2?", False, True)])  # one way only: no pair
    assert sum(k.pairs for k in lone.kinds.values()) == 0


def test_a_stand_in_model_whose_thinking_helps_in_the_log_thinks_and_the_record_survives_a_restart(
        monkeypatch, tmp_path):
    from app.model_record import record_for
    from app.session import Session
    from app.store import SessionLog

    spec = registered(monkeypatch, thinking="think-tags")
    db = tmp_path / "log.db"
    wrong = Script(tokens=("The", " answer", " is", " 41", "."))  # asked directly: wrong every time
    right = Script(tokens=("<think>", "six", " sevens", "</think>", "The", " answer", " is", " 42", "."))
    questions = ARITHMETIC[:6]
    with SessionLog.open(db) as log:
        for script, thinking in ((wrong, False), (right, True)):
            engines = iter([StandinEngine(script)])
            with Session([spec], make_engine=lambda: next(engines), log=log) as session:
                session.load()
                for question in questions:
                    request = GenerationRequest.from_prompt(question, max_tokens=16, thinking=thinking)
                    session.compare(request, known_answer="42")
    with SessionLog.open(db, read_only=True) as log:  # a restart: the record is the log's
        record = record_for(log, spec)
    mine = record.of("multi_step_arithmetic")
    assert (mine.pairs, mine.helped, mine.hurt) == (6, 6, 0)
    assert mine.cost_of == "time" and mine.cost_ratio > 1  # no worker to measure the energy of: its time
    decision = route(SIMILAR, record=record)
    assert decision.route == "think"
    assert decision.reasons[0] == "on stand-in thinking helped 6 of 6 checked multi-step arithmetic questions here"


@pytest.mark.model
def test_after_an_eval_shows_thinking_does_not_help_smollm2_auto_answers_directly_even_after_a_restart(tmp_path):
    db = str(tmp_path / "log.db")
    cli = [sys.executable, "-m", "app.cli"]
    ran = subprocess.run([*cli, "eval", "--limit", "16", "--policies", "direct,think", "--max-tokens", "48",
                          "-m", "smollm2-135m", "--db", db, "--output", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    from app.catalog import resolve
    from app.model_record import record_for
    from app.store import SessionLog

    with SessionLog.open(db, read_only=True) as log:  # another process: what survives is the log
        mine = record_for(log, resolve("smollm2-135m")).of("multi_step_arithmetic")
    assert mine.pairs >= 10 and mine.helped <= mine.hurt  # SmolLM2's scaffolded thought never wins here
    routed = subprocess.run([*cli, "route", SIMILAR, "-m", "smollm2-135m", "--db", db],
                            capture_output=True, text=True, timeout=120)
    assert routed.returncode == 0, routed.stderr
    assert routed.stdout.startswith("answer directly: on smollm2-135m thinking helped 0")
    assert f"of {mine.pairs} checked multi-step arithmetic questions here" in routed.stdout
    bare = subprocess.run([*cli, "route", SIMILAR], capture_output=True, text=True, timeout=120)
    assert bare.stdout.startswith("think")  # the prompt alone would have thought
