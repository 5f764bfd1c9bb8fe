"""llama.cpp and MLX on the same model and prompt, side by side: prompt and decode tokens/s, memory."""

from __future__ import annotations

import statistics
from dataclasses import replace

import psutil
import pytest

pytest.importorskip("mlx_lm", reason="MLX is not installed here (pip install -e '.[mlx]'; Apple Silicon or Linux x86_64)")

from app.engines.client import EngineClient  # noqa: E402
from app.engines.mlx_convert import convert_gguf  # noqa: E402
from app.engines.types import Finished, GenerationRequest, PromptDone, Sampling, Token  # noqa: E402

pytestmark = pytest.mark.perf
ROUNDS = 3
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def measure(client) -> tuple[float, float, int | None]:
    events = list(client.generate(GenerationRequest.from_prompt(PROMPT, max_tokens=96, cache_prompt=False,
                                                                sampling=Sampling(temperature=0.0))))
    done = next(e for e in events if isinstance(e, PromptDone))
    times = [e.t for e in events if isinstance(e, Token)]
    assert isinstance(events[-1], Finished) and len(times) > 10
    return (done.n_prompt_evaluated / done.prompt_eval_s, (len(times) - 1) / (times[-1] - times[0]),
            events[-1].peak_memory_bytes)


def test_llama_cpp_and_mlx_side_by_side(smollm2_spec, smollm2_path, tmp_path):
    folder = convert_gguf(smollm2_path, tmp_path / "smollm2-mlx")
    figures = {}
    for name, spec in (("llama.cpp", smollm2_spec), ("mlx", replace(smollm2_spec, path=str(folder), engine="mlx"))):
        with EngineClient() as client:
            info = client.load(spec)
            measure(client)  # warm
            rounds = [measure(client) for _ in range(ROUNDS)]
            rss = psutil.Process(client.pid).memory_info().rss
        figures[name] = (statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds),
                         info.backend_used, rss, rounds[-1][2])
    for name, (prompt_tps, decode_tps, backend, rss, engine_peak) in figures.items():
        own = f", its own peak count {engine_peak / 2**20:.0f} MiB" if engine_peak else ""
        print(f"\n[bench] {name:9} ({backend}): prompt {prompt_tps:7.1f} tok/s, decode {decode_tps:6.1f} tok/s; "
              f"worker RSS {rss / 2**20:.0f} MiB{own}")
    ratio = figures["mlx"][1] / figures["llama.cpp"][1]
    print(f"[bench] SmolLM2 135M (Q4_1 / MLX 4-bit from the same file), median of {ROUNDS}: MLX decodes at "
          f"{ratio:.2f}x llama.cpp's speed here (CPU); on Apple Silicon MLX runs on Metal")
    assert all(f[1] > 1 for f in figures.values())
