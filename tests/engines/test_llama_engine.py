"""The llama.cpp engine in this process, on the real bundled models."""

import threading
import time

import jinja2
import llama_cpp
import pytest

from app.engines.llama_engine import LlamaCppEngine
from app.engines.types import (
    Failed,
    Finished,
    GenerationRequest,
    Message,
    PromptDone,
    Sampling,
    Started,
    Token,
)

QUESTION = "What is the capital of France?"


def run(engine, request):
    return list(engine.generate(request))


def tokens_of(events):
    return [e for e in events if isinstance(e, Token)]


def test_events_arrive_in_order_with_monotonic_timestamps(smollm2_engine):
    events = run(smollm2_engine, GenerationRequest.from_prompt(QUESTION, max_tokens=24))
    kinds = [type(e) for e in events]
    assert kinds[:2] == [Started, PromptDone]
    assert kinds[-1] is Finished
    assert set(kinds[2:-1]) == {Token}
    stamps = [e.t for e in events]
    assert stamps == sorted(stamps)


def test_counts_come_from_the_models_own_tokenizer(smollm2_engine, smollm2_path, smollm2_vocab):
    events = run(smollm2_engine, GenerationRequest.from_prompt(QUESTION, max_tokens=32))
    started = events[0]
    # Render the GGUF's own template independently and count with a separate tokenizer instance.
    template = smollm2_vocab.metadata["tokenizer.chat_template"]
    rendered = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(template).render(
        messages=[{"role": "user", "content": QUESTION}], add_generation_prompt=True
    )
    expected = smollm2_vocab.tokenize(rendered.encode(), add_bos=False, special=True)
    assert started.n_prompt_tokens == len(expected)

    tokens = tokens_of(events)
    finished = events[-1]
    assert finished.n_generated == len(tokens) > 0
    text = "".join(t.text for t in tokens) + finished.text_tail
    assert text == smollm2_vocab.detokenize([t.token_id for t in tokens]).decode("utf-8", "replace")


def test_max_tokens_ends_with_length(smollm2_engine):
    events = run(smollm2_engine, GenerationRequest.from_prompt("Count from 1 to 100.", max_tokens=7))
    assert events[-1].finish_reason == "length"
    assert events[-1].n_generated == 7 == len(tokens_of(events))


def test_same_seed_same_text_at_nonzero_temperature(smollm2_engine):
    request = GenerationRequest.from_prompt(
        "Tell me a one-line joke.", max_tokens=20, sampling=Sampling(temperature=1.0), seed=7
    )
    first = "".join(t.text for t in tokens_of(run(smollm2_engine, request)))
    second = "".join(t.text for t in tokens_of(run(smollm2_engine, request)))
    assert first == second


def test_repeated_prompt_reuses_the_kv_cache_prefix(smollm2_engine):
    messages = (Message("system", "You are terse. " * 20), Message("user", QUESTION))
    request = GenerationRequest(messages=messages, max_tokens=4)
    cold = run(smollm2_engine, GenerationRequest(messages=(Message("user", "unrelated"),), max_tokens=2))
    assert cold[-1].finish_reason in ("length", "stop")
    first = [e for e in run(smollm2_engine, request) if isinstance(e, PromptDone)][0]
    second = [e for e in run(smollm2_engine, request) if isinstance(e, PromptDone)][0]
    assert first.n_prompt_evaluated > 0.8 * first.n_prompt_tokens  # only the template's opening was shared
    assert 0 < second.n_prompt_evaluated < second.n_prompt_tokens
    assert second.prompt_eval_s < first.prompt_eval_s


def test_prompt_longer_than_the_context_is_refused_and_the_engine_goes_on(smollm2_engine):
    events = run(smollm2_engine, GenerationRequest.from_prompt("word " * 5000, max_tokens=4))
    assert [type(e) for e in events] == [Failed]
    assert events[0].kind == "prompt_too_long"
    assert "2,048-token context" in events[0].message and "--ctx" in events[0].message
    after = run(smollm2_engine, GenerationRequest.from_prompt(QUESTION, max_tokens=4))
    assert after[-1].n_generated == 4


def test_empty_prompt_is_refused(smollm2_engine):
    events = run(smollm2_engine, GenerationRequest.from_prompt("   \n", max_tokens=4))
    assert [(type(e), e.kind) for e in events] == [(Failed, "empty_prompt")]


def test_cancel_interrupts_prompt_processing(smollm2_engine):
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 60  # ~600 tokens, ~2 s on 2 cores
    request = GenerationRequest.from_prompt(long_prompt, max_tokens=4)
    # Measure how long the full prompt takes, then cancel a fresh one 30 ms in.
    # (A different opening, so the cancelled prompt cannot reuse this one's KV cache.)
    full = run(smollm2_engine, GenerationRequest.from_prompt("Again. " + long_prompt, max_tokens=1))
    full_prompt_s = next(e for e in full if isinstance(e, PromptDone)).prompt_eval_s
    timer = threading.Timer(0.03, smollm2_engine.cancel)
    started = time.perf_counter()
    timer.start()
    events = run(smollm2_engine, request)
    elapsed = time.perf_counter() - started
    assert events[-1].finish_reason == "cancelled"
    assert not tokens_of(events)
    assert elapsed < full_prompt_s / 2, (elapsed, full_prompt_s)
    # The engine is clean afterwards: the next prompt runs in full.
    after = run(smollm2_engine, GenerationRequest.from_prompt(QUESTION, max_tokens=3))
    assert after[-1].finish_reason == "length"


def test_gemma_runs_on_the_catalog_template(gemma_spec):
    # The bundled Gemma 3 270M is the base model: it follows the turn format but not the question,
    # so this checks the machinery (template applied, one BOS, text streamed), not the answer.
    engine = LlamaCppEngine()
    info = engine.load(gemma_spec)
    try:
        assert info.chat_template_source == "catalog"
        assert info.architecture == "gemma3" and info.quantization == "Q4_K_M"
        tokens, opens_thinking = engine._prompt(GenerationRequest.from_prompt(QUESTION))
        assert not opens_thinking
        assert tokens.count(engine.backend._llm._model.token_bos()) == 1
        events = run(engine, GenerationRequest.from_prompt(QUESTION, max_tokens=12, sampling=Sampling(0.0)))
        assert events[0].n_prompt_tokens == len(tokens)
        assert "".join(t.text for t in tokens_of(events)).strip()
    finally:
        engine.close()


def test_load_reports_backend_threads_and_metadata(smollm2_engine_info):
    info = smollm2_engine_info
    assert info.architecture == "llama"
    assert info.quantization == "Q4_1"
    assert info.chat_template_source == "gguf"
    assert info.backend_used == "CPU" and "CPU" in info.backends_available
    assert info.n_gpu_layers_offloaded == 0
    assert info.n_threads >= 1 and info.n_layers == 30
    assert info.n_ctx == 2048 and info.n_ctx_train == 8192
    assert info.engine_version == llama_cpp.__version__


@pytest.mark.parametrize("content", ["日本の首都は？", "Emoji: 🦊🚀 — say them back."])
def test_multibyte_text_streams_without_broken_characters(smollm2_engine, content):
    events = run(smollm2_engine, GenerationRequest.from_prompt(content, max_tokens=24))
    text = "".join(t.text for t in tokens_of(events)) + events[-1].text_tail
    assert "\ufffd" not in text


def test_cache_prompt_off_evaluates_the_whole_prompt_again(smollm2_engine):
    request = GenerationRequest.from_prompt("Repeat after me: cache.", max_tokens=2)
    run(smollm2_engine, request)
    again = run(smollm2_engine, GenerationRequest.from_prompt("Repeat after me: cache.", max_tokens=2, cache_prompt=False))
    done = next(e for e in again if isinstance(e, PromptDone))
    assert done.n_prompt_evaluated == done.n_prompt_tokens


def test_extra_buffer_types_are_off_on_amx_cpus_and_the_environment_decides_first(monkeypatch):
    from app.engines.llama_engine import _extra_buffer_types_safe

    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    monkeypatch.delenv("FASTSLOW_LLAMA_EXTRA_BUFTS", raising=False)
    assert _extra_buffer_types_safe() == ("amx_int8" not in flags and "amx_tile" not in flags)
    monkeypatch.setenv("FASTSLOW_LLAMA_EXTRA_BUFTS", "1")
    assert _extra_buffer_types_safe() is True
    monkeypatch.setenv("FASTSLOW_LLAMA_EXTRA_BUFTS", "0")
    assert _extra_buffer_types_safe() is False


def test_asked_for_logprobs_each_token_carries_its_own(smollm2_engine):
    greedy = GenerationRequest.from_prompt(QUESTION, max_tokens=16, sampling=Sampling(temperature=0.0), logprobs=True)
    tokens = tokens_of(run(smollm2_engine, greedy))
    logprobs = [t.logprob for t in tokens]
    assert all(lp is not None and -50 < lp <= 0 for lp in logprobs)
    # Greedy picks the most likely token, so each is the largest probability of its step: at least
    # 1/vocab (-10.8 for SmolLM2's 49,152 tokens); on average far above that: not uniform noise.
    assert all(lp >= -10.81 for lp in logprobs) and sum(logprobs) / len(logprobs) > -3
    again = [t.logprob for t in tokens_of(run(smollm2_engine, greedy))]
    assert again == pytest.approx(logprobs, abs=1e-4)  # the same tokens, the same confidence
    plain = tokens_of(run(smollm2_engine, GenerationRequest.from_prompt(QUESTION, max_tokens=16,
                                                                        sampling=Sampling(temperature=0.0))))
    assert [t.logprob for t in plain] == [None] * len(plain)  # not asked, not paid for
    assert [t.token_id for t in plain] == [t.token_id for t in tokens]  # and the same tokens either way
