"""A worker's first imports: its engine's native libraries before numpy, and none of the parent's main.

On a CUDA build (an H200 machine, CUDA 13) llama.cpp crashed loading any model when numpy had been
imported first (app/engines/worker_boot.py). This machine's CPU build does not crash either way, so
these tests check the order itself, in a real child spawned the way EngineClient spawns a worker,
from a parent whose main module imports numpy at its top (as the CLI and the window do).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PARENT = textwrap.dedent("""
    import json, multiprocessing, sys
    import numpy  # as the CLI's and the window's imports do, long before any engine
    sys.path.insert(0, {root!r})
    from app.engines.client import start_without_main
    from tests.engines.boot_probe import probe

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        child = ctx.Process(target=probe, args=(theirs, "llama.cpp"), daemon=True)
        start_without_main(child) if {hide} else child.start()
        print(json.dumps(ours.recv()))
        child.join(30)
""")


def _child_modules(tmp_path: Path, hide: bool) -> tuple[list[str], str | None]:
    script = tmp_path / "parent_main.py"
    script.write_text(PARENT.format(root=str(ROOT), hide=hide))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    modules, main_file = json.loads(out.stdout.splitlines()[-1])
    return modules, main_file


def test_a_worker_loads_llama_cpp_before_numpy_and_never_the_parents_main(tmp_path):
    modules, main_file = _child_modules(tmp_path, hide=True)
    assert main_file is None  # the parent's main (and its numpy) was not run again in the child
    assert modules.index("llama_cpp.llama_cpp") < modules.index("numpy")  # the libraries came first


def test_without_it_spawn_brings_the_parents_main_and_numpy_first(tmp_path):
    modules, main_file = _child_modules(tmp_path, hide=False)  # a plain start: the hazard is real
    assert main_file == str(tmp_path / "parent_main.py")
    assert modules.index("numpy") < modules.index("llama_cpp.llama_cpp")
