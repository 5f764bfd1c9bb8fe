"""The worker process and its client: isolation, streaming over the pipe, cancel, crashes."""

import os
import signal
import threading
import time

import pytest

from app.engines.client import EngineClient
from app.engines.types import EngineError, Failed, Finished, GenerationRequest, ModelSpec, Token

LONG = GenerationRequest.from_prompt("Write a very long story about a lighthouse keeper.", max_tokens=2000)


def test_worker_streams_a_real_answer(smollm2_client):
    events = list(smollm2_client.generate(GenerationRequest.from_prompt("Say hello.", max_tokens=16)))
    tokens = [e for e in events if isinstance(e, Token)]
    assert tokens and isinstance(events[-1], Finished)
    assert events[-1].n_generated == len(tokens)
    assert smollm2_client.pid != os.getpid()


def test_worker_info_describes_the_load(smollm2_client):
    info = smollm2_client.info
    assert info.name == "smollm2-135m"
    assert info.backend_used == "CPU"
    assert info.load_s > 0


def test_cancel_mid_decode_stops_quickly(smollm2_client):
    stream = smollm2_client.generate(LONG)
    for event in stream:
        if isinstance(event, Token):
            break
    asked = time.perf_counter()
    smollm2_client.cancel()
    rest = list(stream)
    latency = time.perf_counter() - asked
    assert isinstance(rest[-1], Finished) and rest[-1].finish_reason == "cancelled"
    # The goal is 100 ms (the benchmark prints the real figure); this only catches a broken cancel
    # on a loaded, shared machine.
    assert latency < 1.0
    again = list(smollm2_client.generate(GenerationRequest.from_prompt("Hi", max_tokens=3)))
    assert again[-1].finish_reason == "length"


def test_abandoned_stream_is_drained_so_the_next_request_is_clean(smollm2_client):
    stream = smollm2_client.generate(LONG)
    next(stream), next(stream)
    stream.close()  # the caller walked away mid-generation
    events = list(smollm2_client.generate(GenerationRequest.from_prompt("Hi", max_tokens=3)))
    assert events[-1].finish_reason == "length" and events[-1].n_generated == 3


def test_sigkill_mid_generation_becomes_a_clear_failure(smollm2_spec):
    client = EngineClient()
    client.load(smollm2_spec)
    try:
        stream = client.generate(LONG)
        for event in stream:
            if isinstance(event, Token):
                break
        os.kill(client.pid, signal.SIGKILL)
        rest = list(stream)
        assert isinstance(rest[-1], Failed)
        assert rest[-1].kind == "worker_died"
        assert "SIGKILL" in rest[-1].message and "smollm2-135m" in rest[-1].message
    finally:
        client.close()  # closing a dead worker is fine


def test_bad_file_is_refused_in_the_parent_before_any_worker_starts(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("these are my notes, not a model\n")
    client = EngineClient()
    with pytest.raises(EngineError) as caught:
        client.load(ModelSpec(path=str(bad)))
    assert caught.value.kind == "bad_model_file"
    assert client.pid is None


def test_cancel_from_another_thread_during_a_long_prompt(smollm2_client):
    prompt = "The quick brown fox jumps over the lazy dog. " * 60
    threading.Timer(0.05, smollm2_client.cancel).start()
    events = list(smollm2_client.generate(GenerationRequest.from_prompt(prompt, max_tokens=4)))
    assert events[-1].finish_reason == "cancelled"
    assert not [e for e in events if isinstance(e, Token)]
