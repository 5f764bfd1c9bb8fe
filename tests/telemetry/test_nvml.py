"""NVIDIA GPUs through NVML: which reading each GPU gets, and what happens when one fails.

No GPU here, so a stand-in driver answers (the GPU, not our code, is what is faked): it speaks
through nvidia-ml-py's own error classes, constants and ctypes structures, so the source reads
exactly what the real binding hands it. On a machine with a GPU, `fastslow telemetry` shows the
real thing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from app.telemetry import Sample, Sampler, energy_for_window
from app.telemetry.sources import NVML_MODES, SourceUnavailable, nvml_sources

nvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is in the test extra")


@dataclass
class Gpu:
    """One GPU as the driver reports it; None: this GPU or driver does not offer that reading."""

    name: str = "NVIDIA GeForce RTX 4070"
    energy_mj: int | None = None  # cumulative, Volta and newer
    instant_mw: int | None = None  # NVML_FI_DEV_POWER_INSTANT, recent drivers
    power_mw: int | None = None  # nvmlDeviceGetPowerUsage
    old_driver: bool = False  # no nvmlDeviceGetFieldValues at all
    gone: bool = False  # fell off the bus


class StandInDriver:
    """The subset of pynvml that app.telemetry.sources calls, answering for the GPUs given."""

    NVMLError = nvml.NVMLError
    NVML_SUCCESS = nvml.NVML_SUCCESS
    NVML_FI_DEV_POWER_INSTANT = nvml.NVML_FI_DEV_POWER_INSTANT

    def __init__(self, *gpus: Gpu, loaded: bool = True) -> None:
        self.gpus, self.loaded, self.inits = list(gpus), loaded, 0

    def nvmlInit(self) -> None:
        if not self.loaded:
            raise nvml.NVMLError(nvml.NVML_ERROR_DRIVER_NOT_LOADED)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        if self.inits == 0:
            raise nvml.NVMLError(nvml.NVML_ERROR_UNINITIALIZED)
        self.inits -= 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Gpu:
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu: Gpu) -> str:
        return gpu.name

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: Gpu) -> int:
        return self._answer(gpu, gpu.energy_mj)

    def nvmlDeviceGetPowerUsage(self, gpu: Gpu) -> int:
        return self._answer(gpu, gpu.power_mw)

    def nvmlDeviceGetFieldValues(self, gpu: Gpu, field_ids: list[int]):
        if gpu.old_driver:
            raise nvml.NVMLError(nvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        self._answer(gpu, 0)
        values = (nvml.c_nvmlFieldValue_t * len(field_ids))()
        for value, field_id in zip(values, field_ids):
            value.fieldId = field_id
            if field_id == nvml.NVML_FI_DEV_POWER_INSTANT and gpu.instant_mw is not None:
                value.nvmlReturn = nvml.NVML_SUCCESS
                value.valueType = nvml.NVML_VALUE_TYPE_UNSIGNED_INT
                value.value.uiVal = gpu.instant_mw
            else:  # the call succeeds; the field says it is not supported
                value.nvmlReturn = nvml.NVML_ERROR_NOT_SUPPORTED
        return values

    @staticmethod
    def _answer(gpu: Gpu, value: int | None) -> int:
        if gpu.gone:
            raise nvml.NVMLError(nvml.NVML_ERROR_GPU_IS_LOST)
        if value is None:
            raise nvml.NVMLError(nvml.NVML_ERROR_NOT_SUPPORTED)
        return value


def sample(t: float, *readings) -> Sample:
    return Sample(t, 0.0, 1, 1, None, None, {}, {r.info.name: r for r in readings})


def test_each_gpu_gets_its_best_reading_counter_then_instant_power_then_averaged_power():
    driver = StandInDriver(
        Gpu("NVIDIA H100", energy_mj=9_000_000, instant_mw=350_000, power_mw=349_000),
        Gpu("Tesla P100", instant_mw=120_500, power_mw=118_000),  # no energy counter before Volta
        Gpu("GeForce GTX 1080", power_mw=95_000, old_driver=True),
    )
    sources, failed = nvml_sources(driver)
    assert failed == []
    assert [(s.info.name, s.mode, s.info.unit, s.info.update_s) for s in sources] == [
        ("nvml:0", "counter", "mJ", 0.1), ("nvml:1", "instant", "mW", 0.1), ("nvml:2", "average", "mW", 1.0)]
    assert [s.info.measures for s in sources] == [
        "GPU 0 (NVIDIA H100) board energy, from its cumulative energy counter",
        "GPU 1 (Tesla P100) board energy, from its instantaneous power field, integrated",
        "GPU 2 (GeForce GTX 1080) board energy, from its power reading (a 1 s average on recent GPUs), integrated"]
    assert all(s.info.label == "measured:nvml" and s.info.domain == "gpu" for s in sources)
    assert [s.info.detail["reading"] for s in sources] == [mode for mode, *_ in NVML_MODES]

    counter, instant, average = (s.read() for s in sources)
    assert counter.joules == 0.0 and counter.watts is None  # energy since the source was opened
    assert instant.watts == 120.5 and instant.joules is None
    assert average.watts == 95.0
    for source in sources:
        source.close()
    assert driver.inits == 0  # every nvmlInit has its nvmlShutdown


def test_gpu_energy_over_a_window_from_the_counter_and_from_integrated_power():
    volta, pascal = Gpu(energy_mj=1_000_000), Gpu("Tesla P100", instant_mw=100_000)
    driver = StandInDriver(volta, pascal)
    (counter, instant), _ = nvml_sources(driver)
    readings = []
    for t, joules_so_far, watts in [(0.0, 0, 100_000), (1.0, 250_000, 200_000), (2.0, 500_000, 200_000)]:
        volta.energy_mj, pascal.instant_mw = 1_000_000 + joules_so_far, watts
        readings.append(sample(t, replace(counter.read(), t=t), replace(instant.read(), t=t)))
    figure = energy_for_window(readings, 0.0, 2.0)
    # 250 J a second from the counter; 100 W rising to 200 W, then flat, integrated: 150 + 200 J.
    assert figure.breakdown == pytest.approx({"nvml:0": 500.0, "nvml:1": 350.0})
    assert figure.source_label == "measured:nvml" and not figure.approximate


def test_a_gpu_that_answers_nothing_is_listed_with_the_drivers_words_and_the_others_still_work():
    driver = StandInDriver(Gpu(energy_mj=5), Gpu("NVIDIA GRID vGPU", old_driver=True))
    sources, failed = nvml_sources(driver)
    assert [s.info.name for s in sources] == ["nvml:0"]
    [(name, reason)] = failed
    assert name == "nvml:1" and reason.startswith("GPU 1 cannot be read: Not Supported")
    sources[0].close()
    assert driver.inits == 0


def test_no_driver_and_no_gpu_are_said_plainly():
    assert nvml_sources(StandInDriver(loaded=False)) == (
        [], [("nvml", "NVML did not start: Driver Not Loaded (no NVIDIA driver or GPU)")])
    assert nvml_sources(StandInDriver()) == ([], [("nvml", "NVML found no NVIDIA GPU")])


@pytest.mark.parametrize("gpu", [Gpu(energy_mj=1), Gpu(instant_mw=1), Gpu(power_mw=1, old_driver=True)],
                         ids=["counter", "instant", "average"])
def test_a_gpu_lost_while_sampling_is_dropped_with_the_reason_and_sampling_goes_on(gpu):
    driver = StandInDriver(gpu)
    (source,), _ = nvml_sources(driver)
    gpu.gone = True
    with pytest.raises(SourceUnavailable, match="nvml:0 stopped answering: GPU is lost"):
        source.read()
    sampler = Sampler([source])
    assert sampler.sample_now().power == {}
    assert sampler.failures == [("nvml:0", "nvml:0 stopped answering: GPU is lost")]
    assert sampler.sources == []
    source.close()


@pytest.mark.parametrize("has_nvidia_smi", [True, False])
def test_a_gpu_machine_without_nvidia_ml_py_is_told_to_install_it_and_others_are_not(tmp_path, has_nvidia_smi):
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    if not has_nvidia_smi and shutil.which("nvidia-smi"):
        pytest.skip("this machine has a real nvidia-smi")
    if has_nvidia_smi:  # what the NVIDIA driver installs: nvidia-smi on the PATH
        (tmp_path / "nvidia-smi").write_text("#!/bin/sh\n")
        (tmp_path / "nvidia-smi").chmod(0o755)
    # A fresh interpreter where importing pynvml fails, as on an install without nvidia-ml-py.
    code = ("import sys; sys.modules['pynvml'] = None\n"
            "from app.telemetry import detect_sources\n"
            f"print(detect_sources(powercap_root={str(tmp_path / 'absent')!r}).fixable)")
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    expected = "[('nvml', 'nvidia-ml-py is not installed (pip install nvidia-ml-py)" if has_nvidia_smi else "[]"
    assert out.stdout.startswith(expected)


class FallsOffTheBus(StandInDriver):
    """A GPU that answers its detection (the reading probe and the starting count), then is lost."""

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: Gpu) -> int:
        value = super().nvmlDeviceGetTotalEnergyConsumption(gpu)
        self.reads = getattr(self, "reads", 0) + 1
        gpu.gone = self.reads >= 2
        return value


def with_a_gpu_that_will_be_lost(tdp_w=None, servers=()):
    """detect_sources() on this machine, plus an NVIDIA GPU that stops answering once sampling starts."""
    from app.telemetry.sources import detect_sources

    found = detect_sources(tdp_w)
    found.sources += nvml_sources(FallsOffTheBus(Gpu(energy_mj=1_000)))[0]
    return found
