"""The session's coordination, on a stand-in engine (tests/standin_engine.py): how panes are ordered,
planned, cancelled, judged and logged. What needs a real model stays in tests/test_session.py."""

from __future__ import annotations

import threading

import pytest
from standin_engine import Script, StandinEngine, registered

from app.cancellation import Cancellation
from app.engines.types import GenerationRequest
from app.record import RunResult, Status
from app.session import Session
from app.store import MemoryLog

ASK = GenerationRequest.from_prompt("What is 2 + 2?", max_tokens=16)


@pytest.fixture
def spec(monkeypatch):
    return registered(monkeypatch)


def session_of(specs, scripts, **kwargs) -> Session:
    engines = iter([StandinEngine(s) for s in scripts])
    session = Session(specs, make_engine=lambda: next(engines), **kwargs)
    session.load()
    return session


def test_fair_mode_runs_the_panes_one_after_another_each_with_every_core(spec):
    scripts = [Script(), Script()]
    with session_of([spec, spec], scripts, mode="fair", cores=4) as session:
        results = session.compare(ASK)
    assert [r.status for r in results] == ["ok", "ok"]
    (s0, e0), (s1, e1) = scripts[0].spans[0], scripts[1].spans[0]
    assert e0 <= s1  # the second started after the first ended
    assert [s.requests[0].n_threads for s in scripts] == [4, 4]
    assert [r.text for r in results] == ["The answer is 4."] * 2


def test_live_mode_runs_the_panes_at_once_with_the_cores_split(spec):
    scripts = [Script(step_s=0.02), Script(step_s=0.02)]
    with session_of([spec, spec], scripts, mode="live", cores=4) as session:
        results = session.compare(ASK)
    (s0, e0), (s1, e1) = scripts[0].spans[0], scripts[1].spans[0]
    assert s1 < e0 and s0 < e1  # they overlapped
    assert [s.requests[0].n_threads for s in scripts] == [2, 2]
    assert {r.mode for r in results} == {"live"}


def test_every_pane_ends_with_one_closing_update_carrying_a_frozen_record(spec):
    with session_of([spec, spec], [Script(), Script()], mode="live") as session:
        updates = list(session.stream(ASK))
    closing = [u for u in updates if u.closing]
    assert sorted(u.pane for u in closing) == [0, 1]
    for update in closing:
        assert isinstance(update.result, RunResult) and update.result.status is Status.OK
        with pytest.raises(AttributeError):  # frozen: a reader cannot change what another reads
            update.result.text = "changed"
        last = [u for u in updates if u.pane == update.pane][-1]
        assert last is update  # nothing of a pane comes after its closing update


def test_esc_in_fair_mode_stops_the_running_pane_and_the_waiting_one_never_starts(spec):
    scripts = [Script(tokens=("x",) * 200, step_s=0.01), Script()]
    cancellation = Cancellation()
    with session_of([spec, spec], scripts, mode="fair") as session:
        results = {}
        for update in session.stream(ASK.__class__.from_prompt("go", max_tokens=200), cancellation=cancellation):
            if update.pane == 0 and update.progress.n_generated == 3:
                cancellation.cancel(None)
            if update.closing:
                results[update.pane] = update.result
    assert results[0].status == "cancelled" and 3 <= results[0].n_generated < 200
    assert results[1].status == "cancelled" and results[1].no_answer == "cancelled before it started"
    assert scripts[1].requests == []  # it was never sent


def test_a_panes_own_cancel_stops_that_pane_only(spec):
    scripts = [Script(tokens=("x",) * 100, step_s=0.01), Script(tokens=("y",) * 20, step_s=0.01)]
    cancellation = Cancellation()
    with session_of([spec, spec], scripts, mode="live") as session:
        results = {}
        for update in session.stream(GenerationRequest.from_prompt("go", max_tokens=100), cancellation=cancellation):
            if update.pane == 0 and update.progress.n_generated == 2:
                cancellation.cancel([0])
            if update.closing:
                results[update.pane] = update.result
    assert results[0].status == "cancelled"
    assert results[1].status == "ok" and results[1].n_generated == 20


def test_a_pane_that_did_not_load_gets_only_its_closing_update_and_the_others_run(spec):
    with session_of([spec, spec], [Script(fail_load="no such model"), Script()]) as session:
        updates = list(session.stream(ASK))
    assert [(u.pane, u.closing) for u in updates if u.pane == 0] == [(0, True)]
    failed = next(u.result for u in updates if u.pane == 0)
    assert (failed.status, failed.error_kind, failed.error, failed.model) == (
        "failed", "load_failed", "no such model", "stand-in")
    assert next(u.result for u in updates if u.closing and u.pane == 1).status == "ok"


def test_a_failed_run_keeps_its_kind_and_message(spec):
    with session_of([spec], [Script(fail_with="engine")]) as session:
        [result] = session.compare(ASK)
    assert (result.status, result.error_kind) == ("failed", "engine")
    assert result.total_s is not None and result.text == ""


def test_asked_to_think_a_model_that_cannot_is_scaffolded_and_the_record_says_so(spec):
    script = Script(tokens=("Add", " them", ".", " The", " answer", " is", " 4", "."))
    with session_of([spec], [script]) as session:
        [result] = session.compare(GenerationRequest.from_prompt("What is 2 + 2?", thinking=True))
    assert script.requests[0].strategy == "scaffold"
    assert (result.strategy, result.thinking_style) == ("scaffold", "scaffold")
    assert result.text.strip() == "The answer is 4." and result.thinking.strip() == "Add them."


def test_a_known_answer_marks_each_run_right_or_wrong(spec):
    scripts = [Script(), Script(tokens=("It", " is", " 5", "."))]
    with session_of([spec, spec], scripts) as session:
        right, wrong = session.compare(ASK, known_answer="4")
    assert (right.correct, wrong.correct) == (True, False)


def test_what_the_log_stores_is_the_record_each_closing_update_carries(spec):
    log = MemoryLog.open()
    with session_of([spec, spec], [Script(), Script(tokens=("5",))], mode="live", log=log) as session:
        results = session.compare(ASK, known_answer="4")
        stored = {r.pane: log.get_run(r.id) for r in log.list_runs()}
    assert [stored[r.pane] for r in results] == results


def test_a_stream_keeps_its_state_to_itself_so_two_comparisons_do_not_mix(spec):
    # Each stream() is planned and judged on its own: a second one started from another thread
    # while the first runs does not change what the first asked or how it is marked.
    scripts = [Script(step_s=0.01), Script(step_s=0.01)]
    with session_of([spec, spec], scripts, mode="fair") as session:
        first = session.stream(GenerationRequest.from_prompt("one", max_tokens=5), known_answer="4")
        got = [next(first)]  # the first comparison has begun
        other = threading.Thread(target=lambda: list(session.stream(
            GenerationRequest.from_prompt("two", max_tokens=2), only=[1], known_answer="5")))
        other.start()
        other.join()
        got += list(first)
    results = {u.pane: u.result for u in got if u.closing}
    assert [r.correct for r in (results[0], results[1])] == [True, True]
    assert [r.n_generated for r in (results[0], results[1])] == [5, 5]
