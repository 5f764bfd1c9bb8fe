"""`fastslow doctor`: what this machine can run models on, and where the install does not match it.

The facts: llama.cpp's build (asked of llama.cpp itself, engines/devices.py), the GPUs the system
reports (nvidia-smi, system_profiler, vulkaninfo, rocm-smi, each only where it is installed), MLX on
Metal or not, and the energy sources (telemetry). A mismatch is a GPU that sits idle because of the
build (a CUDA card and a CPU build, an Apple GPU and a non-Metal build…), each with its one-line fix.

Every outside command goes through a runner (`Callable[[list[str]], str | None]`), so tests stand in
for the tools. Qt-free: the CLI prints this, the app's About dialog shows `fastslow doctor`'s text.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

from app import __version__
from app.engines.devices import Device, LlamaBuild, llama_build
from app.engines.mlx_engine import mlx_unavailable
from app.engines.types import ModelInfo
from app.telemetry.sources import Detected, detect_sources
from app.units import size_text

Runner = Callable[[list[str]], str | None]

# nvidia-smi can take a second or two to answer when the driver is not kept loaded (no persistence
# daemon); longer than this and the tool is stuck, and the doctor says what it has without it.
PROBE_TIMEOUT_S = 4.0
# What a comparison waits, after its models have loaded, for a GPU probe still running.
COMPARE_WAIT_S = 0.3

NVIDIA_SMI = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
SYSTEM_PROFILER = ["system_profiler", "SPDisplaysDataType", "-json"]
VULKANINFO = ["vulkaninfo", "--summary"]
ROCM_SMI = ["rocm-smi", "--showproductname"]

# Vulkan's PCI vendor ids.
_VULKAN_VENDORS = {0x10DE: "nvidia", 0x1002: "amd", 0x8086: "intel", 0x106B: "apple"}
# The ggml backends (as its registry names them) that can put layers on each vendor's GPUs.
_SERVED_BY = {
    "nvidia": {"cuda", "vulkan"},
    "amd": {"rocm", "hip", "vulkan", "metal"},  # Metal: an AMD card in an Intel Mac
    "intel": {"vulkan", "sycl", "metal"},
    "apple": {"metal"},
    "other": {"vulkan"},
}
# How to see whether a backend's driver answers, for a build that has the backend but sees no GPU.
_DRIVER_CHECK = {"cuda": "`nvidia-smi`", "rocm": "`rocm-smi`", "hip": "`rocm-smi`", "vulkan": "`vulkaninfo --summary`",
                 "metal": "`system_profiler SPDisplaysDataType`"}


@dataclass(frozen=True)
class SystemGpu:
    """A GPU as the system (not llama.cpp) reports it."""

    name: str  # "NVIDIA GeForce RTX 4070", "Apple M2 Pro"
    vendor: str  # "nvidia", "amd", "intel", "apple" or "other"
    source: str  # the tool that reported it: "nvidia-smi", "system_profiler", "vulkaninfo", "rocm-smi"
    memory_bytes: int | None = None  # its own memory; None when shared with the CPU or not said
    driver: str = ""
    integrated: bool = False  # shares the system's RAM (Apple Silicon, Intel UHD, AMD APUs)


@dataclass(frozen=True)
class MlxState:
    installed: bool
    metal: bool  # MLX runs on the GPU (Metal) here
    version: str = ""
    note: str = ""  # why not, and how to get it


@dataclass(frozen=True)
class EnergySource:
    name: str  # "rapl:package-0", "nvml:0", "tdp"
    label: str  # "measured:rapl", "estimated:tdp"
    measures: str


@dataclass(frozen=True)
class Energy:
    """What `fastslow telemetry` lists: the sources in use, those that are not (and why), and the
    ones the user can unlock (and how)."""

    sources: tuple[EnergySource, ...]
    unavailable: tuple[tuple[str, str], ...]
    fixable: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Report:
    """Everything `fastslow doctor` knows about this machine, read once."""

    fastslow: str
    system: str  # platform.system(): "Linux", "Darwin", "Windows"
    machine: str  # platform.machine(): "x86_64", "arm64"
    python: str
    llama: LlamaBuild | None  # None: llama.cpp could not be loaded (llama_problem says why)
    llama_problem: str
    gpu_tools: tuple[str, ...]  # the tools asked for the system's GPUs on this platform
    system_gpus: tuple[SystemGpu, ...]
    mlx: MlxState
    energy: Energy


@dataclass(frozen=True)
class Mismatch:
    problem: str  # what is wrong, in a clause: "an NVIDIA … is here but llama.cpp was built for the CPU"
    fix: str  # one line naming the command: "run `make setup LLAMA_BACKEND=cuda`"

    @property
    def line(self) -> str:
        return f"{self.problem}: {self.fix}"


# -- the facts -------------------------------------------------------------------------------------


def run_tool(argv: list[str], timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """A tool's standard output, or None when it is not installed, fails, or takes too long."""
    if shutil.which(argv[0]) is None:  # not installed: nothing started, no time spent
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL, errors="replace")
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _gpu_commands(system: str) -> list[list[str]]:
    # On a Mac system_profiler knows every GPU; elsewhere the vendor tools first (they know memory
    # and driver), then Vulkan for the GPUs no vendor tool is installed for.
    return [SYSTEM_PROFILER] if system == "Darwin" else [NVIDIA_SMI, ROCM_SMI, VULKANINFO]


def system_gpus(runner: Runner = run_tool, system: str | None = None) -> tuple[SystemGpu, ...]:
    """The GPUs the system's own tools report, one entry per GPU (a card that nvidia-smi and
    vulkaninfo both list is the vendor tool's)."""
    parsers = {"nvidia-smi": parse_nvidia_smi, "system_profiler": parse_system_profiler,
               "vulkaninfo": parse_vulkaninfo, "rocm-smi": parse_rocm_smi}
    found: list[SystemGpu] = []
    for command in _gpu_commands(system or platform.system()):
        text = runner(command)
        if not text:
            continue
        vendors_known = {g.vendor for g in found}
        found += [g for g in parsers[command[0]](text) if g.vendor not in vendors_known]
    return tuple(found)


def parse_nvidia_smi(text: str) -> list[SystemGpu]:
    """`NVIDIA GeForce RTX 4070, 12282 MiB, 550.54.14` a line."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not parts[0]:
            continue  # not a GPU line (nvidia-smi writes its failures to stdout too)
        memory = re.match(r"(\d+)\s*MiB", parts[1])
        gpus.append(SystemGpu(parts[0], "nvidia", "nvidia-smi",
                              int(memory.group(1)) << 20 if memory else None, parts[2]))
    return gpus


def parse_system_profiler(text: str) -> list[SystemGpu]:
    """macOS's SPDisplaysDataType as JSON: Apple Silicon's GPU, or an Intel Mac's Intel/AMD ones."""
    try:
        items = json.loads(text).get("SPDisplaysDataType") or []
    except (ValueError, AttributeError):
        return []
    gpus = []
    for item in items:
        if not isinstance(item, dict):
            continue
        name = str(item.get("sppci_model") or item.get("_name") or "").strip()
        if not name:
            continue
        vendor = _vendor(str(item.get("spdisplays_vendor", "")).lower().replace("sppci_vendor_", "") + " " + name)
        vram = _size(str(item.get("spdisplays_vram") or ""))  # absent on Apple Silicon: memory is unified
        cores = item.get("sppci_cores")
        gpus.append(SystemGpu(name, vendor, "system_profiler", vram, f"{cores} GPU cores" if cores else "",
                              integrated=vendor in ("apple", "intel") or vram is None))
    return gpus


def parse_vulkaninfo(text: str) -> list[SystemGpu]:
    """`vulkaninfo --summary`'s GPU blocks; software renderers (llvmpipe, a CPU) are left out."""
    gpus, block = [], None
    for line in text.splitlines():
        if re.match(r"^GPU\d+:", line.strip()):
            block = {}
            gpus.append(block)
        elif block is not None and (field := re.match(r"^\s*(\w+)\s*=\s*(.*?)\s*$", line)):
            block[field.group(1)] = field.group(2)
    found = []
    for b in gpus:
        kind = b.get("deviceType", "")
        if "CPU" in kind or not b.get("deviceName"):
            continue
        try:
            vendor = _VULKAN_VENDORS.get(int(b.get("vendorID", "0"), 0), "")
        except ValueError:
            vendor = ""
        found.append(SystemGpu(b["deviceName"], vendor or _vendor(b["deviceName"]), "vulkaninfo", None,
                               b.get("driverInfo") or b.get("driverName", ""), integrated="INTEGRATED" in kind))
    return found


def parse_rocm_smi(text: str) -> list[SystemGpu]:
    """`GPU[0] : Card series: Radeon RX 7900 XTX` (older rocm-smi: "Card Series"; else the model)."""
    names: dict[str, str] = {}
    for gpu, key, value in re.findall(r"GPU\[(\d+)\]\s*:\s*Card (series|model)\s*:\s*(.+)", text, re.IGNORECASE):
        if key.lower() == "series" or gpu not in names:
            names[gpu] = value.strip()
    return [SystemGpu(name if name.upper().startswith("AMD") else f"AMD {name}", "amd", "rocm-smi")
            for _, name in sorted(names.items())]


def _vendor(text: str) -> str:
    low = text.lower()
    for vendor, words in (("nvidia", ("nvidia", "geforce", "quadro", "tesla")), ("amd", ("amd", "radeon", "ati ")),
                          ("apple", ("apple",)), ("intel", ("intel",))):
        if any(w in low for w in words):
            return vendor
    return "other"


def _size(text: str) -> int | None:
    found = re.match(r"\s*(\d+)\s*(GB|MB)", text)
    return int(found.group(1)) << (30 if found.group(2) == "GB" else 20) if found else None


def mlx_state() -> MlxState:
    """MLX installed, and on Metal or not. mlx is imported only here and only when installed (on
    Linux it usually is not)."""
    if missing := mlx_unavailable():
        return MlxState(False, False, note=missing)
    try:
        import mlx.core as mx

        metal = bool(mx.metal.is_available())
        why = "" if metal else ("this MLX has no Metal device" if platform.system() == "Darwin"
                                else "MLX's GPU backend, Metal, is on Apple Silicon only")
        return MlxState(True, metal, getattr(mx, "__version__", "?"), why)
    except Exception as exc:  # noqa: BLE001 — a broken MLX install is a fact to report, not a crash
        return MlxState(True, False, note=f"mlx is installed but does not load: {exc}")


def energy_facts(detect: Callable[[], Detected] = detect_sources) -> Energy:
    found = detect()
    try:
        return Energy(
            sources=tuple(EnergySource(s.info.name, s.info.label, s.info.measures) for s in found.sources),
            unavailable=tuple(tuple(u) for u in found.unavailable),
            fixable=tuple(tuple(f) for f in found.fixable),
        )
    finally:
        found.close()


def examine(runner: Runner = run_tool, *, build: Callable[[], LlamaBuild] = llama_build,
            energy: Callable[[], Detected] = detect_sources, mlx: Callable[[], MlxState] = mlx_state,
            system: str | None = None, machine: str | None = None) -> Report:
    """Read every fact once; each reader is injectable (tests stand in for llama.cpp and the tools)."""
    system = system or platform.system()
    llama, problem = None, ""
    try:
        llama = build()
    except Exception as exc:  # noqa: BLE001 — a missing or broken llama.cpp is itself the finding
        problem = f"{type(exc).__name__}: {exc}"
    return Report(
        fastslow=__version__,
        system=system,
        machine=machine or platform.machine(),
        python=platform.python_version(),
        llama=llama,
        llama_problem=problem,
        gpu_tools=tuple(cmd[0] for cmd in _gpu_commands(system)),
        system_gpus=system_gpus(runner, system),
        mlx=mlx(),
        energy=energy_facts(energy),
    )


# -- the mismatches --------------------------------------------------------------------------------


def mismatches(report: Report) -> list[Mismatch]:
    """Every way llama.cpp's build leaves a GPU here idle, each with its fix."""
    if report.llama is None:
        return [Mismatch(f"llama.cpp cannot be loaded ({report.llama_problem})", "run `make setup`")]
    return gpu_mismatches(report.llama.backends, report.llama.gpus, report.system_gpus, report.machine)


def at_load(infos: Sequence[ModelInfo], gpus: Sequence[SystemGpu], machine: str | None = None) -> list[Mismatch]:
    """The mismatches a comparison says up front, from what its loaded llama.cpp panes reported:
    the parent never loads llama.cpp itself (on a CUDA machine that would hold GPU memory the
    workers' offload plans count on). Whether llama.cpp sees the GPU is not judged here: the pane's
    placement says where it ran."""
    llama = [i for i in infos if i is not None and i.engine == "llama.cpp"]
    if not llama:
        return []
    return gpu_mismatches(llama[0].backends_available, None, gpus, machine or platform.machine())


def gpu_mismatches(backends: Sequence[str], seen: Sequence[Device] | None, gpus: Sequence[SystemGpu],
                   machine: str) -> list[Mismatch]:
    """backends: compiled into llama.cpp; seen: the GPUs it sees (None: not known); gpus: the system's."""
    have = {b.lower() for b in backends}
    built = " and ".join(b for b in backends if b.upper() != "CPU") or "the CPU"
    found: list[Mismatch] = []
    # An integrated GPU other than Apple's is not flagged: through Vulkan it is seldom faster than the CPU.
    for vendor, group in _by_vendor(g for g in gpus if g.vendor == "apple" or not g.integrated):
        first, wanted = group[0], _wanted_backend(group[0])
        here = f"{_article(first.name)} {first.name} is" if len(group) == 1 else f"{len(group)}× {first.name} are"
        if not have & _SERVED_BY[vendor]:
            fix = f"run `make setup LLAMA_BACKEND={wanted}`"
            if vendor == "apple" and machine not in ("arm64", "aarch64"):
                fix = f"this Python runs as {machine} (under Rosetta): install an arm64 Python, then {fix}"
            found.append(Mismatch(f"{here} here but llama.cpp was built for {built}", fix))
        elif seen is not None and not seen:
            backend = sorted(have & _SERVED_BY[vendor])[0]
            check = _DRIVER_CHECK.get(backend, "its driver")
            found.append(Mismatch(
                f"llama.cpp was built with {built} but sees no GPU, though {first.source} reports {first.name}",
                f"check the driver answers ({check}), then run `make setup LLAMA_BACKEND={wanted}` again"))
    return found


def _by_vendor(gpus) -> list[tuple[str, list[SystemGpu]]]:
    groups: dict[str, list[SystemGpu]] = {}
    for g in gpus:
        groups.setdefault(g.vendor, []).append(g)
    return list(groups.items())


def _wanted_backend(gpu: SystemGpu) -> str:
    """The LLAMA_BACKEND for this GPU: Metal on a Mac; CUDA for NVIDIA; HIP for AMD where ROCm
    (its rocm-smi) is installed; else Vulkan, which every other GPU with a Vulkan driver takes."""
    if gpu.source == "system_profiler":
        return "metal"
    return {"nvidia": "cuda", "apple": "metal"}.get(gpu.vendor) or ("hip" if gpu.source == "rocm-smi" else "vulkan")


def _article(name: str) -> str:
    # Said as letters: "an NVIDIA", "an AMD", "an RTX"; else by the first letter.
    return "an" if name[:1].upper() in "AEIOU" or name.upper().startswith(("NVIDIA", "RTX")) else "a"


# -- for a comparison: the system's GPUs, read while its models load --------------------------------


class GpuProbe:
    """system_gpus() on a thread of its own, started before a comparison loads its models, so the
    tools' answers cost it nothing; `gpus()` waits at most `wait_s` more for them."""

    def __init__(self, runner: Runner = run_tool) -> None:
        self._gpus: tuple[SystemGpu, ...] = ()
        self._thread = threading.Thread(target=self._probe, args=(runner,), name="gpu-probe", daemon=True)
        self._thread.start()

    def _probe(self, runner: Runner) -> None:
        try:
            self._gpus = system_gpus(runner)
        except Exception:  # noqa: BLE001 — a probe that fails says nothing; the comparison goes on
            self._gpus = ()

    def gpus(self, wait_s: float = COMPARE_WAIT_S) -> tuple[SystemGpu, ...]:
        self._thread.join(wait_s)
        return self._gpus


# -- for people and programs -----------------------------------------------------------------------


def as_dict(report: Report) -> dict:
    """The facts and the mismatches, as `fastslow doctor --json` prints them."""
    return {**dataclasses.asdict(report), "mismatches": [dataclasses.asdict(m) for m in mismatches(report)]}


def format_report(report: Report) -> str:
    lines = [f"FastSlow {report.fastslow} · {report.system} {report.machine} · Python {report.python}", ""]
    lines += _llama_lines(report)
    lines.append("GPUs the system reports:")
    if report.system_gpus:
        for g in report.system_gpus:
            extra = ", ".join(x for x in (size_text(g.memory_bytes) if g.memory_bytes else "",
                                          "shares RAM" if g.integrated else "", g.driver and f"driver {g.driver}") if x)
            lines.append(f"  {g.name} ({g.source}{': ' + extra if extra else ''})")
    else:
        lines.append(f"  none ({', '.join(report.gpu_tools)}: not installed, or no GPU to report)")
    m = report.mlx
    lines.append(f"MLX {m.version}: on Metal" if m.metal else f"MLX {m.version}: on the CPU ({m.note})"
                 if m.installed else f"MLX: not installed — {m.note}")
    lines.append("Energy sources:")
    lines += [f"  ok   {s.name:16} {s.label:14} {s.measures}" for s in report.energy.sources]
    lines += [f"  --   {name:16} {reason}" for name, reason in report.energy.unavailable]
    lines += [f"  fix  {name}: {reason}" for name, reason in report.energy.fixable]
    found = mismatches(report)
    lines.append("Mismatches:" if found else "Mismatches: none — llama.cpp's build fits the GPUs this system reports")
    for mismatch in found:
        lines += [f"  ✗ {mismatch.problem}", f"    fix: {mismatch.fix}"]
    return "\n".join(lines)


def _llama_lines(report: Report) -> list[str]:
    llama = report.llama
    if llama is None:
        return [f"llama.cpp: cannot be loaded — {report.llama_problem}"]
    built = ", ".join(llama.gpu_backends) or "the CPU only"
    lines = [f"llama.cpp: llama-cpp-python {llama.version}, built for {built}",
             f"  backends compiled in: {', '.join(llama.backends) or '—'}",
             "  devices it sees:" if llama.devices else "  devices it sees: none listed"]
    for d in llama.devices:
        memory = f"{size_text(d.free_bytes)} free of {size_text(d.total_bytes)}" if d.total_bytes else "memory not said"
        lines.append(f"    {d.name:8} {d.kind:5} {d.description} ({memory})")
    return lines


def report_text() -> str:
    """`fastslow doctor`'s text, read now: what the app's About dialog shows."""
    return format_report(examine())
