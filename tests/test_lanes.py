"""Lanes: an eval's or a sweep's requests, several at once, each on a pane of its own.

The scheduling on stand-in engines (tests/standin_engine.py); then `fastslow eval` and `fastslow
scale` with --parallel against a real server (llama-cpp-python's, serving the bundled SmolLM2),
nothing of the protocol mocked."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest
from standin_engine import Script, StandinEngine, registered

from app import cli
from app.engines.types import GenerationRequest, ModelSpec
from app.lanes import lanes_refused, run_lanes
from app.session import Session
from app.store import MemoryLog, SessionLog


@pytest.fixture
def spec(monkeypatch):
    return registered(monkeypatch)


def lanes_of(spec, scripts, **kwargs) -> Session:
    engines = iter([StandinEngine(s) for s in scripts])
    session = Session([spec] * len(scripts), make_engine=lambda: next(engines), **kwargs)
    session.load_lanes()
    return session


def asking(question: str, n: int = 1):
    """A job that asks `question` n times in turn and returns the texts."""
    def job(ask):
        return [question] + [ask(GenerationRequest.from_prompt(question, max_tokens=8)).text for _ in range(n)]
    return job


def overlapped(spans_a, spans_b) -> bool:
    return any(s1 < e0 and s0 < e1 for s0, e0 in spans_a for s1, e1 in spans_b)


def test_lanes_answer_at_once_and_give_the_results_in_the_jobs_order(spec):
    scripts = [Script(step_s=0.01) for _ in range(3)]
    heard = []
    with lanes_of(spec, scripts) as session:
        results = run_lanes(session, [asking(f"question {i}") for i in range(7)], heard.append)
    assert [r[0] for r in results] == [f"question {i}" for i in range(7)]
    assert all(r[1] == "The answer is 4." for r in results)
    assert sorted(r[0] for r in heard) == sorted(r[0] for r in results)  # each heard once, as it finished
    assert sum(len(s.requests) for s in scripts) == 7 and all(s.requests for s in scripts)
    assert overlapped(scripts[0].spans, scripts[1].spans) and overlapped(scripts[1].spans, scripts[2].spans)


def test_one_lane_is_a_plain_loop_in_the_callers_thread(spec):
    threads = []

    def job(ask):
        threads.append(threading.current_thread())
        return ask(GenerationRequest.from_prompt("hi", max_tokens=4)).status

    with lanes_of(spec, [Script(), Script()]) as session:
        assert run_lanes(session, [job, job], lanes=1) == ["ok", "ok"]
    assert threads == [threading.main_thread()] * 2


def test_every_ask_is_a_comparison_of_its_own_in_the_log(spec):
    log = MemoryLog.open()
    with lanes_of(spec, [Script(step_s=0.005) for _ in range(3)], log=log) as session:
        run_lanes(session, [asking(f"question {i}", n=2) for i in range(5)])
    runs = log.list_runs()
    assert len(runs) == 10 and {r.status for r in runs} == {"ok"}
    assert sorted(r.prompt for r in runs) == sorted(f"question {i}" for i in range(5) for _ in range(2))
    assert {r.session_id for r in runs} == {session.log_session_id}  # one session, however many lanes


def test_a_job_that_fails_stops_the_lanes_and_its_error_comes_after_those_in_flight(spec):
    heard = []

    def broken(ask):
        raise ValueError("the verifier crashed")

    jobs = [asking("first")] + [broken] + [asking(f"later {i}") for i in range(20)]
    scripts = [Script(step_s=0.01), Script(step_s=0.01)]
    with lanes_of(spec, scripts) as session:
        with pytest.raises(ValueError, match="the verifier crashed"):
            run_lanes(session, jobs, heard.append)
    assert "first" in [r[0] for r in heard]  # what finished was handed on
    assert sum(len(s.requests) for s in scripts) < 5  # no lane took the rest


def test_runs_side_by_side_share_their_energy_window_and_a_lone_run_does_not(spec, monkeypatch):
    # Each run's energy is shared by CPU time with the workers that ran beside it at some moment:
    # an eval's other lanes, as live mode's other panes. Real processes stand in for the workers.
    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    shared = []
    monkeypatch.setattr("app.session.with_energy", lambda record, samples, t, pid, share_with, lost, **_:
                        shared.append((pid, list(share_with))) or record)
    try:
        engines = [StandinEngine(Script(step_s=0.02)) for _ in range(2)]
        for engine, sleeper in zip(engines, sleepers):
            engine.pid = sleeper.pid
        it = iter(engines)
        with Session([spec, spec], make_engine=lambda: next(it)) as session:
            session.load_lanes()
            run_lanes(session, [asking("a"), asking("b")])
            both = list(shared)
            shared.clear()
            run_lanes(session, [asking("c")], lanes=1)
    finally:
        for sleeper in sleepers:
            sleeper.kill()
    a, b = (s.pid for s in sleepers)
    assert sorted(both) == sorted([(a, [b]), (b, [a])])
    assert shared == [(a, [])]


def test_many_at_once_go_to_a_served_model_only(spec):
    local = ModelSpec(path="/models/smollm2.gguf", name="smollm2")
    served = ModelSpec(path="http://127.0.0.1:8080/v1", name="qwen3", engine="remote")
    refused = lanes_refused(local, 4)
    assert "served model only" in refused and "smollm2 runs on this machine" in refused and "--parallel 1" in refused
    assert lanes_refused(local, 1) is None and lanes_refused(served, 4) is None


@pytest.mark.parametrize("command", ["eval", "scale"])
def test_the_cli_refuses_parallel_on_a_local_model_before_loading_anything(command, tmp_path, capsys):
    code = cli.main([command, "-m", "smollm2-135m", "--parallel", "3", "--output", str(tmp_path / "out"),
                     "--no-log"])
    assert code == 2
    err = capsys.readouterr().err
    assert "3 requests at once go to a served model only" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before any file was made


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_a_parallel_out_of_bounds_is_one_sentence(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["eval", "--parallel", value])
    assert exit_.value.code == 2 and "--parallel" in capsys.readouterr().err


# -- against a real server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(smollm2_path, tmp_path_factory):
    from llama_server import LlamaServer

    # llama-cpp-python's server cuts a streaming reply when another request comes unless told not
    # to (tests/engines/test_remote_engine.py shows the cut is caught); told so, it serves in turn.
    served = LlamaServer(smollm2_path, "smollm2", tmp_path_factory.mktemp("server") / "server.log",
                         extra=("--interrupt_requests", "False"))
    yield served
    served.kill()


def windows(db) -> list[tuple[datetime, datetime]]:
    with SessionLog.open(db) as log:
        runs = [log.get_run(r.id) for r in log.list_runs()]
    return [(datetime.fromisoformat(r.started_at), datetime.fromisoformat(r.started_at) + timedelta(seconds=r.total_s))
            for r in runs]


@pytest.mark.model
def test_an_eval_asks_a_served_model_several_at_once_and_keeps_every_sample(server, tmp_path, capsys):
    db, out = tmp_path / "log.db", tmp_path / "eval"
    code = cli.main(["eval", "-m", server.spec_name, "--parallel", "2", "--policies", "direct,cascade",
                     "--limit", "3", "--max-tokens", "24", "--output", str(out), "--db", str(db)])
    assert code == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert "2 requests at once" in said
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted((s["problem_id"], s["policy"]) for s in samples) == sorted(
        (p, policy) for p in {s["problem_id"] for s in samples} for policy in ("direct", "cascade"))
    assert len(samples) == 6 and {s["status"] for s in samples} == {"ok"}
    summary = json.loads((out / "summary.json").read_text())
    assert [s["policy"] for s in summary] == ["direct", "cascade"] and all(s["n"] == 3 for s in summary)
    spans = windows(db)
    assert len(spans) == sum(s["n_generations"] for s in samples)  # every request in the log, complete
    assert any(overlapped([a], [b]) for i, a in enumerate(spans) for b in spans[i + 1:])  # at once


@pytest.mark.model
def test_a_sweep_on_a_served_model_runs_at_once_and_resumes(server, tmp_path, capsys):
    out = tmp_path / "scale"
    args = ["scale", "-m", server.spec_name, "--parallel", "3", "--limit", "2", "--budgets", "0,16",
            "--k", "1,2", "--answer-tokens", "16", "--output", str(out), "--no-log"]
    assert cli.main(args) == 0, capsys.readouterr().err
    first = (out / "samples.jsonl").read_text().splitlines()
    assert len(first) == 2 * (2 + 2)  # two budgets and two shared samples per problem
    assert {json.loads(line)["status"] for line in first} == {"ok"}
    assert cli.main(args) == 0
    said = capsys.readouterr().out
    assert "resuming: 8 generations" in said and "0 generated now" in said
    assert (out / "samples.jsonl").read_text().splitlines() == first
