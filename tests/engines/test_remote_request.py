"""A served model without a model: its name, URL, key, request body, and every way a server can fail
to answer, each with its one sentence. The stand-ins here are real sockets on 127.0.0.1 (a server that
refuses the key, one that never answers, a port where nothing listens); the streaming itself is tested
against a real llama-cpp-python server in test_remote_engine.py."""

from __future__ import annotations

import threading
import time

import pytest

from llama_server import free_port, non_streaming_server, refusing_server, silent_server

from app.catalog import resolve
from app.engines.backends import make_engine, preflight
from app.engines.openai_stream import Timeouts, endpoint
from app.engines.remote_engine import RemoteEngine, RemoteSplit
from app.engines.remote_request import api_key, budget_note, chat_body, parse_remote_name, server_kind
from app.engines.types import (
    ANSWER,
    THINKING,
    EngineError,
    Failed,
    Finished,
    GenerationRequest,
    ModelInfo,
    ModelSpec,
    PromptDone,
    Started,
    Token,
)
from app.record import RunResult, remote_energy_note
from app.runs import RunRecorder

QUICK = Timeouts(connect_s=1.0, idle_s=0.5)


# --- the name a user types, and the URL's shape ------------------------------------------------------


def test_a_served_model_is_named_remote_url_hash_model():
    spec = resolve("remote:http://gpu-box:8000/v1#Qwen/Qwen3-8B")
    assert (spec.engine, spec.path, spec.name) == ("remote", "http://gpu-box:8000/v1", "Qwen/Qwen3-8B")
    assert preflight(spec).header is None  # no file to read, no fit estimate


def test_a_served_model_without_its_id_is_refused_with_the_syntax():
    with pytest.raises(EngineError, match=r"remote:<base URL>#<model id>"):
        resolve("remote:http://gpu-box:8000/v1")
    with pytest.raises(EngineError, match="remote:<base URL>"):
        parse_remote_name("remote:#model")


@pytest.mark.parametrize("url, says", [
    ("ftp://host/v1", "must start with http:// or https://"),
    ("http://host:99999/v1", "port that is not a number"),
    ("http:///v1", "names no host"),
    ("http://host/v1?x=1", "query or fragment"),
    ("http://me:secret@host/v1", "must not carry a user or password"),
    ("http://ho st/v1", "has spaces"),
])
def test_a_wrong_url_is_one_sentence_before_any_worker(url, says):
    spec = resolve(f"remote:{url}#m")
    with pytest.raises(EngineError, match=says) as caught:
        preflight(spec)
    assert caught.value.kind == "bad_url" and "secret" not in str(caught.value)


def test_a_served_model_without_a_model_id_is_refused_before_any_worker():
    with pytest.raises(EngineError, match=r"name the model the server at http://h:1/v1 serves"):
        preflight(ModelSpec(path="http://h:1/v1", engine="remote"))


def test_the_url_is_normalised_and_the_key_never_printed():
    ep = endpoint("http://Host:8000", api_key="sk-secret")
    assert (ep.url, ep.prefix, ep.where) == ("http://host:8000/v1", "/v1", "host:8000")
    assert "sk-secret" not in repr(ep)
    assert endpoint("https://example.org/api/v1/").url == "https://example.org:443/api/v1"
    assert endpoint("http://[::1]:8080/v1").url == "http://[::1]:8080/v1"


# --- the API key: the environment, else the OS keyring ---------------------------------------------


def test_the_key_comes_from_the_environment_then_the_keyring(monkeypatch):
    keyring = pytest.importorskip("keyring", reason="keyring comes with the remote and test extras")
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1
        kept = {("fastslow", "http://gpu-box:8000/v1"): "from-keyring"}

        def get_password(self, service, username):
            return self.kept.get((service, username))

        def set_password(self, service, username, password):
            self.kept[(service, username)] = password

        def delete_password(self, service, username):
            self.kept.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        monkeypatch.delenv("FASTSLOW_API_KEY", raising=False)
        assert api_key("http://gpu-box:8000/v1") == "from-keyring"
        assert api_key("http://other:8000/v1") is None  # keyed by the base URL
        monkeypatch.setenv("FASTSLOW_API_KEY", "from-env")
        assert api_key("http://gpu-box:8000/v1") == "from-env"
    finally:
        keyring.set_keyring(previous)


# --- what each server is asked -------------------------------------------------------------------


def test_the_thinking_switch_goes_the_way_each_server_takes_it():
    on = GenerationRequest.from_prompt("Hi", thinking=True, max_tokens=64)
    assert chat_body("vLLM", "Qwen/Qwen3-8B", on)["chat_template_kwargs"] == {"enable_thinking": True}
    assert chat_body("llama-server", "qwen3", on)["chat_template_kwargs"] == {"enable_thinking": True}
    ollama = chat_body("Ollama", "qwen3:8b", GenerationRequest.from_prompt("Hi", thinking=False))
    assert ollama["think"] is False
    oss = chat_body("vLLM", "openai/gpt-oss-20b", GenerationRequest.from_prompt("Hi", thinking=True, thinking_budget=512))
    assert oss["reasoning_effort"] == "low" and "chat_template_kwargs" not in oss
    plain = chat_body("vLLM", "m", GenerationRequest.from_prompt("Hi"))
    assert "chat_template_kwargs" not in plain and plain["stream"] and plain["max_tokens"] == 512


def test_a_budget_the_server_cannot_hold_is_said_plainly():
    request = GenerationRequest.from_prompt("Hi", thinking=True, thinking_budget=256, max_tokens=1024)
    assert "cannot hold a thinking budget (256 tokens)" in budget_note("qwen3", request)
    assert "max tokens (1024) caps only the whole reply" in budget_note("qwen3", request)
    assert "reasoning_effort=low" in budget_note("gpt-oss-20b", request)
    assert budget_note("qwen3", GenerationRequest.from_prompt("Hi")) == ""


def test_the_server_kind_is_read_from_its_model_list():
    assert server_kind({"data": [{"id": "m", "owned_by": "vllm"}]}) == "vLLM"
    assert server_kind({"data": [{"id": "m", "owned_by": "llamacpp"}]}) == "llama-server"
    assert server_kind({"data": []}) == "OpenAI-compatible server"
    assert server_kind("not json") == "OpenAI-compatible server"


# --- the thought, as servers label it ---------------------------------------------------------------


def test_reasoning_deltas_are_thought_and_content_the_answer():
    split = RemoteSplit("think-tags")
    first = split.token(1.0, "Two and two", "", None)
    second = split.token(1.1, " make four.", "", None)
    answer = split.token(1.2, "", "4", None)
    assert first.channel == second.channel == THINKING and first.pieces[0].channel == THINKING
    assert answer.channel == ANSWER and answer.pieces[0].text == "4"
    assert not split.finished(1.3, "stop", 3, 0.0).thinking_unclosed


def test_a_reply_that_ends_in_its_reasoning_is_unclosed():
    split = RemoteSplit("none")
    split.token(1.0, "hmm", "", None)
    assert split.finished(1.1, "length", 1, 0.0).thinking_unclosed


def test_a_prompt_counted_by_the_server_reaches_the_record():
    info = ModelInfo("m", "http://h:1/v1", "remote", "vLLM", 0, "", 0, 0, 0, "server", (), "remote", None, 0, 0, 0,
                     0.0, "vLLM", "think-tags", "h:1")
    recorder = RunRecorder(0, info, "fair", 10.0)
    for event in (Started(10.0, 0, 0), Token(10.2, "4", -1), PromptDone(10.3, 17, 5, None),
                  Finished(10.3, "stop", 1, 0.0)):
        recorder.feed(event)
    record = recorder.record()
    assert (record.n_prompt_tokens, record.n_prompt_evaluated, record.prompt_tps) == (17, 5, None)
    assert record.placement == "remote · h:1"
    # This machine's share, and the server's GPUs where their metrics are published.
    assert record.conditions.energy_domains == ("cpu", "dram", "server:h:1")


def test_the_energy_figure_says_the_server_side_is_not_measured():
    remote = RunResult.of(0, engine="remote", device="gpu-box:8000")
    assert remote_energy_note(remote.conditions).startswith("not measured: remote")
    assert "gpu-box:8000" in remote_energy_note(remote.conditions)
    assert remote_energy_note(RunResult.of(0, engine="llama.cpp").conditions) == ""


# --- a server that cannot be used: one sentence each -------------------------------------------------


def load(url: str, timeouts: Timeouts = QUICK, model: str = "m") -> RemoteEngine:
    engine = RemoteEngine(timeouts=timeouts)
    engine.load(resolve(f"remote:{url}#{model}"))
    return engine


def test_nothing_listening_is_one_sentence():
    with pytest.raises(EngineError, match=r"nothing answers at http://127\.0\.0\.1:\d+/v1 \(connection refused\)") as caught:
        load(f"http://127.0.0.1:{free_port()}/v1")
    assert caught.value.kind == "unreachable"


def test_a_host_that_does_not_exist_is_one_sentence():
    with pytest.raises(EngineError, match="cannot be found: check the URL"):
        load("http://no-such-host.invalid:8000/v1")


def test_a_refused_key_is_one_sentence(monkeypatch):
    monkeypatch.setenv("FASTSLOW_API_KEY", "sk-wrong")
    with refusing_server() as url:
        with pytest.raises(EngineError) as caught:
            load(url)
    assert caught.value.kind == "refused_key"
    assert str(caught.value) == (f"the server at {url} refused the API key (HTTP 401): store the right key with "
                                 f"`keyring set fastslow {url}` or set FASTSLOW_API_KEY")
    assert "sk-wrong" not in str(caught.value)


def test_a_server_that_never_answers_times_out_with_a_sentence():
    with silent_server() as url:
        t0 = time.monotonic()
        with pytest.raises(EngineError, match=r"sent nothing for 0\.5 s: .* FASTSLOW_REMOTE_TIMEOUT_S") as caught:
            load(url)
        assert time.monotonic() - t0 < 3
    assert caught.value.kind == "timeout"


def test_the_timeout_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("FASTSLOW_REMOTE_TIMEOUT_S", "2.5")
    assert Timeouts.from_env() == Timeouts(connect_s=2.5, idle_s=2.5)
    monkeypatch.setenv("FASTSLOW_REMOTE_TIMEOUT_S", "soon")
    assert Timeouts.from_env() == Timeouts()


def loaded_on(url: str, idle_s: float) -> RemoteEngine:
    """An engine that loaded (as if the server answered), pointed at `url` for its requests."""
    engine = RemoteEngine(timeouts=Timeouts(connect_s=1.0, idle_s=idle_s))
    engine._spec, engine._ep, engine._kind, engine._style = resolve(f"remote:{url}#m"), endpoint(url), "x", "think-tags"
    return engine


def test_a_request_the_server_never_answers_fails_with_a_sentence():
    with silent_server() as url:
        events = list(loaded_on(url, 0.4).generate(GenerationRequest.from_prompt("Hi")))
    assert isinstance(events[0], Started) and isinstance(events[-1], Failed)
    assert events[-1].kind == "timeout" and "sent nothing for 0.4 s" in events[-1].message


def test_a_cancel_while_the_server_is_silent_ends_the_run_within_100_ms():
    with silent_server() as url:
        engine = loaded_on(url, 30.0)
        events = engine.generate(GenerationRequest.from_prompt("Hi"))
        assert isinstance(next(events), Started)
        timer = threading.Timer(0.3, engine.cancel)
        timer.start()
        t_cancel = time.perf_counter() + 0.3
        last = list(events)[-1]
        waited = time.perf_counter() - t_cancel
    assert isinstance(last, Finished) and last.finish_reason == "cancelled"
    assert waited < 0.1, f"the cancel took {waited * 1000:.0f} ms"


def test_the_worker_builds_a_remote_engine_not_a_pipeline():
    assert isinstance(make_engine("remote"), RemoteEngine)


def test_the_servers_own_counts_and_timers_are_kept_beside_ours():
    from app.engines.remote_engine import _Counts

    llama_server = _Counts()  # llama-server's last chunk: its timers, the cached part of the prompt apart
    llama_server.read({"choices": [], "timings": {"prompt_n": 12, "cache_n": 30, "prompt_ms": 48.0,
                                                  "predicted_n": 64, "predicted_ms": 800.0}})
    done = llama_server.prompt_done(5.0)
    assert (done.n_prompt_tokens, done.n_prompt_evaluated, done.prompt_eval_s) == (42, 12, 0.048)
    assert llama_server.decode_s == 0.8
    vllm = _Counts()  # vLLM's usage chunk (stream_options.include_usage): counts, no timers
    vllm.read({"choices": [], "usage": {"prompt_tokens": 17, "completion_tokens": 9}})
    done = vllm.prompt_done(5.0)
    assert (done.n_prompt_tokens, done.n_prompt_evaluated, done.prompt_eval_s) == (17, 17, None)
    assert vllm.completion_tokens == 9 and vllm.decode_s is None
    assert _Counts().prompt_done(5.0) is None  # a server that counts nothing: no figure, not a guess


def test_a_server_that_will_not_stream_is_one_sentence():
    with non_streaming_server() as url:
        engine = load(url)
        events = list(engine.generate(GenerationRequest.from_prompt("Hi")))
    assert isinstance(events[-1], Failed) and events[-1].kind == "server_error"
    assert events[-1].message == (f"the server at {url} answered /v1/chat/completions without streaming "
                                  "(Content-Type: application/json): a pane needs a server that streams chat completions")


def test_live_mode_leaves_every_core_to_the_local_panes_beside_a_served_one(monkeypatch):
    from dataclasses import replace

    from standin_engine import Script, StandinEngine, registered

    from app.session import Session

    registered(monkeypatch)
    local = resolve("remote:http://127.0.0.1:9/v1#m")  # its URL's shape passes the preflight; a stand-in serves it
    scripts = [Script(), Script(), Script()]
    made = iter([StandinEngine(s) for s in scripts])
    specs = [replace(local, engine="stand-in", path="a"), replace(local, engine="stand-in", path="b"), local]
    with Session(specs, mode="live", cores=4, make_engine=lambda: next(made)) as session:
        session.load()
        session.compare(GenerationRequest.from_prompt("Hi"))
    assert [s.requests[0].n_threads for s in scripts[:2]] == [2, 2]  # two local panes: 4 cores split in two, not three


def test_a_served_models_thinking_style_is_guessed_from_its_id_where_the_server_hides_its_template():
    from app.engines.remote_request import guess_style

    assert guess_style("Qwen/Qwen3-8B") == guess_style("deepseek-r1:7b") == guess_style("QwQ-32B") == "think-tags"
    assert guess_style("openai/gpt-oss-20b") == "harmony"
    assert guess_style("smollm2") == guess_style("llama3.2:3b") == guess_style("gemma-3-4b-it") == "none"
