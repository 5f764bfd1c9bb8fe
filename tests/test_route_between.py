"""Auto across two panes: the fast model here answers directly, or the slow one (often on a server)
thinks, and the choice says what each side is expected to cost, from that model's runs in the log.

The choice and its words on plain figures; the expectations from a log a stand-in session wrote;
then `fastslow compare --route-between` and `fastslow route --between` with the bundled SmolLM2
here and the same model behind llama-cpp-python's server, nothing mocked."""

from __future__ import annotations

import json
import statistics

import pytest
from standin_engine import Script, StandinEngine, registered

from app import cli
from app.engines.types import GenerationRequest, ModelSpec
from app.expected_cost import Expected, expected_cost, model_key
from app.route_between import route_between
from app.session import Session
from app.store import SessionLog

SUM = "What is 17*23 + 5? Then subtract 12 and double it."
HELLO = "Hello there"


def test_a_question_that_needs_thought_goes_to_the_slow_pane_with_both_costs_said():
    fast = Expected("smollm2-135m", "here", False, n_runs=12, time_s=0.42, energy_j=3.04, energy_kind="measured")
    slow = Expected("qwen3-8b", "at gpu-box:8000", True, n_runs=4, time_s=6.2, energy_j=2.1, server_measured=False,
                    energy_kind="estimated")
    chosen = route_between(SUM, fast, slow, fast_pane=0, slow_pane=1, max_tokens=1024)
    assert (chosen.route, chosen.pane) == ("think", 1) and chosen.budget is not None
    assert chosen.banner().startswith(f"Thinking on qwen3-8b at gpu-box:8000 (budget {chosen.budget} tokens): ")
    assert chosen.banner().endswith(
        "Expected: ~6.2 s, ~2.1 J estimated here (the server's energy not measured) (median of 4 thinking runs); "
        "directly on smollm2-135m here: ~420 ms, ~3.0 J measured (median of 12 direct runs).")
    assert chosen.reasons[-1] == (
        "sent to qwen3-8b at gpu-box:8000 to think (~6.2 s, ~2.1 J estimated here (the server's energy not measured) "
        "(median of 4 thinking runs)); smollm2-135m here directly: ~420 ms, ~3.0 J measured (median of 12 direct runs)")
    said = route_between(HELLO, fast, slow)
    assert (said.route, said.pane, said.budget) == ("direct", 0, None)
    assert said.banner().startswith("Directly on smollm2-135m here: small talk")


def test_a_model_with_no_runs_of_a_kind_says_so():
    assert Expected("m", "here", True).words() == "not known: no thinking run of it in the log yet"
    assert Expected("m", "here", False, n_runs=1, time_s=2.5).words() == "~2.5 s (median of 1 direct run)"


def test_a_served_model_is_keyed_by_its_server_so_one_id_on_two_servers_is_two_models():
    a = ModelSpec(path="http://box-a:8000/v1/", name="qwen3-8b", engine="remote")
    b = ModelSpec(path="http://box-b:8000/v1", name="qwen3-8b", engine="remote")
    assert model_key(a) == ("qwen3-8b", "http://box-a:8000/v1") != model_key(b)


@pytest.fixture
def spec(monkeypatch):
    return registered(monkeypatch, thinking="think-tags")


def test_the_expectation_is_the_median_of_the_models_own_runs_of_that_kind(spec, tmp_path):
    db = tmp_path / "log.db"
    direct = Script(tokens=("It", " is", " 4", "."), step_s=0.01)
    thought = Script(tokens=("<think>", "two", " and", " two", "</think>", "4"), step_s=0.03)
    with SessionLog.open(db) as log:
        for script, n in ((direct, 3), (thought, 2)):
            engines = iter([StandinEngine(script)])
            with Session([spec], make_engine=lambda: next(engines), log=log) as session:
                session.load()
                for _ in range(n):
                    session.compare(GenerationRequest.from_prompt("2+2?", max_tokens=16))
    with SessionLog.open(db, read_only=True) as log:
        runs = log.list_runs()
        quick, slow = expected_cost(log, spec, thinking=False), expected_cost(log, spec, thinking=True)
        other = expected_cost(log, ModelSpec(path="elsewhere", name="stand-in", engine="stand-in"), thinking=False)
    assert (quick.n_runs, slow.n_runs, other.n_runs) == (3, 2, 0)
    assert quick.time_s == statistics.median(r.total_s for r in runs if r.n_thinking_tokens == 0)
    assert slow.time_s == statistics.median(r.total_s for r in runs if r.n_thinking_tokens > 0) > quick.time_s


@pytest.mark.parametrize("argv, said", [
    (["-m", "a", "-m", "b", "-m", "c"], "--route-between routes between two models, -m FAST -m SLOW, not 3"),
    (["-m", "a", "-m", "b", "--auto"], "--route-between decides thinking itself"),
    (["-m", "a", "-m", "b", "--think"], "--route-between decides thinking itself"),
])
def test_route_between_that_cannot_be_done_is_one_sentence(argv, said, capsys):
    assert cli.main(["compare", "--route-between", *argv, "--no-log", SUM]) == 2
    assert said in capsys.readouterr().err


# -- a model here and a model on a server ------------------------------------------------------


@pytest.fixture(scope="module")
def server(smollm2_path, tmp_path_factory):
    from llama_server import LlamaServer

    served = LlamaServer(smollm2_path, "smollm2", tmp_path_factory.mktemp("server") / "server.log")
    yield served
    served.kill()


@pytest.mark.model
def test_route_between_a_model_here_and_one_on_a_server(server, tmp_path, capsys):
    db = str(tmp_path / "log.db")
    pair = ["-m", "smollm2-135m", "-m", server.spec_name]
    where = f"127.0.0.1:{server.port}"

    assert cli.main(["compare", "--route-between", *pair, "--max-tokens", "48", "--db", db, HELLO]) == 0
    said = capsys.readouterr().out
    assert "router: Directly on smollm2-135m here: small talk" in said
    assert f"thinking on smollm2 at {where}: not known: no thinking run of it in the log yet." in said

    assert cli.main(["compare", "--route-between", *pair, "--max-tokens", "96", "--db", db, SUM]) == 0
    said = capsys.readouterr().out
    assert f"router: Thinking on smollm2 at {where} (budget" in said
    assert "directly on smollm2-135m here: ~" in said and "(median of 1 direct run)" in said

    with SessionLog.open(db, read_only=True) as log:
        runs = list(reversed(log.list_runs()))
    assert [(r.model, r.route) for r in runs] == [("smollm2-135m", "direct"), ("smollm2", "think")]  # one each
    assert runs[1].n_thinking_tokens > 0

    assert cli.main(["route", "--between", "smollm2-135m", server.spec_name, "--max-tokens", "96", "--db", db,
                     "--json", SUM]) == 0
    chosen = json.loads(capsys.readouterr().out)
    assert (chosen["route"], chosen["pane"]) == ("think", 1)
    assert chosen["slow"]["n_runs"] == 1 and chosen["slow"]["time_s"] == pytest.approx(runs[1].total_s)
    assert chosen["slow"]["server_measured"] is False  # no GPU metrics beside this server
    assert chosen["fast"]["n_runs"] == 1 and chosen["fast"]["energy_j"] == pytest.approx(runs[0].energy_j)
    assert chosen["fast"]["energy_kind"] == ("measured" if runs[0].energy_source.startswith("measured") else "estimated")
