"""Offloaded against CPU-only: the same model's decode tokens/s, with every layer on the GPU and with none.

On a machine without a GPU (or with a CPU-only llama.cpp) it prints that, and why, from the same
plan the worker makes at load.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

import pytest

from app.engines.client import EngineClient
from app.engines.devices import llama_build
from app.engines.gguf_header import read_gguf_header
from app.engines.offload import plan_offload
from app.engines.types import Finished, GenerationRequest, Sampling, Token

pytestmark = pytest.mark.perf
ROUNDS = 3
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def decode_tps(client: EngineClient) -> float:
    events = list(client.generate(GenerationRequest.from_prompt(PROMPT, max_tokens=96, cache_prompt=False,
                                                                sampling=Sampling(temperature=0.0))))
    times = [e.t for e in events if isinstance(e, Token)]
    assert isinstance(events[-1], Finished) and len(times) > 10
    return (len(times) - 1) / (times[-1] - times[0])


def test_offloaded_against_cpu_decode_speed(smollm2_spec):
    build = llama_build()
    plan = plan_offload(read_gguf_header(smollm2_spec.path), smollm2_spec.n_ctx, None, build)
    if plan.n_gpu_layers == 0:
        print(f"\n[bench] offloaded vs CPU: no GPU available — {plan.reason} "
              f"(llama.cpp {build.version}, backends: {', '.join(build.backends) or 'none'})")
        pytest.skip(f"no GPU to offload to: {plan.reason}")
    figures = {}
    for label, layers in (("offloaded", -1), ("CPU", 0)):
        with EngineClient() as client:
            info = client.load(replace(smollm2_spec, n_gpu_layers=layers))
            decode_tps(client)  # warm
            figures[label] = (statistics.median(decode_tps(client) for _ in range(ROUNDS)), info.placement)
    for label, (tps, where) in figures.items():
        print(f"\n[bench] {label:9} ({where}): decode {tps:7.1f} tok/s")
    ratio = figures["offloaded"][0] / figures["CPU"][0]
    print(f"[bench] SmolLM2 135M, median of {ROUNDS}: offloaded decodes at {ratio:.2f}x the CPU's speed ({plan.reason})")
    assert all(tps > 1 for tps, _ in figures.values())
