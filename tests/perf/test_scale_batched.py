"""The scaling lab's default sweep (budgets 0, 64, 128, 256; k 1, 2, 4, 8 sharing 8 samples a
question) batched — each question's 8 samples and its greedy answers at the three thinking budgets
one batch (one prompt), its direct answer alone — against the same sweep asking for each generation
alone, as it did before batching: same model, same seeds. SmolLM2 135M, the bench's threads; FASTSLOW_BENCH_QUESTIONS sets
how many GSM8K questions (default 2, to keep the suite short; the closing note's figure is from 10).
The replies differ (a batch's rounding sends a greedy reply down another path at a near tie, and the
tiny model then sometimes loops to its token limit), so the tokens each made are printed beside the
wall time."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from app.eval.suites import load_suite, suite_path
from app.scaling import sweep
from app.scaling.sweep import SampleStore, SweepConfig, sweep_model

pytestmark = pytest.mark.perf


@pytest.mark.timeout(3600)
def test_the_default_sweep_with_batched_samples_against_one_by_one(smollm2_spec, bench_threads, tmp_path,
                                                                    monkeypatch):
    n = int(os.environ.get("FASTSLOW_BENCH_QUESTIONS", "2"))
    problems = load_suite(suite_path("gsm8k"), limit=n)
    spec = replace(smollm2_spec, n_threads=bench_threads)
    walls, tokens = {}, {}
    for batched in (False, True):
        monkeypatch.setattr(sweep, "BATCH_SAMPLES", batched)
        store = SampleStore.open(tmp_path / f"samples-{batched}.jsonl")
        t0 = time.perf_counter()
        swept = sweep_model(spec, problems, SweepConfig(), store)
        walls[batched] = time.perf_counter() - t0
        assert swept.ran == n * (4 + 8)
        tokens[batched] = sum(g.n_thinking_tokens + g.n_answer_tokens for g in store.done.values())
    print(f"\n[bench] default sweep on {n} GSM8K question{'s' if n != 1 else ''} (SmolLM2 135M, {bench_threads} "
          f"threads): one by one {walls[False]:.1f} s ({tokens[False]} tokens, {tokens[False] / walls[False]:.0f} "
          f"tok/s), batched {walls[True]:.1f} s ({tokens[True]} tokens, {tokens[True] / walls[True]:.0f} tok/s): "
          f"{walls[False] / walls[True]:.2f}x less wall time (goal >= 1.7 on 10 questions), "
          f"{(tokens[True] / walls[True]) / (tokens[False] / walls[False]):.2f}x the tokens/s")
    assert walls[True] < walls[False]
