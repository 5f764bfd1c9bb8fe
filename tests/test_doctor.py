"""`fastslow doctor`: the facts, each mismatch and its fix, the report, and the mismatch that
`compare` says up front.

The system's GPU tools are stand-in runners (their output as the real tools print it), llama.cpp's
build is a LlamaBuild written here, as tests/engines/test_offload.py does; the CLI tests at the end
ask this machine itself (no GPU, llama.cpp's CPU build).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import app.doctor as doctor
from app.doctor import (
    GpuProbe,
    Mismatch,
    MlxState,
    SystemGpu,
    as_dict,
    at_load,
    examine,
    format_report,
    mismatches,
    run_tool,
    system_gpus,
)
from app.engines.devices import Device, LlamaBuild
from app.engines.types import ModelInfo
from app.telemetry.sources import Detected

GIB = 1 << 30
# This machine's own GPU tools: the tests of "this machine" are of one without them.
GPU_TOOLS_HERE = any(shutil.which(t) for t in ("nvidia-smi", "rocm-smi", "vulkaninfo"))

# -- what the real tools print --------------------------------------------------------------------

NVIDIA_SMI = "NVIDIA GeForce RTX 4070, 12282 MiB, 550.54.14\n"
NVIDIA_SMI_NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                        "Make sure that the latest NVIDIA driver is installed and running.\n")
APPLE_M2 = json.dumps({"SPDisplaysDataType": [{
    "_name": "Apple M2 Pro", "sppci_model": "Apple M2 Pro", "spdisplays_vendor": "sppci_vendor_Apple",
    "sppci_cores": "19", "sppci_device_type": "spdisplays_gpu", "spdisplays_mtlgpufamilysupport": "spdisplays_metal3",
}]})
INTEL_MAC = json.dumps({"SPDisplaysDataType": [
    {"_name": "Intel UHD Graphics 630", "sppci_model": "Intel UHD Graphics 630",
     "spdisplays_vendor": "sppci_vendor_intel", "spdisplays_vram_shared": "1536 MB"},
    {"_name": "AMD Radeon Pro 5500M", "sppci_model": "AMD Radeon Pro 5500M",
     "spdisplays_vendor": "sppci_vendor_amd", "spdisplays_vram": "8 GB"},
]})
VULKANINFO = """\
==========
VULKANINFO
==========

Vulkan Instance Version: 1.3.239

Devices:
========
GPU0:
	apiVersion         = 1.3.246
	driverVersion      = 23.1.2
	vendorID           = 0x1002
	deviceID           = 0x744c
	deviceType         = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU
	deviceName         = AMD Radeon RX 7900 XTX (RADV NAVI31)
	driverID           = DRIVER_ID_MESA_RADV
	driverName         = radv
	driverInfo         = Mesa 23.1.2
GPU1:
	apiVersion         = 1.3.246
	vendorID           = 0x10005
	deviceType         = PHYSICAL_DEVICE_TYPE_CPU
	deviceName         = llvmpipe (LLVM 15.0.6, 256 bits)
	driverName         = llvmpipe
"""
VULKANINFO_NVIDIA = """\
Devices:
========
GPU0:
	vendorID           = 0x10de
	deviceType         = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU
	deviceName         = NVIDIA GeForce RTX 4070
	driverInfo         = 550.54.14
"""
VULKANINFO_INTEL = """\
GPU0:
	vendorID           = 0x8086
	deviceType         = PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU
	deviceName         = Intel(R) UHD Graphics 770 (ADL-S GT1)
GPU1:
	vendorID           = 0x8086
	deviceType         = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU
	deviceName         = Intel(R) Arc(tm) A770 Graphics (DG2)
"""
ROCM_SMI = """\
============================ ROCm System Management Interface ============================
====================================== Product Info ======================================
GPU[0]		: Card series: 		Radeon RX 7900 XTX
GPU[0]		: Card model: 		0x744c
GPU[0]		: Card vendor: 		Advanced Micro Devices, Inc. [AMD/ATI]
==========================================================================================
"""


class Tools:
    """A stand-in runner: each tool's output by name (absent: not installed), and what was asked."""

    def __init__(self, **outputs: str) -> None:
        self.outputs = {name if name == "system_profiler" else name.replace("_", "-"): text
                        for name, text in outputs.items()}
        self.asked: list[list[str]] = []

    def __call__(self, argv: list[str]) -> str | None:
        self.asked.append(argv)
        return self.outputs.get(argv[0])


# -- llama.cpp builds, as devices.llama_build() would report them ---------------------------------

CPU_DEVICE = Device("CPU", "AMD EPYC", "cpu", "CPU", 20 * GIB, 24 * GIB)
RTX_4070 = Device("CUDA0", "NVIDIA GeForce RTX 4070", "gpu", "CUDA", 11 * GIB, 12 * GIB)
M2_PRO = Device("Metal", "Apple M2 Pro", "igpu", "Metal", 24 * GIB, 32 * GIB)


def build(*backends: str, sees: tuple[Device, ...] = ()) -> LlamaBuild:
    return LlamaBuild("0.3.36", (*backends, "CPU"), (*sees, CPU_DEVICE), supports_offload=bool(backends))


CPU_BUILD = build()


def report(llama: LlamaBuild | None = CPU_BUILD, tools: Tools | None = None, system: str = "Linux",
           machine: str = "x86_64") -> doctor.Report:
    def broken() -> LlamaBuild:
        raise ImportError("No module named 'llama_cpp'")

    return examine(tools or Tools(), build=(lambda: llama) if llama else broken, energy=lambda: Detected(),
                   mlx=lambda: MlxState(False, False, note="MLX is not installed"), system=system, machine=machine)


# -- the system's GPUs ------------------------------------------------------------------------------


def test_nvidia_smi_reports_the_card_its_memory_and_driver():
    [gpu] = system_gpus(Tools(nvidia_smi=NVIDIA_SMI), "Linux")
    assert gpu == SystemGpu("NVIDIA GeForce RTX 4070", "nvidia", "nvidia-smi", 12282 << 20, "550.54.14")


def test_without_nvidia_smi_or_with_its_failure_no_gpu_is_reported():
    assert system_gpus(Tools(), "Linux") == ()
    assert system_gpus(Tools(nvidia_smi=NVIDIA_SMI_NO_DRIVER), "Linux") == ()


def test_linux_asks_the_vendor_tools_and_vulkan_never_system_profiler():
    tools = Tools()
    system_gpus(tools, "Linux")
    assert [a[0] for a in tools.asked] == ["nvidia-smi", "rocm-smi", "vulkaninfo"]
    assert tools.asked[0] == ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]


def test_a_mac_asks_system_profiler_for_apple_silicon():
    tools = Tools(system_profiler=APPLE_M2, nvidia_smi=NVIDIA_SMI)
    [gpu] = system_gpus(tools, "Darwin")
    assert tools.asked == [["system_profiler", "SPDisplaysDataType", "-json"]]
    assert (gpu.name, gpu.vendor, gpu.integrated, gpu.memory_bytes, gpu.driver) == (
        "Apple M2 Pro", "apple", True, None, "19 GPU cores")


def test_an_intel_mac_has_an_integrated_intel_and_a_discrete_amd():
    intel, amd = system_gpus(Tools(system_profiler=INTEL_MAC), "Darwin")
    assert (intel.vendor, intel.integrated) == ("intel", True)
    assert (amd.vendor, amd.integrated, amd.memory_bytes) == ("amd", False, 8 * GIB)


def test_system_profiler_output_that_is_not_json_is_no_gpu():
    assert system_gpus(Tools(system_profiler="system_profiler: error"), "Darwin") == ()


def test_vulkaninfo_reports_gpus_and_leaves_software_renderers_out():
    [gpu] = system_gpus(Tools(vulkaninfo=VULKANINFO), "Linux")
    assert (gpu.name, gpu.vendor, gpu.source, gpu.integrated, gpu.driver) == (
        "AMD Radeon RX 7900 XTX (RADV NAVI31)", "amd", "vulkaninfo", False, "Mesa 23.1.2")


def test_a_card_both_nvidia_smi_and_vulkaninfo_list_is_one_gpu_the_vendor_tools():
    [gpu] = system_gpus(Tools(nvidia_smi=NVIDIA_SMI, vulkaninfo=VULKANINFO_NVIDIA), "Linux")
    assert gpu.source == "nvidia-smi" and gpu.memory_bytes


def test_rocm_smi_reports_amd_cards():
    [gpu] = system_gpus(Tools(rocm_smi=ROCM_SMI, vulkaninfo=VULKANINFO), "Linux")
    assert (gpu.name, gpu.vendor, gpu.source) == ("AMD Radeon RX 7900 XTX", "amd", "rocm-smi")


# -- mismatches and their fixes ---------------------------------------------------------------------


def only(llama, tools, system="Linux", machine="x86_64") -> Mismatch:
    [mismatch] = mismatches(report(llama, tools, system, machine))
    return mismatch


def test_an_nvidia_card_and_a_cpu_build():
    m = only(CPU_BUILD, Tools(nvidia_smi=NVIDIA_SMI))
    assert m.line == ("an NVIDIA GeForce RTX 4070 is here but llama.cpp was built for the CPU: "
                      "run `make setup LLAMA_BACKEND=cuda`")


def test_an_amd_card_with_rocm_wants_hip_and_without_it_vulkan():
    assert only(CPU_BUILD, Tools(rocm_smi=ROCM_SMI)).line == (
        "an AMD Radeon RX 7900 XTX is here but llama.cpp was built for the CPU: run `make setup LLAMA_BACKEND=hip`")
    assert only(CPU_BUILD, Tools(vulkaninfo=VULKANINFO)).fix == "run `make setup LLAMA_BACKEND=vulkan`"


def test_an_amd_card_and_a_cuda_build():
    m = only(build("CUDA"), Tools(rocm_smi=ROCM_SMI))
    assert m.problem == "an AMD Radeon RX 7900 XTX is here but llama.cpp was built for CUDA"
    assert m.fix == "run `make setup LLAMA_BACKEND=hip`"


def test_a_discrete_gpu_only_vulkan_sees_wants_vulkan_and_an_integrated_one_is_left_alone():
    m = only(CPU_BUILD, Tools(vulkaninfo=VULKANINFO_INTEL))
    assert m.problem.startswith("an Intel(R) Arc(tm) A770 Graphics (DG2) is here") and m.fix.endswith("=vulkan`")
    integrated_only = VULKANINFO_INTEL.split("GPU1:")[0]
    assert mismatches(report(CPU_BUILD, Tools(vulkaninfo=integrated_only))) == []


def test_apple_silicon_and_a_build_without_metal():
    m = only(CPU_BUILD, Tools(system_profiler=APPLE_M2), "Darwin", "arm64")
    assert m.line == "an Apple M2 Pro is here but llama.cpp was built for the CPU: run `make setup LLAMA_BACKEND=metal`"


def test_apple_silicon_under_rosetta_says_to_use_an_arm64_python():
    m = only(CPU_BUILD, Tools(system_profiler=APPLE_M2), "Darwin", "x86_64")
    assert m.fix == ("this Python runs as x86_64 (under Rosetta): install an arm64 Python, then "
                     "run `make setup LLAMA_BACKEND=metal`")


def test_a_cuda_build_that_sees_no_gpu_though_nvidia_smi_shows_one():
    m = only(build("CUDA"), Tools(nvidia_smi=NVIDIA_SMI))
    assert m.problem == ("llama.cpp was built with CUDA but sees no GPU, though nvidia-smi reports "
                         "NVIDIA GeForce RTX 4070")
    assert m.fix == "check the driver answers (`nvidia-smi`), then run `make setup LLAMA_BACKEND=cuda` again"


def test_two_cards_alike_are_one_mismatch():
    two = "NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.14\n" * 2
    assert only(CPU_BUILD, Tools(nvidia_smi=two)).problem == (
        "2× NVIDIA H100 80GB HBM3 are here but llama.cpp was built for the CPU")


@pytest.mark.parametrize("llama, tools, system", [
    (build("CUDA", sees=(RTX_4070,)), Tools(nvidia_smi=NVIDIA_SMI), "Linux"),
    (build("Vulkan", sees=(RTX_4070,)), Tools(nvidia_smi=NVIDIA_SMI), "Linux"),  # Vulkan runs NVIDIA too
    (build("Metal", sees=(M2_PRO,)), Tools(system_profiler=APPLE_M2), "Darwin"),
    (CPU_BUILD, Tools(), "Linux"),  # no GPU: the CPU build is right
    (build("CUDA"), Tools(), "Linux"),  # a CUDA build on a machine without a GPU runs on its CPU
], ids=["cuda", "vulkan-on-nvidia", "metal", "cpu-only", "cuda-build-no-gpu"])
def test_a_build_that_fits_the_machine_has_no_mismatch(llama, tools, system):
    assert mismatches(report(llama, tools, system, "arm64" if system == "Darwin" else "x86_64")) == []


def test_llama_cpp_that_cannot_load_is_a_mismatch_set_up_fixes():
    r = report(None)
    assert r.llama is None and "No module named 'llama_cpp'" in r.llama_problem
    assert only(None, Tools()).fix == "run `make setup`"


def _info(engine: str, backends: tuple[str, ...], used: str = "CPU") -> ModelInfo:
    return ModelInfo(name="m", path="m.gguf", engine=engine, architecture="qwen3", n_params=1, quantization="Q4",
                     file_size=1, n_ctx=4096, n_ctx_train=4096, chat_template_source="gguf",
                     backends_available=backends, backend_used=used, n_gpu_layers_requested=None,
                     n_gpu_layers_offloaded=0, n_layers=28, n_threads=2, load_s=1.0, engine_version="0.3.36")


def test_at_load_judges_the_build_the_llama_panes_reported():
    nvidia = system_gpus(Tools(nvidia_smi=NVIDIA_SMI), "Linux")
    [m] = at_load([None, _info("llama.cpp", ("CPU",))], nvidia, "x86_64")  # a pane that did not load: None
    assert m.fix == "run `make setup LLAMA_BACKEND=cuda`"
    assert at_load([_info("mlx", ("CPU",))], nvidia, "x86_64") == []  # no llama.cpp pane: nothing to judge
    # A CUDA build whose pane ran on the CPU: its own placement says why (auto found no room, 0 was
    # asked…); the parent does not ask llama.cpp whether it saw the GPU.
    assert at_load([_info("llama.cpp", ("CUDA", "CPU"))], nvidia, "x86_64") == []


# -- the report ---------------------------------------------------------------------------------


def test_the_report_on_a_cpu_machine_says_the_build_no_gpu_and_no_mismatch():
    text = format_report(report())
    assert "llama.cpp: llama-cpp-python 0.3.36, built for the CPU only" in text
    assert "  backends compiled in: CPU" in text
    assert "    CPU      cpu   AMD EPYC (20.0 GiB free of 24.0 GiB)" in text
    assert "GPUs the system reports:\n  none (nvidia-smi, rocm-smi, vulkaninfo: not installed" in text
    assert "MLX: not installed — MLX is not installed" in text
    assert text.endswith("Mismatches: none — llama.cpp's build fits the GPUs this system reports")


def test_the_report_lists_the_gpus_the_energy_and_each_mismatch_with_its_fix():
    r = examine(Tools(nvidia_smi=NVIDIA_SMI), build=lambda: CPU_BUILD, mlx=lambda: MlxState(True, True, "0.26.1"),
                energy=lambda: Detected(unavailable=[("nvml", "nvidia-ml-py is not installed")],
                                        fixable=[("nvml", "nvidia-ml-py is not installed (pip install nvidia-ml-py)")]),
                system="Linux", machine="x86_64")
    text = format_report(r)
    assert "  NVIDIA GeForce RTX 4070 (nvidia-smi: 12.0 GiB, driver 550.54.14)" in text
    assert "MLX 0.26.1: on Metal" in text
    assert "  --   nvml             nvidia-ml-py is not installed" in text
    assert "  fix  nvml: nvidia-ml-py is not installed (pip install nvidia-ml-py)" in text
    assert text.endswith("Mismatches:\n"
                         "  ✗ an NVIDIA GeForce RTX 4070 is here but llama.cpp was built for the CPU\n"
                         "    fix: run `make setup LLAMA_BACKEND=cuda`")


def test_the_report_of_a_gpu_build_names_its_backends_and_devices():
    text = format_report(report(build("CUDA", sees=(RTX_4070,)), Tools(nvidia_smi=NVIDIA_SMI)))
    assert "built for CUDA" in text and "  backends compiled in: CUDA, CPU" in text
    assert "    CUDA0    gpu   NVIDIA GeForce RTX 4070 (11.0 GiB free of 12.0 GiB)" in text


def test_the_json_facts_parse_back_with_their_mismatches():
    facts = json.loads(json.dumps(as_dict(report(CPU_BUILD, Tools(nvidia_smi=NVIDIA_SMI)))))
    assert facts["llama"]["backends"] == ["CPU"] and facts["llama"]["supports_offload"] is False
    assert facts["system_gpus"][0]["name"] == "NVIDIA GeForce RTX 4070"
    assert facts["mismatches"] == [{"problem": "an NVIDIA GeForce RTX 4070 is here but llama.cpp was built for the CPU",
                                    "fix": "run `make setup LLAMA_BACKEND=cuda`"}]


# -- the real runner and the probe's cost -------------------------------------------------------------


def test_run_tool_gives_output_or_none_never_waits_past_its_timeout():
    assert run_tool([sys.executable, "-c", "print('hi')"]) == "hi\n"
    assert run_tool([sys.executable, "-c", "import sys; sys.exit(3)"]) is None
    assert run_tool(["fastslow-no-such-tool"]) is None
    started = time.perf_counter()
    assert run_tool([sys.executable, "-c", "import time; time.sleep(10)"], timeout_s=0.3) is None
    assert time.perf_counter() - started < 5


def test_the_gpu_probe_costs_a_comparison_at_most_its_wait():
    def slow(argv):
        time.sleep(3)
        return NVIDIA_SMI

    started = time.perf_counter()
    assert GpuProbe(slow).gpus(wait_s=0.3) == ()  # not in yet: the comparison goes on without it
    assert time.perf_counter() - started < 1.0
    assert GpuProbe(Tools(nvidia_smi=NVIDIA_SMI)).gpus(wait_s=5)[0].vendor == "nvidia"


@pytest.mark.skipif(GPU_TOOLS_HERE, reason="this machine has a GPU tool: the test is of a machine without one")
def test_without_gpu_tools_the_real_probe_starts_nothing_and_is_quick():
    started = time.perf_counter()
    assert system_gpus() == ()
    assert time.perf_counter() - started < 0.3


# -- the command ------------------------------------------------------------------------------------


def fastslow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.skipif(GPU_TOOLS_HERE, reason="this machine has a GPU tool: the test is of a machine without a GPU")
def test_fastslow_doctor_here_says_cpu_build_no_gpu_no_mismatch():
    out = fastslow("doctor")
    assert out.returncode == 0, out.stderr
    assert "built for the CPU only" in out.stdout and "  backends compiled in: CPU" in out.stdout
    assert "GPUs the system reports:\n  none" in out.stdout
    assert "Energy sources:\n  ok   " in out.stdout
    assert "Mismatches: none" in out.stdout
    facts = json.loads(fastslow("doctor", "--json").stdout)
    assert facts["llama"]["backends"] == ["CPU"] and facts["system_gpus"] == [] and facts["mismatches"] == []
    assert facts["energy"]["sources"]


def test_doctor_exits_0_with_mismatches_and_1_only_when_the_facts_cannot_be_read(monkeypatch, capsys):
    from app.cli import main

    monkeypatch.setattr(doctor, "examine", lambda: report(CPU_BUILD, Tools(nvidia_smi=NVIDIA_SMI)))
    assert main(["doctor", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mismatches"][0]["fix"] == "run `make setup LLAMA_BACKEND=cuda`"

    def unreadable():
        raise OSError("no /proc")

    monkeypatch.setattr(doctor, "examine", unreadable)
    assert main(["doctor"]) == 1
    assert "fastslow: doctor could not read this machine's facts: no /proc" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    assert "Exits 0 whenever the facts were read" in " ".join(capsys.readouterr().out.split())


@pytest.mark.model
def test_compare_says_a_mismatch_up_front(monkeypatch, capsys):
    from app.cli import main

    nvidia = system_gpus(Tools(nvidia_smi=NVIDIA_SMI), "Linux")
    monkeypatch.setattr(doctor, "system_gpus", lambda *args, **kwargs: nvidia)
    assert main(["compare", "Hi", "-m", "smollm2-135m", "--no-log", "--max-tokens", "4", "--temperature", "0"]) == 0
    err = capsys.readouterr().err
    assert ("fastslow: note: an NVIDIA GeForce RTX 4070 is here but llama.cpp was built for the CPU: "
            "run `make setup LLAMA_BACKEND=cuda`") in err.splitlines()
