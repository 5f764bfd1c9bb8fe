"""A served model against the same model run here: TTFT and decode tokens/s of the bundled SmolLM2
through llama-cpp-python's server on 127.0.0.1 (the remote engine, in its worker) and through the local
llama.cpp engine (in its worker), so the network, HTTP and server overhead is a measured ratio.

Both get the same threads and each round a fresh question after the template's same system prompt,
whose cached prefix both reuse (llama-cpp-python's server always does; ours with cache_prompt); their rounds
alternate, never at once, so neither steals the other's cores and a shared machine's load drifts over
both alike."""

from __future__ import annotations

import statistics
from dataclasses import replace

import pytest

from llama_server import LlamaServer

from app.catalog import resolve
from app.engines.client import EngineClient
from app.engines.types import Finished, GenerationRequest, Sampling, Token, now

pytestmark = pytest.mark.perf
ROUNDS = 5
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def measure(client: EngineClient, round_no: int) -> tuple[float, float]:
    """(TTFT in s, decode tokens/s), both measured on arrival in this process."""
    request = GenerationRequest.from_prompt(f"{round_no}. {PROMPT}", max_tokens=64, cache_prompt=True,
                                            sampling=Sampling(temperature=0.0))
    t0 = now()
    events = list(client.generate(request))
    times = [e.t for e in events if isinstance(e, Token)]
    assert isinstance(events[-1], Finished) and len(times) > 10, events[-1]
    return times[0] - t0, (len(times) - 1) / (times[-1] - times[0])


@pytest.mark.timeout(900)  # two engines, twelve rounds, on a machine others may be loading
def test_remote_pane_against_the_same_model_here(smollm2_spec, smollm2_path, bench_threads, tmp_path):
    server = LlamaServer(smollm2_path, "smollm2", tmp_path / "server.log", threads=bench_threads)
    try:
        with EngineClient() as here, EngineClient() as served:
            here.load(replace(smollm2_spec, n_threads=bench_threads))
            served.load(resolve(server.spec_name))
            measure(here, 0), measure(served, 0)  # warm
            rounds = [(measure(here, i), measure(served, i)) for i in range(1, ROUNDS + 1)]
    finally:
        server.kill()
    local = tuple(statistics.median(r[0][k] for r in rounds) for k in (0, 1))
    remote = tuple(statistics.median(r[1][k] for r in rounds) for k in (0, 1))
    for name, (ttft, tps) in (("local", local), ("remote", remote)):
        print(f"\n[bench] {name:6} SmolLM2 135M, {bench_threads} threads: TTFT {ttft * 1000:6.1f} ms, "
              f"decode {tps:6.1f} tok/s (median of {ROUNDS}, rounds alternating)")
    print(f"[bench] served through llama-cpp-python's server on 127.0.0.1 against the same model here: "
          f"TTFT {remote[0] / local[0]:.2f}x, decode tokens/s {remote[1] / local[1]:.2f}x")
    assert remote[1] > 0 and local[1] > 0
