"""Shared by the store tests: a model's load report, a finished result, a run start to finish.

(A plain module, not conftest: several test folders have a conftest, and imports must not mix them.)
"""

from __future__ import annotations

from app.engines.types import ModelInfo
from app.runs import RunResult

INFO = ModelInfo(
    name="smollm2-135m", path="/models/smollm2.gguf", engine="llama.cpp", architecture="llama",
    n_params=135_000_000, quantization="Q4_1", file_size=90_000_000, n_ctx=2048, n_ctx_train=8192,
    chat_template_source="gguf", backends_available=("CPU",), backend_used="CPU",
    n_gpu_layers_requested=0, n_gpu_layers_offloaded=0, n_layers=30, n_threads=4, load_s=0.2,
    engine_version="0.3.36",
)


def make_result(pane: int = 0, text: str = "It arrives at 6:15 pm.", n: int = 5) -> RunResult:
    return RunResult.of(
        pane=pane, model="smollm2-135m", mode="fair", status="ok", finish_reason="stop", text=text,
        thinking="3:40 plus 2:35…", thinking_style="think-tags", thinking_unclosed=False,
        thinking_budget=64, thinking_budget_hit=True, model_path="/models/smollm2.gguf",
        engine="llama.cpp", backend="CPU", quantization="Q4_1", n_threads=4, n_prompt_tokens=31,
        n_prompt_evaluated=31, n_generated=n, n_thinking_tokens=2, n_answer_tokens=n - 2, ttft_s=0.051,
        ttfat_s=0.12, prompt_eval_s=0.04, prompt_tps=775.0, decode_tps=88.8, total_s=0.2,
        engine_decode_tps=90.1, token_times_s=[0.051 + i / 90 for i in range(n)],
        started_at="2026-11-23T21:00:00+0000",
    )


def finished_run(log, prompt_id, request_, pane: int = 0, **result_args) -> int:
    run_id = log.start_run(prompt_id, pane=pane, info=INFO, request=request_, mode="fair")
    log.finish_run(run_id, make_result(pane=pane, **result_args))
    return run_id


def fastslow(*argv: str) -> int:
    """`fastslow log …` in this process, as the command line would run it; its exit code."""
    import argparse

    from app.store.commands import add_log_commands

    parser = argparse.ArgumentParser(prog="fastslow")
    add_log_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)
