"""What `make test` installs is really there, so the tests that skip without it run wherever it can be.

Several test files skip when an extra is missing (a user's partial install is allowed to run the
rest); this file fails instead, on the platforms where the Makefile installs that extra, so a CI
run that quietly lost one cannot pass with its tests skipped.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil

import pytest

# module -> what installs it (the Makefile's `pip install -e '.[bundled,gui,hub,mlx,test]'`)
EVERYWHERE = {
    "PySide6": "the gui extra",
    "superqt": "the gui extra",
    "pyqtgraph": "the gui extra",
    "pytestqt": "the test extra",
    "PyInstaller": "the test extra",
    "huggingface_hub": "the hub extra",
    "pynvml": "the test extra",
    "matplotlib": "the test extra",
}
MLX_PLATFORMS = {("Linux", "x86_64"), ("Darwin", "arm64")}


@pytest.mark.parametrize("module", sorted(EVERYWHERE))
def test_every_extra_the_tests_use_is_installed(module):
    assert importlib.util.find_spec(module) is not None, f"{module} is missing: `make test` installs it ({EVERYWHERE[module]})"


def test_mlx_is_installed_where_it_has_wheels():
    if (platform.system(), platform.machine()) not in MLX_PLATFORMS:
        pytest.skip(f"MLX has no wheels for {platform.system()} {platform.machine()}")
    assert importlib.util.find_spec("mlx_lm") is not None, "mlx-lm is missing: `make test` installs the mlx extra"


def test_xvfb_is_installed_where_make_test_can_install_it():
    if not (shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0):
        pytest.skip("make test installs Xvfb only on Debian/Ubuntu as root")
    assert shutil.which("Xvfb"), "Xvfb is missing: `make test` installs it (make xvfb)"
