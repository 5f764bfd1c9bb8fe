"""10,000 runs exported to JSONL, CSV and a SQLite copy in a few seconds. Prints the times.

Run with `make bench` (or pytest tests/perf/test_store_export.py -m perf -s).
"""

import copy
import time
import uuid

import pytest

from app.engines.types import GenerationRequest
from app.runs import RunResult
from app.store import SessionLog
from app.store.export import export

pytestmark = pytest.mark.perf

N_RUNS = 10_000
N_TOKENS = 256
BUDGET_S = 10.0  # per format; "a few seconds" with room for a slow CI machine (JSONL is ~3 s here)


@pytest.fixture(scope="module")
def big_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("perf") / "log.db"
    log = SessionLog.open(path)
    request = GenerationRequest.from_prompt("What is 17 × 23? Show your work.")
    prompt = log.add_prompt(log.start_session(), request)
    result = RunResult.of(pane=0, model="smollm2-135m", mode="fair", status="ok", text="391. " * 40,
                       n_generated=N_TOKENS, decode_tps=90.0, token_times_s=[0.05 + i / 90 for i in range(N_TOKENS)])
    run_id = log.start_run(prompt, pane=0, request=request)
    log.finish_run(run_id, result)
    # The other runs as copies of that one, in one transaction: the benchmark is the export.
    record = log.run_record(run_id)
    clones = []
    for i in range(N_RUNS - 1):
        clone = copy.deepcopy(record)
        clone["run"].update(uid=uuid.uuid4().hex, pane=i % 2)
        clones.append(clone)
    log.import_records(clones)
    yield log
    log.close()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "sqlite"])
def test_ten_thousand_runs_export_in_a_few_seconds(big_log, tmp_path, fmt):
    out = tmp_path / f"runs.{fmt}"
    t0 = time.perf_counter()
    n = export(big_log, fmt, out)
    elapsed = time.perf_counter() - t0
    print(f"\nexport {fmt}: {n:,} runs, {out.stat().st_size / 2**20:.1f} MiB in {elapsed:.2f} s")
    assert n == N_RUNS
    assert elapsed < BUDGET_S
