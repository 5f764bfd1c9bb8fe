"""NVML and Apple IOReport on a machine that has neither: each says why, in a sentence."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from app.telemetry.sources import ioreport_unavailable, nvml_sources

REPO = Path(__file__).resolve().parents[2]


def _has_nvidia_gpu() -> bool:
    try:
        import pynvml
    except ImportError:
        return False
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.skipif(_has_nvidia_gpu(), reason="this machine has an NVIDIA GPU: the unavailable path cannot occur")
def test_nvml_without_a_driver_says_why():
    pytest.importorskip("pynvml")
    sources, failed = nvml_sources()
    assert sources == []
    [(name, reason)] = failed
    assert name == "nvml" and "NVML did not start" in reason and "no NVIDIA driver or GPU" in reason


def test_nvml_without_the_package_says_what_to_install():
    # A fresh interpreter where importing pynvml fails, as on an install without the nvidia extra.
    code = (
        "import sys; sys.modules['pynvml'] = None\n"
        "from app.telemetry.sources import nvml_sources\n"
        "print(nvml_sources())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert "([], [('nvml', 'nvidia-ml-py is not installed (pip install nvidia-ml-py)" in out.stdout


@pytest.mark.skipif(platform.system() == "Darwin" and platform.machine() == "arm64", reason="Linux/Windows wording")
def test_ioreport_off_apple_silicon_says_so():
    assert ioreport_unavailable() == ("ioreport", "not an Apple Silicon Mac")
