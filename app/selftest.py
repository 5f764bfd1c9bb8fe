"""`--self-test`: prove an installation (or a desktop bundle) works, headless, in well under a minute.

Finds the bundled model, loads it in a worker process, generates a few tokens, writes the run to a
session log in a temporary folder and reads it back, and checks the run's energy was measured or
estimated by this machine's power sources. Where MLX is installed (Apple Silicon; Linux for
testing), it also builds an MLX copy of the model and generates with the MLX engine, which is how a
bundle proves it carries MLX whole. Prints one line per step; exit status 0 when every step passed, 1
otherwise. No Qt: it runs where no display is.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, TextIO

from app import __version__
from app.catalog import DEFAULT_MODELS, resolve
from app.engines.mlx_engine import mlx_unavailable
from app.engines.types import GenerationRequest, ModelSpec, Sampling
from app.runs import RunResult
from app.session import Session
from app.store import SessionLog

TOKENS = 8


def run_self_test(out: TextIO | None = None) -> int:
    out = out or sys.stdout
    out.write(f"FastSlow {__version__} self-test ({'bundle' if getattr(sys, 'frozen', False) else 'python'}, "
              f"{sys.platform})\n")
    state: dict = {}
    steps: list[tuple[str, Callable[[], str]]] = [
        ("find the bundled model", lambda: _find(state)),
        ("load it in a worker process", lambda: _load(state)),
        (f"generate {TOKENS} tokens", lambda: _generate(state)),
        ("write and read the session log", lambda: _log(state)),
        ("measure the run's energy", lambda: _energy(state)),
    ]
    no_mlx = mlx_unavailable()
    if no_mlx is None:
        steps.append(("generate with the MLX engine", lambda: _mlx(state)))
    failed = False
    try:
        for name, step in steps:
            started = time.perf_counter()
            try:
                detail = step()
            except Exception as exc:  # the point is to say what broke, whatever it was
                out.write(f"FAIL {name}: {type(exc).__name__}: {exc}\n")
                failed = True
                break
            out.write(f"ok   {name} ({time.perf_counter() - started:.2f} s): {detail}\n")
    finally:
        if "session" in state:
            state["session"].close()
        if "log" in state:
            state["log"].close()
        if "tmp" in state:
            state["tmp"].cleanup()
    if no_mlx is not None and not failed:
        out.write(f"skip the MLX engine: {no_mlx}\n")
    out.write("self-test failed\n" if failed else "self-test passed\n")
    return 1 if failed else 0


def _find(state: dict) -> str:
    state["spec"] = resolve(DEFAULT_MODELS[0], n_ctx=512)
    return state["spec"].path


def _load(state: dict) -> str:
    state["tmp"] = tempfile.TemporaryDirectory(prefix="fastslow-self-test-")
    state["log"] = SessionLog.open(Path(state["tmp"].name) / "self-test.db")
    state["session"] = session = Session([state["spec"]], mode="fair", log=state["log"])
    pane = session.load_single()
    return f"{pane.info.name}, {pane.info.quantization}, backend {pane.info.backend_used}, pid {pane.client.pid}"


def _say_hello(session: Session, what: str = "the run") -> RunResult:
    """TOKENS greedy tokens from the session's model, or an error saying how the run ended."""
    request = GenerationRequest.from_prompt("Say hello.", max_tokens=TOKENS, sampling=Sampling(temperature=0.0))
    [result] = session.compare(request)
    if result.status != "ok" or result.n_generated == 0:
        raise RuntimeError(f"{what} ended {result.status}: {result.error or 'no tokens'}")
    return result


def _generate(state: dict) -> str:
    state["result"] = result = _say_hello(state["session"])
    return f"{result.n_generated} tokens, {result.decode_tps or 0:.0f} tokens/s: {result.text.strip()[:40]!r}"


def _log(state: dict) -> str:
    log: SessionLog = state["log"]
    [run] = log.list_runs()
    stored = log.get_run(run.id)
    if run.status != "ok" or stored.text != state["result"].text:
        raise RuntimeError(f"the stored run differs from the one generated (status {run.status})")
    conn = sqlite3.connect(log.path)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    if check != "ok":
        raise RuntimeError(f"integrity check: {check}")
    return f"run {run.id} read back, integrity ok"


def _energy(state: dict) -> str:
    """The run got an energy figure with its source, and every power source of this machine was read
    (in a bundle: the platform's own counters, EMI on Windows, IOReport on a Mac)."""
    result: RunResult = state["result"]
    power = state["session"].power
    sources = ", ".join(f"{s.info.name} ({s.info.label})" for s in power.sources)
    if result.energy_j is None or not result.energy_source:
        raise RuntimeError(f"the run has no energy figure; sources: {sources or 'none'}")
    if lost := state["session"].lost_sources():
        raise RuntimeError(f"a power source stopped while sampling: {'; '.join(lost)}")
    return f"{result.energy_j:.2f} J ({result.energy_source}); sources: {sources}"


def _mlx(state: dict) -> str:
    from dataclasses import replace

    from app.engines.mlx_convert import convert_gguf

    folder = convert_gguf(state["spec"].path, Path(state["tmp"].name) / "mlx-model")
    spec: ModelSpec = replace(state["spec"], path=str(folder), engine="mlx", name=f"{state['spec'].name} (MLX)")
    with Session([spec], mode="fair") as session:
        pane = session.load_single()
        result = _say_hello(session, "the MLX run")
    return (f"{pane.info.engine_version} on {pane.info.backend_used}, {result.n_generated} tokens, "
            f"{result.decode_tps or 0:.0f} tokens/s")
