"""A served model against a real OpenAI-compatible server: llama-cpp-python's own server on 127.0.0.1
serving the bundled SmolLM2, started once for the module. Nothing of the protocol is mocked: the
engine streams through its worker, is cancelled mid-reply, loses its server mid-run, and sits beside
a local pane in fair and live mode through the Session, as the app runs it."""

from __future__ import annotations

import time

import pytest

from llama_server import LlamaServer, free_port, silent_server

from app.catalog import resolve
from app.engines.client import EngineClient
from app.engines.remote_engine import RemoteEngine
from app.engines.types import ANSWER, THINKING, Failed, Finished, GenerationRequest, Sampling, Started, Token, now
from app.session import Session

pytestmark = pytest.mark.model

GREEDY = Sampling(temperature=0.0)
# Holds the model to "<think>…</think>answer", so a real server streams real tags, split across its
# tokens ("<", "t", "hi", "n", "k", ">"), as a thinking model's would arrive.
THINKING_GRAMMAR = 'root ::= "<think>" [a-z ]{12,40} "</think>" [A-Za-z0-9 ]{4,30}'


@pytest.fixture(scope="module")
def server(smollm2_path, tmp_path_factory):
    served = LlamaServer(smollm2_path, "smollm2", tmp_path_factory.mktemp("server") / "server.log")
    yield served
    served.kill()


@pytest.fixture(scope="module")
def remote_spec(server):
    return resolve(server.spec_name)


def test_a_served_model_streams_through_its_worker(remote_spec, server):
    with EngineClient() as client:
        info = client.load(remote_spec)
        events = list(client.generate(GenerationRequest.from_prompt("Name three colours.", max_tokens=16,
                                                                    sampling=GREEDY)))
    assert (info.engine, info.name, info.backend_used) == ("remote", "smollm2", "remote")
    assert info.placement == f"remote · 127.0.0.1:{server.port}"
    assert "round trip" in info.offload_note and "no thinking budget" in info.offload_note
    tokens = [e for e in events if isinstance(e, Token)]
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    assert events[-1].finish_reason == "length" and len(tokens) == 16
    assert all(a.t <= b.t for a, b in zip(tokens, tokens[1:]))  # stamped on arrival, in order
    assert "".join(p.text for t in tokens for p in t.pieces).strip()


def test_the_thought_is_split_from_the_tags_the_server_streams(remote_spec):
    from dataclasses import replace

    engine = RemoteEngine(extra_body={"grammar": THINKING_GRAMMAR})
    engine.load(replace(remote_spec, thinking="think-tags"))  # SmolLM2's id alone says it does not think
    events = list(engine.generate(GenerationRequest.from_prompt("What is 2 plus 2?", max_tokens=80, sampling=GREEDY)))
    engine.close()
    pieces = [p for e in events if isinstance(e, (Token, Finished)) for p in e.pieces]
    thought = "".join(p.text for p in pieces if p.channel == THINKING)
    answer = "".join(p.text for p in pieces if p.channel == ANSWER)
    raw = "".join(e.text for e in events if isinstance(e, Token))
    assert raw.startswith("<think>") and "</think>" in raw
    assert thought.strip() and answer.strip() and "<" not in thought + answer  # no half tag is ever shown
    assert raw.index("</think>") < len(raw) - len(answer)
    assert not events[-1].thinking_unclosed


def test_a_cancel_mid_stream_ends_the_run_within_100_ms(remote_spec, server):
    with EngineClient() as client:
        client.load(remote_spec)
        events = client.generate(GenerationRequest.from_prompt("Write a long story about the sea.", max_tokens=400))
        seen = 0
        for event in events:
            if isinstance(event, Token):
                seen += 1
                if seen == 5:
                    t_cancel = now()
                    client.cancel()
                    break
        last = list(events)[-1]
        waited = now() - t_cancel
        assert isinstance(last, Finished) and last.finish_reason == "cancelled"
        assert waited < 0.1, f"the cancel took {waited * 1000:.0f} ms"
        # The connection was closed, not left generating: the server saw its client go.
        assert server.said("Disconnected from client")
        again = list(client.generate(GenerationRequest.from_prompt("Hi", max_tokens=4)))
        assert isinstance(again[-1], Finished) and again[-1].finish_reason == "length"


def test_a_served_model_that_cannot_think_is_scaffolded_in_a_thinking_pane(remote_spec):
    from app.reasoning.modes import thinking_request

    with Session([remote_spec]) as session:
        session.load()
        assert session.panes[0].thinking_style == "none"  # "smollm2": no thinking family in its id
        plain = GenerationRequest.from_prompt("What is 12 times 3? Answer briefly.", max_tokens=160, sampling=GREEDY)
        [run] = session.compare(thinking_request(plain, "think-tags"))  # as the window asks a Thinking pane
    assert run.status == "ok" and run.strategy == "scaffold"  # prompted to reason first, as a local model is
    assert run.n_thinking_tokens + run.n_answer_tokens == run.n_generated


def test_a_thinking_budget_the_server_cannot_hold_is_said_with_the_run_and_stored(remote_spec, tmp_path):
    from app.store import SessionLog

    request = GenerationRequest.from_prompt("Why is the sky blue?", max_tokens=24, sampling=GREEDY, thinking=True,
                                            thinking_budget=16)
    log = SessionLog.open(tmp_path / "log.db")
    with Session([remote_spec], log=log) as session:
        session.load()
        [run] = session.compare(request)
    stored = log.run_record(log.list_runs()[0].id)["run"]
    log.close()
    said = "the server cannot hold a thinking budget (16 tokens): max tokens (24) caps only the whole reply"
    assert run.status == "ok" and run.thought_note.startswith(said)
    assert stored["thought_note"] == run.thought_note  # what the pane shows is what the log keeps


@pytest.mark.parametrize("mode", ["fair", "live"])
def test_a_local_and_a_remote_pane_side_by_side(smollm2_spec, remote_spec, server, mode):
    request = GenerationRequest.from_prompt("Why is the sky blue?", max_tokens=24, sampling=GREEDY)
    with Session([smollm2_spec, remote_spec], mode=mode, cores=2, tdp_w=15.0) as session:
        session.load()
        local, remote = session.compare(request)
    assert local.status == remote.status == "ok", (local.error, remote.error)
    assert local.engine == "llama.cpp" and local.placement == "CPU · 2 threads"  # live: the served pane takes no core
    assert remote.engine == "remote" and remote.placement == f"remote · 127.0.0.1:{server.port}"
    assert remote.n_generated == 24 and remote.ttft_s > 0 and remote.decode_tps > 0
    assert remote.mode == mode and remote.n_threads == 0  # none of this machine's threads decode it
    assert remote.thought_note == "" and local.thought_note == ""  # no budget asked: nothing to say
    # This machine's share is priced (the TDP estimate at least), and the server's is said to be missing.
    assert remote.energy_j is not None and remote.energy.base_source == local.energy.base_source
    assert any(n.startswith("not measured: remote") for n in remote.energy.notes)
    assert not any("not measured: remote" in n for n in local.energy.notes)


def test_a_server_that_dies_mid_run_fails_its_pane_only(smollm2_spec, smollm2_path, tmp_path):
    doomed = LlamaServer(smollm2_path, "smollm2", tmp_path / "doomed.log")
    try:
        request = GenerationRequest.from_prompt("Write a long story about a dragon.", max_tokens=300)
        with Session([smollm2_spec, resolve(doomed.spec_name)], mode="live", cores=2) as session:
            session.load()
            short = GenerationRequest.from_prompt("Write a long story about a dragon.", max_tokens=48)
            results = {}
            for update in session.stream([short, request]):
                if update.pane == 1 and isinstance(update.event, Token) and doomed.process.poll() is None:
                    doomed.process.kill()
                if update.closing:
                    results[update.pane] = update.result
    finally:
        doomed.kill()
    local, remote = results[0], results[1]
    assert local.status == "ok" and local.n_generated == 48
    assert remote.status == "failed" and remote.error_kind == "server_lost", remote.error
    assert remote.error.startswith(f"the server at {doomed.url} closed the connection mid-reply (after ")


def test_a_wrong_url_fails_its_pane_at_load_with_one_sentence(smollm2_spec):
    nowhere = resolve(f"remote:http://127.0.0.1:{free_port()}/v1#smollm2")
    badly_typed = resolve("remote:htp://127.0.0.1:8080/v1#smollm2")
    with Session([nowhere, badly_typed, smollm2_spec]) as session:
        session.load()
        refused, shapeless, local = session.compare(GenerationRequest.from_prompt("Hi", max_tokens=4))
        assert session.panes[1].client is None  # the URL's shape is checked before any worker starts
    assert refused.status == "failed" and refused.error_kind == "unreachable"
    assert "(connection refused): is the server running" in refused.error
    assert shapeless.error_kind == "bad_url" and "must start with http:// or https://" in shapeless.error
    assert local.status == "ok"


def test_a_silent_server_times_out_in_the_worker_with_one_sentence(monkeypatch):
    monkeypatch.setenv("FASTSLOW_REMOTE_TIMEOUT_S", "1")  # the worker inherits it
    with silent_server() as url:
        with Session([resolve(f"remote:{url}#m")]) as session:
            session.load()
            error = session.panes[0].load_error
    assert error is not None and error.kind == "timeout"
    assert str(error) == (f"the server at {url} sent nothing for 1 s: it may be overloaded or still loading the "
                          "model; try again, or allow it longer with FASTSLOW_REMOTE_TIMEOUT_S")


def test_a_key_the_real_server_refuses_and_the_one_it_takes(smollm2_path, tmp_path, monkeypatch):
    keyed = LlamaServer(smollm2_path, "smollm2", tmp_path / "keyed.log", api_key="sk-right")
    try:
        monkeypatch.setenv("FASTSLOW_API_KEY", "sk-wrong")
        with pytest.raises(Exception) as caught:
            RemoteEngine().load(resolve(keyed.spec_name))
        assert getattr(caught.value, "kind", "") == "refused_key" and "HTTP 401" in str(caught.value)
        assert "sk-wrong" not in str(caught.value)
        monkeypatch.setenv("FASTSLOW_API_KEY", "sk-right")
        engine = RemoteEngine()
        info = engine.load(resolve(keyed.spec_name))
        assert "sk-right" not in repr(info)  # what the pane, the record and the log are made from
        events = list(engine.generate(GenerationRequest.from_prompt("Hi", max_tokens=4)))
        assert isinstance(events[-1], Finished) and events[-1].n_generated == 4
    finally:
        keyed.kill()


def test_a_request_the_server_fails_on_is_one_sentence(remote_spec, server):
    engine = RemoteEngine()
    engine.load(remote_spec)
    events = list(engine.generate(GenerationRequest.from_prompt("word " * 2200, max_tokens=4)))  # past its 2048
    assert isinstance(events[-1], Failed) and events[-1].kind == "server_lost"
    assert events[-1].message.startswith(f"the server at {server.url} closed the connection before its first token")
    again = list(engine.generate(GenerationRequest.from_prompt("Hi", max_tokens=4)))  # the server is still there
    assert isinstance(again[-1], Finished)


def test_a_reply_the_server_cuts_for_another_request_is_failed_not_finished(remote_spec, server):
    # llama-cpp-python's server (as started here, with its defaults) ends a streaming reply with
    # [DONE] and no finish reason when another request arrives: a short answer that looks whole.
    # The engine fails it with the reason and keeps what came.
    first, second = RemoteEngine(), RemoteEngine()
    first.load(remote_spec)
    second.load(remote_spec)
    events = first.generate(GenerationRequest.from_prompt("Count from one to fifty in words.", max_tokens=400,
                                                          sampling=GREEDY))
    seen = []
    for event in events:
        seen.append(event)
        if isinstance(event, Token):
            break
    other = list(second.generate(GenerationRequest.from_prompt("Hi", max_tokens=4, sampling=GREEDY)))
    seen += list(events)
    assert isinstance(other[-1], Finished)
    assert isinstance(seen[-1], Failed) and seen[-1].kind == "server_lost"
    n = sum(isinstance(e, Token) for e in seen)
    assert 1 <= n < 400
    assert seen[-1].message == (f"the server at {server.url} ended the reply after {n} tokens without a finish "
                                "reason: it cut it short; llama-cpp-python's server cuts a reply whenever another "
                                "request arrives, unless started with --interrupt_requests False")


def test_k_samples_of_a_served_model_are_asked_one_after_another_each_named(remote_spec):
    engine = RemoteEngine()
    engine.load(remote_spec)
    events = list(engine.generate(GenerationRequest.from_prompt("Name a colour.", max_tokens=6, n_samples=3,
                                                                sampling=Sampling(temperature=0.9))))
    ends = [e for e in events if isinstance(e, Finished)]
    assert [e.sample for e in ends] == [0, 1, 2] and [e.final for e in ends] == [False, False, True]
    assert all(e.samples_note == "the server was asked for the samples one after another, a request each"
               for e in ends)
    assert sum(isinstance(e, Started) for e in events) == 1
    assert {e.sample for e in events if isinstance(e, Token)} == {0, 1, 2}
