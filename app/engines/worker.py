"""The worker process: one loaded model, commands in and events out over a pipe.

Started with the `spawn` method (fork breaks Metal on macOS and duplicates threads), so a crash,
an out-of-memory kill or a hang here ends one pane's run and nothing else.
"""

from __future__ import annotations

import signal
from multiprocessing.connection import Connection

from app.engines.backends import make_engine
from app.engines.types import EngineError, Failed, Token, now

FLUSH_INTERVAL_S = 0.03


def _stream(events, conn: Connection) -> None:
    """Send events in batches: every event that is not a token at once, tokens at most every
    FLUSH_INTERVAL_S. Each event keeps its own timestamp, so batching delays display, not figures.

    Waking the parent for every token steals the cores the model is decoding on (about 8% of
    decode speed at 120 tok/s on 2 cores, tests/perf); a 30 ms batch is below what an eye sees.
    A slow model still streams token by token: a token that comes after the interval goes alone.
    """
    batch: list = []
    last_flush = None  # no token sent yet: the first one goes at once (it is the TTFT)
    for event in events:
        batch.append(event)
        if not isinstance(event, Token):
            conn.send(batch)
            batch = []
        elif last_flush is None or event.t - last_flush >= FLUSH_INTERVAL_S:
            conn.send(batch)
            batch, last_flush = [], event.t
    if batch:
        conn.send(batch)


def worker_main(conn: Connection, cancel_flag) -> None:
    """Serve ("load", (spec, header)), ("generate", request) and ("close", None) until told to stop.

    The header is the GGUF's, read by the parent (None for a model without one), so the file's
    header is not read again here.

    Replies to load are ("loaded", ModelInfo) or ("error", (kind, message)); a generate streams
    lists of events, the last ending with Finished or Failed.
    """
    # A terminal's Ctrl-C reaches the whole process group: the parent cancels the run (and ends its
    # rows as cancelled); a worker that died of it would end its pane failed instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    engine = None
    try:
        while True:
            try:
                command, argument = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if command == "load":
                spec, header = argument
                try:
                    engine = make_engine(spec.engine, cancel_flag)
                    conn.send(("loaded", engine.load(spec, header)))
                except EngineError as exc:
                    conn.send(("error", (exc.kind, str(exc))))
                except Exception as exc:  # anything else still becomes one clear line
                    conn.send(("error", ("load_failed", f"could not load the model: {exc}")))
            elif command == "generate":
                try:
                    _stream(engine.generate(argument), conn)
                except (BrokenPipeError, EOFError):
                    return
                except Exception as exc:
                    conn.send(Failed(now(), "engine", f"the engine failed: {exc}"))
            elif command == "close":
                return
    finally:
        if engine is not None:
            engine.close()
