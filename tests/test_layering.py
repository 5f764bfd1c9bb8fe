"""Only app/ui imports Qt: the CLI, the tests and the benchmarks run the very code the GUI uses."""

import pkgutil
from pathlib import Path
import subprocess
import sys

import app


def test_no_module_outside_ui_imports_qt():
    modules = [
        m.name
        for m in pkgutil.walk_packages(app.__path__, prefix="app.")
        if not m.name.startswith("app.ui")
    ]
    assert "app.cli" in modules and "app.engines.llama_engine" in modules
    # A fresh interpreter, so nothing imported by other tests can hide a Qt import.
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'superqt', 'pyqtgraph'))\n"
        "print(qt)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_contracts_in_pyproject_hold():
    # import-linter reads [tool.importlinter] from pyproject.toml: the layers of the whole house.
    out = subprocess.run(
        [sys.executable, "-c", "import sys, importlinter.cli as c; sys.exit(c.lint_imports_command())"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "broken" in out.stdout and "0 broken" in out.stdout


def test_every_module_of_the_app_has_a_layer():
    # A module left out of the layers contract could import anything: a new room takes its place.
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    config = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    [layers] = [c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    placed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    modules = {f"app.{m.name}" for m in pkgutil.iter_modules(app.__path__)}
    assert modules - placed == set()
