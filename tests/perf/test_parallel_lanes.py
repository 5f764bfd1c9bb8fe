"""What --parallel N buys an eval against a served model, measured alone: a stand-in server streams
each request at the same pace however many come at once (as a batching server — vLLM, SGLang,
llama-server's slots — does while it has room), so the wall time's ratio is what FastSlow's lanes
deliver of the server's concurrency. Each run goes through the real path: a worker per lane, the
remote engine, the session log, the sample file."""

from __future__ import annotations

import time

import pytest

from llama_server import streaming_server

from app.catalog import resolve
from app.eval.harness import run_eval
from app.eval.suites import load_suite, suite_path
from app.session import Session
from app.store import MemoryLog

pytestmark = pytest.mark.perf
PROBLEMS = 16


def eval_wall_s(url: str, parallel: int) -> tuple[float, list]:
    spec = resolve(f"remote:{url}#m")
    with Session([spec] * parallel, log=MemoryLog.open()) as session:
        session.load_lanes() if parallel > 1 else session.load_single()
        problems = load_suite(suite_path("gsm8k"), limit=PROBLEMS)
        t0 = time.perf_counter()
        samples = run_eval(session, problems, ["direct"], 64, parallel=parallel)
        return time.perf_counter() - t0, samples


@pytest.mark.timeout(600)
def test_parallel_lanes_against_one_after_another():
    with streaming_server() as url:
        walls = {}
        for parallel in (1, 4, 8):
            walls[parallel], samples = eval_wall_s(url, parallel)
            assert len(samples) == PROBLEMS and {s.status for s in samples} == {"ok"}
            assert {s.predicted for s in samples} == {"42"}
    for parallel in (1, 4, 8):
        print(f"\n[bench] eval, {PROBLEMS} questions × 64 streamed tokens, --parallel {parallel}: "
              f"{walls[parallel]:.2f} s")
    print(f"[bench] --parallel 4 against one at a time: {walls[1] / walls[4]:.2f}x faster; "
          f"--parallel 8: {walls[1] / walls[8]:.2f}x (the stand-in serves every request at full pace)")
    assert walls[4] < walls[1]
