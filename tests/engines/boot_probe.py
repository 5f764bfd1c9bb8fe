"""A spawned child's target for tests/engines/test_worker_boot.py: the worker's boot, then numpy
(as the worker's own imports bring it), and the modules in the order they were imported."""

import sys


def probe(conn, engine: str) -> None:
    from app.engines.worker_boot import preload

    preload(engine)
    import numpy  # noqa: F401 — what the worker loop's imports bring next

    main = sys.modules.get("__mp_main__")  # spawn's name for the parent's main, when it ran it here
    conn.send((list(sys.modules), getattr(main, "__file__", None)))
