"""k samples of one prompt decoded together, on the bundled SmolLM2 in llama.cpp: each sample is a
proper sample (greedy gives the one-sequence path's tokens; a seed gives the same k samples again),
each keeps its own limits, a cancel stops them all, and k is held to what fits the context."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from app.engines.llama_batch import kv_layout
from app.engines.pipeline import samples_that_fit
from app.engines.types import Finished, GenerationRequest, PromptDone, Sampling, Started, Token

pytestmark = pytest.mark.model

STORY = "Write a short story about a robot who learns to paint."


def ask(prompt: str = STORY, **kwargs) -> GenerationRequest:
    return GenerationRequest.from_prompt(prompt, cache_prompt=False, **kwargs)


def by_sample(events) -> tuple[dict[int, list[Token]], dict[int, Finished]]:
    tokens: dict[int, list[Token]] = {}
    ends: dict[int, Finished] = {}
    for event in events:
        if isinstance(event, Token):
            tokens.setdefault(event.sample, []).append(event)
        elif isinstance(event, Finished):
            ends[event.sample] = event
    return tokens, ends


NEAR_TIE = 0.25  # logits (natural log units): a batched kernel's rounding can swap two tokens this close


def top_two_gap(engine, prompt: list[int], prefix: list[int]) -> float:
    """How far apart the one-sequence path's two likeliest next tokens are after prompt + prefix."""
    import llama_cpp
    import numpy as np

    llm = engine.backend._llm
    llm.reset()
    llm.eval(prompt + prefix)
    pointer = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    top = np.sort(np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).astype(np.float64))[-2:]
    return float(top[1] - top[0])


def test_one_sample_through_the_batched_path_is_the_one_sequence_paths_reply(smollm2_engine, monkeypatch):
    # With the loaded context's own attention kernel and one sequence, the batched path computes what
    # the one-sample path computes: its positions, logits and sampling are right, token for token.
    import app.engines.llama_batch as llama_batch
    import app.engines.pipeline as pipeline

    greedy = ask(max_tokens=64, sampling=Sampling(temperature=0.0))
    single = [e.token_id for e in smollm2_engine.generate(greedy) if isinstance(e, Token)]
    monkeypatch.setattr(pipeline, "BATCH_FROM", 1)
    monkeypatch.setattr(llama_batch, "FLASH_ATTENTION", None)
    batched = [e.token_id for e in smollm2_engine.generate(greedy) if isinstance(e, Token)]
    assert batched == single


@pytest.mark.parametrize("k", [4, 8])
@pytest.mark.parametrize("max_tokens, unified", [(64, False), (24, True)])  # a KV buffer each; one shared
def test_greedy_samples_are_the_one_sequence_reply_up_to_a_near_tie(smollm2_engine, k, max_tokens, unified):
    # Decoding k sequences in one batch runs the matrix products over k rows at once, and attention
    # with flash attention, whose rounding differs from one row's by a few hundredths of a logit.
    # Each greedy sample is the one-sequence path's reply token for token until, at most, a step
    # where that path's two likeliest tokens were a near tie; measured here, that is where every
    # divergence happened (gaps 0.007 to 0.18).
    request = ask(max_tokens=max_tokens, sampling=Sampling(temperature=0.0))
    prompt, _ = smollm2_engine._prompt(request)
    assert kv_layout(k, len(prompt), max_tokens).unified is unified
    single = [e.token_id for e in smollm2_engine.generate(request) if isinstance(e, Token)]
    events = list(smollm2_engine.generate(replace(request, n_samples=k)))
    tokens, ends = by_sample(events)
    assert sorted(ends) == list(range(k)) and {e.finish_reason for e in ends.values()} == {"length"}
    for i in range(k):
        mine = [t.token_id for t in tokens[i]]
        split = next((j for j, (a, b) in enumerate(zip(single, mine)) if a != b), None)
        if split is not None:
            assert split >= 8 and top_two_gap(smollm2_engine, prompt, single[:split]) < NEAR_TIE, f"sample {i}"
    # One start and one prompt evaluation for the k, then their tokens.
    assert [type(e) for e in events[:2]] == [Started, PromptDone]
    assert sum(isinstance(e, PromptDone) for e in events) == 1


def test_a_short_prompt_gets_a_kv_buffer_per_sample_and_a_long_one_is_shared():
    # A buffer each: every sequence attends over its own cells only (faster), the prompt copied k times.
    assert kv_layout(8, 40, 128) == kv_layout(8, 100, 128)  # each buffer rounded up to 256 cells
    assert kv_layout(8, 40, 128).unified is False and kv_layout(8, 40, 128).n_ctx == 8 * 256
    # A prompt longer than a reply is kept once: k copies of it would cost more than the k replies.
    long = kv_layout(8, 1500, 128)
    assert long.unified is True and long.n_ctx == 2560 and long.n_ctx >= 1500 + 8 * 129
    assert kv_layout(8, 1500, 128).n_ctx < 8 * (1500 + 129)


def test_a_seed_gives_the_same_k_samples_again_and_they_differ_from_each_other(smollm2_engine):
    request = ask(max_tokens=32, sampling=Sampling(temperature=0.9), n_samples=4, seed=7)
    first = by_sample(smollm2_engine.generate(request))[0]
    again = by_sample(smollm2_engine.generate(request))[0]
    texts = ["".join(t.text for t in first[i]) for i in range(4)]
    assert texts == ["".join(t.text for t in again[i]) for i in range(4)]
    assert len(set(texts)) >= 3  # sampled with seeds 7, 8, 9, 10: not four copies
    other = by_sample(smollm2_engine.generate(replace(request, seed=8)))[0]
    assert "".join(t.text for t in other[0]) != texts[0]


def test_each_sample_keeps_its_own_limits(smollm2_engine):
    # A scaffolded thought with a budget of 12: every sample's thought is closed at 12 tokens (the
    # close message put into that sample alone), and each ends on its own.
    from app.reasoning.modes import thinking_request

    request = thinking_request(ask("What is 17 times 3? Think first.", max_tokens=60, thinking=True,
                                   thinking_budget=12, sampling=Sampling(temperature=0.8), n_samples=3), "none")
    tokens, ends = by_sample(smollm2_engine.generate(request))
    assert sorted(ends) == [0, 1, 2]
    held = 0
    for i in range(3):
        generated = [t for t in tokens[i] if not t.injected]
        injected = [t for t in tokens[i] if t.injected]
        assert ends[i].n_generated == len(generated) <= 60
        if not ends[i].thinking_budget_hit:  # it ended its turn itself, inside its budget
            assert not injected and ends[i].finish_reason == "stop" and len(generated) < 12, f"sample {i}"
            continue
        held += 1
        first_injected = tokens[i].index(injected[0])
        assert len([t for t in tokens[i][:first_injected] if not t.injected]) == 12, f"sample {i}"
    assert held >= 1


def test_a_stop_string_ends_only_its_own_sample(smollm2_engine):
    request = ask("Count from 1 to 20, separated by commas.", max_tokens=64, sampling=Sampling(temperature=0.0),
                  n_samples=2, stop=("7",))
    tokens, ends = by_sample(smollm2_engine.generate(request))
    for i in range(2):
        assert ends[i].finish_reason == "stop"
        assert "7" not in "".join(t.text for t in tokens[i])


def test_a_cancel_stops_every_sample_within_a_step(smollm2_engine):
    request = ask(max_tokens=400, sampling=Sampling(temperature=0.8), n_samples=4)
    events, seen = smollm2_engine.generate(request), []
    for event in events:
        seen.append(event)
        if isinstance(event, Token) and sum(isinstance(e, Token) for e in seen) >= 8:
            smollm2_engine.cancel()
            t0 = time.perf_counter()
            break
    rest = list(events)
    took = time.perf_counter() - t0
    tokens, ends = by_sample(seen + rest)
    assert sorted(ends) == [0, 1, 2, 3] and {e.finish_reason for e in ends.values()} == {"cancelled"}
    assert took < 2.0
    assert max(len(v) for v in tokens.values()) < 100


def test_k_is_held_to_what_fits_the_models_context_with_the_reason():
    assert samples_that_fit(4, 100, 256, 8192) == (4, "")
    fits, why = samples_that_fit(8, 200, 1000, 8192)
    assert fits == 7
    assert why == ("7 of the 8 samples asked for: 8 replies of 1000 tokens beside the 200-token prompt do not "
                   "fit the model's 8192-token context")
    assert samples_that_fit(3, 8000, 500, 8192)[0] == 1  # at least the one


def ends_when_cancelled_at_once(engine, request: GenerationRequest) -> dict[int, Finished]:
    """Each sample's end, the request cancelled at its first token: how many ran, and what each said."""
    events, seen = engine.generate(request), []
    for event in events:
        seen.append(event)
        if isinstance(event, Token):
            engine.cancel()
            break
    return by_sample(seen + list(events))[1]


def test_more_samples_than_fit_run_as_many_as_fit_and_each_says_so(smollm2_engine):
    # SmolLM2 was trained on 8192 tokens; this engine was loaded with 2048, so max new is ~2000 a
    # sample: 5 of them do not fit, 4 do. Cancelled at once: the point is how many ran, and the note.
    ends = ends_when_cancelled_at_once(smollm2_engine, ask(max_tokens=2000, n_samples=5,
                                                           sampling=Sampling(temperature=0.8)))
    assert sorted(ends) == [0, 1, 2, 3]
    assert all(e.samples_note.startswith("4 of the 5 samples asked for") for e in ends.values())


def test_k_is_held_to_the_memory_free_for_their_kv_cache(smollm2_engine, monkeypatch):
    from types import SimpleNamespace

    import app.engines.llama_engine as llama_engine

    backend = smollm2_engine.backend
    assert backend.samples_that_fit_memory(4, 50, 256) == (4, "")  # this machine has room for four
    monkeypatch.setattr(llama_engine.psutil, "virtual_memory", lambda: SimpleNamespace(available=40 << 20))
    fits, why = backend.samples_that_fit_memory(16, 50, 2000)
    assert 1 <= fits < 16
    assert why.startswith(f"{fits} of the 16 samples asked for: 16 samples' KV cache and buffers (")
    assert why.endswith("would not fit the 40 MiB of this machine's memory free")
    # And a request for them runs as many as fit, each saying why (cancelled at once: only the count matters).
    ends = ends_when_cancelled_at_once(smollm2_engine, ask(max_tokens=400, n_samples=16,
                                                           sampling=Sampling(temperature=0.8)))
    assert 1 <= len(ends) < 16
    notes = {e.samples_note for e in ends.values()}
    assert len(notes) == 1 and notes.pop().startswith(f"{len(ends)} of the 16 samples asked for: 16 samples' KV cache")
