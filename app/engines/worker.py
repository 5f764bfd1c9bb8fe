"""The worker process: one loaded model, commands in and events out over a pipe.

Started with the `spawn` method (fork breaks Metal on macOS and duplicates threads), so a crash,
an out-of-memory kill or a hang here ends one pane's run and nothing else.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

from app.engines.types import EngineError, Failed, now


def _make_engine(engine: str, cancel_flag):
    if engine == "llama.cpp":
        from app.engines.llama_engine import LlamaCppEngine

        return LlamaCppEngine(cancel_flag)
    raise EngineError(f"unknown engine {engine!r}: this build knows 'llama.cpp'", kind="load_failed")


def worker_main(conn: Connection, cancel_flag) -> None:
    """Serve ("load", spec), ("generate", request) and ("close", None) until told to stop.

    Replies to load are ("loaded", ModelInfo) or ("error", (kind, message)); a generate streams
    events and always ends with Finished or Failed.
    """
    engine = None
    try:
        while True:
            try:
                command, argument = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if command == "load":
                try:
                    engine = _make_engine(argument.engine, cancel_flag)
                    conn.send(("loaded", engine.load(argument)))
                except EngineError as exc:
                    conn.send(("error", (exc.kind, str(exc))))
                except Exception as exc:  # anything else still becomes one clear line
                    conn.send(("error", ("load_failed", f"could not load the model: {exc}")))
            elif command == "generate":
                try:
                    for event in engine.generate(argument):
                        conn.send(event)
                except (BrokenPipeError, EOFError):
                    return
                except Exception as exc:
                    conn.send(Failed(now(), "engine", f"the engine failed: {exc}"))
            elif command == "close":
                return
    finally:
        if engine is not None:
            engine.close()
