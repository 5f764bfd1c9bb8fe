"""NVML and Apple IOReport on a machine that has neither: each says why, in a sentence."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from app.telemetry.sources import ioreport_sources, nvml_sources

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
    pytest.importorskip("pynvml", reason="nvidia-ml-py is in the test extra")
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
    assert ioreport_sources() == ([], [("ioreport", "not an Apple Silicon Mac")])


class Metrics:
    """What zeus-apple-silicon's get_cumulative_energy() returns: mJ per channel, None if absent."""

    def __init__(self, **mj):
        for name in ("cpu_total_mj", "gpu_mj", "ane_mj", "dram_mj", "gpu_sram_mj"):
            setattr(self, name, mj.get(name))


class FakeMonitor:
    """Stands in for the chip (not for our code): cumulative counters that grow by set amounts per read."""

    def __init__(self, step: dict, old_binding: bool = False):
        self.step, self.reads, self.old_binding, self.fail = step, 0, old_binding, False

    def get_cumulative_energy(self):
        if self.fail:
            raise RuntimeError("IOReport subscription lost")
        self.reads += 1
        values = {name: (mj * self.reads if mj is not None else None) for name, mj in self.step.items()}
        if self.old_binding:  # before 1.0.3 the CPU total was "cpu_mj"
            metrics = Metrics(**{k: v for k, v in values.items() if k != "cpu_total_mj"})
            metrics.cpu_mj = values["cpu_total_mj"]
            return metrics
        return Metrics(**values)


@pytest.mark.parametrize("old_binding", [False, True])
def test_ioreport_channels_become_sources_that_add_up_by_domain(old_binding):
    from dataclasses import replace

    from app.telemetry import Sample, energy_for_window

    monitor = FakeMonitor({"cpu_total_mj": 2000, "gpu_mj": 5000, "ane_mj": 100, "dram_mj": 300}, old_binding)
    sources, failed = ioreport_sources(monitor)
    assert failed == []
    assert [(s.info.name, s.info.domain, s.info.label) for s in sources] == [
        ("ioreport:cpu", "cpu", "measured:ioreport"), ("ioreport:gpu", "gpu", "measured:ioreport"),
        ("ioreport:ane", "ane", "measured:ioreport"), ("ioreport:dram", "dram", "measured:ioreport")]
    import time

    time.sleep(0.01)  # the channels share one read per sampler tick (5 ms): one tick later
    first = {s.info.name: replace(s.read(), t=0.0) for s in sources}
    time.sleep(0.01)
    second = {s.info.name: replace(s.read(), t=1.0) for s in sources}
    assert monitor.reads == 3  # one read per tick, however many channels
    figure = energy_for_window([Sample(0.0, 0, 1, 1, None, None, {}, first),
                                Sample(1.0, 0, 1, 1, None, None, {}, second)], 0.0, 1.0)
    assert figure.breakdown == pytest.approx({"ioreport:cpu": 2.0, "ioreport:gpu": 5.0, "ioreport:ane": 0.1,
                                              "ioreport:dram": 0.3})
    assert figure.source_label == "measured:ioreport" and figure.joules == pytest.approx(7.4)


def test_a_channel_the_chip_lacks_and_a_monitor_that_stops_are_said_plainly():
    from app.telemetry.sources import SourceUnavailable

    monitor = FakeMonitor({"cpu_total_mj": 2000, "gpu_mj": 5000, "ane_mj": 100, "dram_mj": None})
    sources, failed = ioreport_sources(monitor)
    assert [s.info.name for s in sources] == ["ioreport:cpu", "ioreport:gpu", "ioreport:ane"]
    assert failed == [("ioreport:dram", "ioreport:dram: this chip does not report the dram_mj channel")]
    monitor.fail = True
    with pytest.raises(SourceUnavailable, match="stopped answering: IOReport subscription lost"):
        import time

        time.sleep(0.01)  # past the per-tick cache
        sources[0].read()
