"""What the engine room may import: nothing above it, so the worker loads no display code and the
thinking formats have one home (app/thinking_styles.py) that both sides read."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import app.engines

APP = Path(app.engines.__file__).resolve().parent.parent


def imported_names(path: Path) -> set[str]:
    """Every module a file names in an import, wherever the import sits (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_engine_module_names_app_reasoning():
    for path in sorted((APP / "engines").glob("*.py")):
        above = {n for n in imported_names(path) if n.startswith("app.reasoning")}
        assert not above, f"{path.name} imports {sorted(above)}"


def test_the_thinking_styles_module_imports_nothing_from_app():
    assert not {n for n in imported_names(APP / "thinking_styles.py") if n == "app" or n.startswith("app.")}


def test_importing_every_engine_module_loads_no_reasoning_module():
    # A fresh interpreter, so modules other tests imported cannot hide an import.
    modules = [m.name for m in pkgutil.iter_modules(app.engines.__path__, prefix="app.engines.")]
    assert "app.engines.pipeline" in modules and "app.engines.backends" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('app.reasoning', 'app.session', 'app.runs'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=APP.parent)
    assert out.stdout.strip() == "[]"
