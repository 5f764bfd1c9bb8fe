"""The MLX engine against the llama.cpp engine: one conformance suite, the same real model.

The MLX model is built in a fixture from the bundled SmolLM2 GGUF (real weights, real tokenizer).
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest

pytest.importorskip("mlx_lm", reason="MLX is not installed here (pip install -e '.[mlx]')")

from app.engines.client import EngineClient  # noqa: E402
from app.engines.mlx_convert import check_mlx_folder  # noqa: E402
from app.engines.mlx_engine import mlx_unavailable  # noqa: E402
from app.engines.types import (  # noqa: E402
    EngineError, Failed, Finished, GenerationRequest, Message, PromptDone, Sampling, Started, Token,
)

QUESTION = "Name three primary colours."
GREEDY = Sampling(temperature=0.0)


@pytest.fixture(scope="module", params=["llama.cpp", "mlx"])
def engine(request, smollm2_spec, smollm2_mlx_path):
    """Each engine in its own worker process, as the app runs them."""
    spec = smollm2_spec if request.param == "llama.cpp" else replace(
        smollm2_spec, path=smollm2_mlx_path, engine="mlx", name="smollm2-135m-mlx")
    client = EngineClient()
    info = client.load(spec)
    yield request.param, client, info
    client.close()


def run(client, request):
    return list(client.generate(request))


def tokens_of(events):
    return [e for e in events if isinstance(e, Token)]


def test_the_converted_folder_is_a_complete_mlx_model(smollm2_mlx_path):
    config = check_mlx_folder(smollm2_mlx_path)
    assert (config["model_type"], config["num_hidden_layers"], config["num_attention_heads"]) == ("llama", 30, 9)
    assert mlx_unavailable() is None


def test_events_arrive_in_order_with_monotonic_stamps(engine):
    name, client, info = engine
    events = run(client, GenerationRequest.from_prompt(QUESTION, max_tokens=16, sampling=GREEDY))
    assert isinstance(events[0], Started) and isinstance(events[1], PromptDone) and isinstance(events[-1], Finished)
    stamps = [e.t for e in events]
    assert stamps == sorted(stamps)
    finished = events[-1]
    assert finished.n_generated == len(tokens_of(events)) <= 16 and finished.finish_reason in ("stop", "length")
    assert info.engine == name and info.n_layers == 30 and 100e6 < info.n_params < 200e6
    if name == "mlx":  # MLX counts its own buffers: the weights at least, and the KV cache
        assert finished.peak_memory_bytes > info.file_size
    else:  # llama.cpp keeps no such count; the worker's peak RSS comes from telemetry instead
        assert finished.peak_memory_bytes is None


def test_both_engines_count_the_same_prompt_tokens(engine):
    _, client, _ = engine
    started = run(client, GenerationRequest.from_prompt(QUESTION, max_tokens=1, sampling=GREEDY))[0]
    assert started.n_prompt_tokens == 35  # the chat template with its default system message, one tokenizer


def test_greedy_decoding_is_deterministic(engine):
    _, client, _ = engine
    request = GenerationRequest.from_prompt("What is the capital of France?", max_tokens=24, sampling=GREEDY)
    first, second = (tokens_of(run(client, request)) for _ in range(2))
    assert [t.token_id for t in first] == [t.token_id for t in second]
    assert "".join(t.text for t in first).strip()


def test_max_tokens_cancel_and_bad_requests(engine):
    _, client, _ = engine
    ended = run(client, GenerationRequest.from_prompt("Count from 1 to 100.", max_tokens=5, sampling=GREEDY))[-1]
    assert (ended.finish_reason, ended.n_generated) == ("length", 5)
    assert run(client, GenerationRequest.from_prompt("   "))[-1].kind == "empty_prompt"
    too_long = run(client, GenerationRequest.from_prompt("word " * 3000, max_tokens=4))[-1]
    assert isinstance(too_long, Failed) and too_long.kind == "prompt_too_long"
    events = client.generate(GenerationRequest.from_prompt("Write a long story.", max_tokens=400, sampling=GREEDY))
    for event in events:
        if isinstance(event, Token):
            client.cancel()
        if isinstance(event, Finished):
            assert event.finish_reason == "cancelled" and event.n_generated < 400


def test_stop_strings_end_the_run_without_showing_the_stop(engine):
    _, client, _ = engine
    events = run(client, GenerationRequest.from_prompt("Count from 1 to 20, separated by commas.", max_tokens=60,
                                                       sampling=GREEDY, stop=("5",)))
    text = "".join(t.text for t in tokens_of(events)) + events[-1].text_tail
    assert events[-1].finish_reason == "stop" and "5" not in text


def test_the_mlx_tokenizer_encodes_as_llama_cpp_does(smollm2_mlx_path, smollm2_vocab):
    from transformers import AutoTokenizer

    mine = AutoTokenizer.from_pretrained(smollm2_mlx_path)
    for text in ("Hello, world!", "12345 apples cost $6.78", "naïve café — déjà vu", "<|im_start|>user\nhi<|im_end|>",
                 "    indented\n\ttabbed"):
        theirs = smollm2_vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        assert mine.encode(text, add_special_tokens=False) == theirs, text


def test_an_incomplete_mlx_folder_is_refused_before_a_worker_starts(tmp_path, smollm2_spec):
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(EngineError, match="lacks weights .*tokenizer") as caught:
        EngineClient().load(replace(smollm2_spec, path=str(folder), engine="mlx"))
    assert caught.value.kind == "bad_model_file"
    with pytest.raises(EngineError, match="not a folder"):
        EngineClient().load(replace(smollm2_spec, path=str(tmp_path / "nowhere"), engine="mlx"))


def test_the_two_engines_agree_where_the_model_is_sure(smollm2_spec, smollm2_mlx_path):
    """Greedy text is the same until the first near-tie: the two quantized kernels round differently.
    On "capital of France" the top two first tokens are 0.1 logit apart, and the engines split there
    ("L'Étoile…" against "The capital…"); counting is a sure thing, and they agree."""
    request = GenerationRequest.from_prompt("Count from 1 to 10, separated by commas.", max_tokens=12, sampling=GREEDY)
    texts = []
    for spec in (smollm2_spec, replace(smollm2_spec, path=smollm2_mlx_path, engine="mlx")):
        with EngineClient() as client:
            client.load(spec)
            events = run(client, request)
            texts.append("".join(t.text for t in tokens_of(events)) + events[-1].text_tail)
    assert texts[0] == texts[1] and "1, 2, 3" in texts[0]


def test_a_folder_given_as_a_model_is_read_as_an_mlx_model(tmp_path, smollm2_mlx_path):
    from app.catalog import resolve

    spec = resolve(smollm2_mlx_path)
    assert (spec.engine, spec.name) == ("mlx", "smollm2-135m-mlx")
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(EngineError, match="give the file itself") as caught:
        EngineClient().load(resolve(str(folder)))
    assert caught.value.kind == "bad_model_file"


def test_a_repeated_prompt_reuses_the_kept_kv_cache_and_says_the_same(engine):
    _, client, _ = engine
    messages = (Message("system", "You are terse. " * 20), Message("user", QUESTION))
    request = GenerationRequest(messages=messages, max_tokens=12, sampling=GREEDY)
    run(client, GenerationRequest.from_prompt("unrelated", max_tokens=2, sampling=GREEDY))
    first, second = run(client, request), run(client, request)
    done = [next(e for e in events if isinstance(e, PromptDone)) for events in (first, second)]
    assert done[0].n_prompt_evaluated > 0.8 * done[0].n_prompt_tokens  # only the template's opening was shared
    assert 0 < done[1].n_prompt_evaluated < done[1].n_prompt_tokens
    fresh = run(client, replace(request, cache_prompt=False))
    assert next(e for e in fresh if isinstance(e, PromptDone)).n_prompt_evaluated == done[0].n_prompt_tokens
    # What was reused is what a fresh evaluation computes: the same greedy tokens all three times.
    assert [t.token_id for t in tokens_of(first)] == [t.token_id for t in tokens_of(second)] == \
        [t.token_id for t in tokens_of(fresh)]


def test_a_long_prompt_can_be_cancelled_before_its_first_token_and_the_engine_goes_on(engine):
    _, client, _ = engine
    timer = threading.Timer(0.5, client.cancel)
    timer.start()
    try:  # ~1,500 prompt tokens: seconds on llama.cpp, minutes on MLX's CPU build
        events = run(client, GenerationRequest.from_prompt("word " * 1500, max_tokens=4, cache_prompt=False))
    finally:
        timer.cancel()
    assert not any(isinstance(e, PromptDone) for e in events)  # stopped inside the prompt
    assert (events[-1].finish_reason, events[-1].n_generated) == ("cancelled", 0)
    after = run(client, GenerationRequest.from_prompt(QUESTION, max_tokens=4, sampling=GREEDY))
    fresh = run(client, GenerationRequest.from_prompt(QUESTION, max_tokens=4, sampling=GREEDY, cache_prompt=False))
    assert [t.token_id for t in tokens_of(after)] == [t.token_id for t in tokens_of(fresh)]
