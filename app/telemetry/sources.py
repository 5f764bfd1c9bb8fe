"""Where watts and joules come from: RAPL, NVML, or an estimate from CPU use and the CPU's TDP.

Every source says what it measures, in what unit, and whether the figure is measured or estimated,
so no energy number is ever shown without its origin. `detect_sources()` returns the sources that
work on this machine and, for each one that does not, the reason in a sentence the user can act on.
"""

from __future__ import annotations

import platform
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import psutil

POWERCAP_ROOT = "/sys/class/powercap"

RAPL_PERMISSION_HINT = (
    "RAPL energy counters are readable by root only (Linux restricted them in 2020, CVE-2020-8694). "
    "On a single-user machine, grant read access until the next reboot with "
    "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj`, or for good with a udev rule in "
    "/etc/udev/rules.d/99-rapl.rules: "
    'ACTION=="add", SUBSYSTEM=="powercap", KERNEL=="intel-rapl:*", RUN+="/bin/chmod o+r /sys%p/energy_uj"'
)

NOT_INSTALLED = "is not installed"  # how a reason says a package is missing

TDP_FORMULA = "P = TDP × CPU utilisation (busy share of all logical CPUs over the sample interval)"

# Documented guesses when the user has not set a TDP. The estimate is labelled estimated:tdp
# whatever the TDP, so a wrong guess misleads in size, never in kind.
DEFAULT_TDP_W = {
    "apple-silicon": 20.0,  # M-series CPU clusters peak near 20 W under full load (base chips)
    "laptop": 28.0,  # between U-series (15 W) and H-series (45 W) mobile parts
    "desktop": 65.0,  # the most common desktop TDP (Intel non-K, AMD non-X)
    "server": 5.0,  # per visible physical core: EPYC/Xeon run 4-7 W a core at TDP; VMs see a slice
}
_SERVER = re.compile(r"\b(EPYC|Xeon|Threadripper|Opteron)\b|Neoverse|Graviton|Ampere", re.IGNORECASE)
# Intel mobile suffixes (U, P, H, Y; G1-G7 on Ice/Tiger Lake) and AMD's U, HS, H.
_LAPTOP = re.compile(r"Mobile|\b(i[3579]|Ultra \d)[- ]\d{3,5}([UPHY]|G\d)\b|\bRyzen .*\d{4}(U|HS|H)\b", re.IGNORECASE)


class SourceUnavailable(Exception):
    """A source cannot be read; the message says why and, where there is one, what to do."""


@dataclass(frozen=True)
class SourceInfo:
    """What a source measures, so every figure derived from it can carry its origin."""

    name: str  # unique per source, e.g. "rapl:package-0", "nvml:0", "tdp"
    label: str  # "measured:rapl", "measured:nvml", "estimated:tdp"
    domain: str  # "cpu" or "gpu": sources of one domain measure the same hardware (see energy.py)
    measures: str  # a sentence: which hardware, and how
    unit: str  # the unit the hardware reports in
    update_s: float  # how often the underlying sensor refreshes; shorter windows are approximate
    detail: dict = field(default_factory=dict, compare=False)  # e.g. the TDP and formula of an estimate

    @property
    def measured(self) -> bool:
        return self.label.startswith("measured:")


@dataclass(frozen=True)
class Reading:
    """One read of one source at time t (perf_counter).

    joules: cumulative energy since the source was opened, wrap-around corrected (counter sources);
    watts: instantaneous power (sources that only report power). At least one is set.
    """

    info: SourceInfo
    t: float
    joules: float | None = None
    watts: float | None = None


class PowerSource(Protocol):
    info: SourceInfo

    def read(self) -> Reading:
        """Read now; raises SourceUnavailable if the source stopped working."""
        ...

    def close(self) -> None: ...


# -- RAPL (Linux powercap) -----------------------------------------------------------------------


class RaplSource:
    """One RAPL zone (a CPU package) through powercap's energy_uj counter, in microjoules.

    The counter wraps at max_energy_range_uj (about 262 kJ: minutes at full load on a big CPU), so
    it must be read more often than that; the sampler reads it ten times a second.
    """

    def __init__(self, zone: str | Path, domain: str = "cpu") -> None:
        self.zone = Path(zone)
        self._energy_path = self.zone / "energy_uj"
        name = _read_text(self.zone / "name", self.zone)
        if domain == "dram":  # one DRAM sub-zone per package: named after its package
            name = f"dram-{self.zone.name.split(':')[1]}"
        max_text = _read_text(self.zone / "max_energy_range_uj", self.zone)
        if not max_text.isdigit() or int(max_text) == 0:
            raise SourceUnavailable(f"RAPL zone {self.zone} has no usable max_energy_range_uj ({max_text!r})")
        self.max_uj = int(max_text)
        self.info = SourceInfo(
            name=f"rapl:{name}",
            label="measured:rapl",
            domain=domain,
            measures=f"{'memory' if domain == 'dram' else 'CPU'} energy of RAPL zone {name} ({self.zone.name}), "
                     "from its cumulative counter",
            unit="µJ",
            update_s=0.001,  # RAPL updates about every millisecond
            detail={"zone": str(self.zone)},
        )
        self._last_uj = self._read_uj()  # also the permission check: a real open and read
        self._total_uj = 0

    def _read_uj(self) -> int:
        try:
            return int(self._energy_path.read_text())
        except PermissionError as exc:
            raise SourceUnavailable(f"{self._energy_path}: permission denied. {RAPL_PERMISSION_HINT}") from exc
        except (OSError, ValueError) as exc:
            raise SourceUnavailable(f"{self._energy_path} cannot be read as a counter: {exc}") from exc

    def read(self) -> Reading:
        t = time.perf_counter()
        uj = self._read_uj()
        self._total_uj += counter_delta(self._last_uj, uj, self.max_uj)
        self._last_uj = uj
        return Reading(self.info, t, joules=self._total_uj / 1e6)

    def close(self) -> None:
        pass


def counter_delta(previous: int, current: int, max_range: int) -> int:
    """Increase of a counter that wraps to 0 after max_range (at most one wrap between reads)."""
    if current >= previous:
        return current - previous
    return max_range - previous + current


def rapl_sources(root: str | Path = POWERCAP_ROOT) -> tuple[list[RaplSource], list[tuple[str, str]]]:
    """The readable RAPL package zones under root, and (zone, reason) for those that are not."""
    root = Path(root)
    if not root.is_dir():
        return [], [("rapl", f"{root} does not exist: no powercap interface (not Linux, or a VM without RAPL)")]
    # Top-level zones only ("intel-rapl:0", not the sub-zone "intel-rapl:0:0", which the package
    # already contains). AMD CPUs appear under the same intel-rapl driver and layout.
    # The MSR zones go first, so an MMIO zone repeating one of them is the one left out.
    zones = [p for p in root.iterdir() if re.fullmatch(r"[\w-]*rapl[\w-]*:\d+", p.name)]
    zones.sort(key=lambda p: ("mmio" in p.name, p.name))
    if not zones:
        return [], [("rapl", f"no RAPL zones under {root}")]
    sources: list[RaplSource] = []
    failed: list[tuple[str, str]] = []
    names: set[str] = set()
    for zone in zones:
        try:
            source = RaplSource(zone)
        except SourceUnavailable as exc:
            failed.append((f"rapl:{zone.name}", str(exc)))
            continue
        if source.info.name == "rapl:psys":
            failed.append((source.info.name, "psys covers the whole platform and overlaps the packages; not used"))
        elif source.info.name in names:  # intel-rapl-mmio repeats package-0 on some laptops
            failed.append((f"rapl:{zone.name}", f"duplicate of {source.info.name}; not counted twice"))
        else:
            names.add(source.info.name)
            sources.append(source)
    # DRAM sub-zones (servers): memory energy that the package counter does not include, so it is
    # a domain of its own and adds up. Core and uncore sub-zones are inside the package: left out.
    for zone in sorted(p for p in root.iterdir() if re.fullmatch(r"[\w-]*rapl[\w-]*:\d+:\d+", p.name)):
        if "mmio" in zone.name or _quiet_name(zone) != "dram":
            continue
        try:
            sources.append(RaplSource(zone, domain="dram"))
        except SourceUnavailable as exc:
            failed.append((f"rapl:{zone.name}", str(exc)))
    return sources, failed


def _quiet_name(zone: Path) -> str | None:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return None


def _read_text(path: Path, zone: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise SourceUnavailable(f"RAPL zone {zone} is incomplete: {exc}") from exc


# -- NVIDIA (NVML) -------------------------------------------------------------------------------

# How an NVIDIA GPU's energy is read, best first: (mode, unit, sensor update in s, how, in words).
# The energy counter (Volta and newer) refreshes every few tens of ms. NVML does not document how
# often the instantaneous power field refreshes; 0.1 s is our assumption. The plain power reading is
# a 1 s average on Ampere and newer (NVML's nvmlDeviceGetPowerUsage docs), instantaneous before.
NVML_MODES = (
    ("counter", "mJ", 0.1, "its cumulative energy counter"),
    ("instant", "mW", 0.1, "its instantaneous power field, integrated"),
    ("average", "mW", 1.0, "its power reading (a 1 s average on recent GPUs), integrated"),
)
# c_nvmlValue_t's member for each NVML_VALUE_TYPE_* (0 double, 1 unsigned int, ... 6 unsigned short).
_NVML_VALUE_MEMBERS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")


class NvmlSource:
    """One NVIDIA GPU's board energy, from the best reading it offers (NVML_MODES, in order)."""

    def __init__(self, pynvml, index: int) -> None:
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(self._handle)
        name = name.decode(errors="replace") if isinstance(name, bytes) else name
        self._readers = {"counter": self._energy_mj, "instant": self._instant_mw, "average": self._average_mw}
        self.mode, unit, update_s, how = self._first_mode_that_answers()
        self.info = SourceInfo(
            name=f"nvml:{index}",
            label="measured:nvml",
            domain="gpu",
            measures=f"GPU {index} ({name}) board energy, from {how}",
            unit=unit,
            update_s=update_s,
            detail={"gpu": name, "index": index, "reading": self.mode},
        )
        self._start_mj = self._energy_mj() if self.mode == "counter" else 0

    def _first_mode_that_answers(self) -> tuple[str, str, float, str]:
        for mode in NVML_MODES:
            try:
                self._readers[mode[0]]()
                return mode
            except self._nvml.NVMLError as exc:  # not on this GPU or driver: try the next
                error = exc
        raise error  # not even its power: nvml_sources() lists the GPU as unreadable, with this error

    def _energy_mj(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def _instant_mw(self) -> float:
        [field] = self._nvml.nvmlDeviceGetFieldValues(self._handle, [self._nvml.NVML_FI_DEV_POWER_INSTANT])
        if field.nvmlReturn != self._nvml.NVML_SUCCESS:  # the call succeeds; each field has its own status
            raise self._nvml.NVMLError(field.nvmlReturn)
        return float(getattr(field.value, _NVML_VALUE_MEMBERS[field.valueType]))

    def _average_mw(self) -> float:
        return float(self._nvml.nvmlDeviceGetPowerUsage(self._handle))

    def read(self) -> Reading:
        t = time.perf_counter()
        try:
            value = self._readers[self.mode]()
        except self._nvml.NVMLError as exc:
            raise SourceUnavailable(f"{self.info.name} stopped answering: {exc}") from exc
        if self.mode == "counter":
            return Reading(self.info, t, joules=(value - self._start_mj) / 1e3)
        return Reading(self.info, t, watts=value / 1e3)

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()  # NVML counts inits; each source took one
        except self._nvml.NVMLError:
            pass


def nvml_sources(pynvml=None) -> tuple[list[NvmlSource], list[tuple[str, str]]]:
    """A source per NVIDIA GPU, or the reason there is none.

    pynvml: the NVML binding; None imports nvidia-ml-py's.
    """
    if pynvml is None:
        try:
            import pynvml
        except ImportError:
            return [], [("nvml", f"nvidia-ml-py {NOT_INSTALLED} (pip install nvidia-ml-py) — needed for NVIDIA GPUs")]
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as exc:
        return [], [("nvml", f"NVML did not start: {exc} (no NVIDIA driver or GPU)")]
    sources: list[NvmlSource] = []
    failed: list[tuple[str, str]] = []
    for index in range(count):
        try:
            pynvml.nvmlInit()  # one reference per source, released by its close()
            sources.append(NvmlSource(pynvml, index))
        except pynvml.NVMLError as exc:
            failed.append((f"nvml:{index}", f"GPU {index} cannot be read: {exc}"))
            pynvml.nvmlShutdown()
    pynvml.nvmlShutdown()  # the reference taken to count the GPUs
    if count == 0:
        failed.append(("nvml", "NVML found no NVIDIA GPU"))
    return sources, failed


# -- Apple Silicon ----------------------------------------------------------------------------------


# -- Apple Silicon (IOReport, through zeus-apple-silicon) -----------------------------------------
#
# zeus-apple-silicon rather than macmon: it is a pip-installable Python binding (wheels for macOS
# arm64) over the same IOReport energy counters, needs no sudo and no separate binary, and is
# maintained by the Zeus energy-measurement project; macmon is a Rust CLI to parse the output of.

# Each IOReport channel we read, as (attribute of AppleEnergyMetrics, domain, what it covers).
IOREPORT_CHANNELS = (
    ("cpu_total_mj", "cpu", "CPU clusters"),
    ("gpu_mj", "gpu", "GPU"),
    ("ane_mj", "ane", "Neural Engine"),
    ("dram_mj", "dram", "DRAM"),
)


class OncePerTick:
    """One read of a device shared by its channel sources (IOReport, EMI): the first channel read in
    a sampler tick asks the device, the others within 5 ms get the same answer, so the channels
    are sampled at one instant and the device is asked once."""

    def __init__(self, read: Callable[[], object]) -> None:
        self._read = read
        self._last: tuple[float, object] | None = None

    def value(self) -> object:
        now = time.perf_counter()
        if self._last is None or now - self._last[0] > 0.005:
            self._last = (now, self._read())
        return self._last[1]


class IOReportSource:
    """One IOReport energy channel of an Apple Silicon chip (cumulative mJ, no sudo)."""

    def __init__(self, reader: OncePerTick, attribute: str, domain: str, covers: str) -> None:
        self._reader, self._attribute = reader, attribute
        self.info = SourceInfo(
            name=f"ioreport:{domain}",
            label="measured:ioreport",
            domain=domain,
            measures=f"{covers} energy of this Apple Silicon chip, from IOReport's cumulative counter",
            unit="mJ",
            update_s=0.01,
            detail={"channel": attribute},
        )
        self._start_mj = self._read_mj()

    def _read_mj(self) -> float:
        try:
            value = _channel(self._reader.value(), self._attribute)
        except Exception as exc:  # the binding raises its own types
            raise SourceUnavailable(f"{self.info.name} stopped answering: {exc}") from exc
        if value is None:
            raise SourceUnavailable(f"{self.info.name}: this chip does not report the {self._attribute} channel")
        return float(value)

    def read(self) -> Reading:
        t = time.perf_counter()
        return Reading(self.info, t, joules=(self._read_mj() - self._start_mj) / 1e3)

    def close(self) -> None:
        pass


def _channel(metrics: object, attribute: str) -> float | None:
    # zeus-apple-silicon before 1.0.3 called the CPU total "cpu_mj".
    value = getattr(metrics, attribute, None)
    if value is None and attribute == "cpu_total_mj":
        value = getattr(metrics, "cpu_mj", None)
    return value


def ioreport_sources(monitor=None) -> tuple[list[IOReportSource], list[tuple[str, str]]]:
    """A source per IOReport channel this chip reports, or the reason there is none.

    monitor: an AppleEnergyMonitor; None makes one (on Apple Silicon with zeus-apple-silicon).
    """
    if monitor is None:
        if not (platform.system() == "Darwin" and platform.machine() == "arm64"):
            return [], [("ioreport", "not an Apple Silicon Mac")]
        try:
            from zeus_apple_silicon import AppleEnergyMonitor
        except ImportError:
            return [], [("ioreport", f"zeus-apple-silicon {NOT_INSTALLED} (pip install 'fastslow[apple]') — "
                                     "needed for measured energy on Apple Silicon; energy is estimated")]
        try:
            monitor = AppleEnergyMonitor()
        except Exception as exc:
            return [], [("ioreport", f"IOReport did not start: {exc}")]
    reader = OncePerTick(monitor.get_cumulative_energy)
    sources, failed = [], []
    for attribute, domain, covers in IOREPORT_CHANNELS:
        try:
            sources.append(IOReportSource(reader, attribute, domain, covers))
        except SourceUnavailable as exc:
            failed.append((f"ioreport:{domain}", str(exc)))
    return sources, failed


# -- Estimate from CPU use and TDP -------------------------------------------------------------


def tdp_watts(tdp_w: float, utilisation: float) -> float:
    """The estimate's formula (CodeCarbon's CPU-load approach): TDP scaled by how busy the CPU is."""
    return tdp_w * min(max(utilisation, 0.0), 1.0)


def cpu_class(model_name: str, system: str, machine: str, has_battery: bool) -> str:
    """Which DEFAULT_TDP_W guess fits this CPU."""
    if system == "Darwin" and machine == "arm64":
        return "apple-silicon"
    if _SERVER.search(model_name):
        return "server"
    if has_battery or _LAPTOP.search(model_name):
        return "laptop"
    return "desktop"


def default_tdp(cls: str, physical_cores: int) -> float:
    """The documented guess for a CPU class; server parts are sized by the cores this machine sees."""
    if cls == "server":
        return max(15.0, DEFAULT_TDP_W["server"] * physical_cores)
    return DEFAULT_TDP_W[cls]


def cpu_model_name() -> str:
    """The CPU's marketing name where the OS tells it cheaply (Linux /proc/cpuinfo), else ''."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


class TdpEstimateSource:
    """CPU energy estimated as TDP × utilisation, accumulated between reads. Always available."""

    def __init__(self, tdp_w: float | None = None, why_estimated: str = "") -> None:
        """why_estimated: why no CPU counter measured instead (kept in the detail, shown with the figure)."""
        model = cpu_model_name()
        cls = cpu_class(model, platform.system(), platform.machine(), psutil.sensors_battery() is not None)
        cores = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
        set_by = "user" if tdp_w is not None else f"default for a {cls} CPU"
        if tdp_w is None:
            tdp_w = default_tdp(cls, cores)
        if tdp_w <= 0:
            raise ValueError(f"TDP must be positive watts, not {tdp_w}")
        self.tdp_w = float(tdp_w)
        self.info = SourceInfo(
            name="tdp",
            label="estimated:tdp",
            domain="cpu",
            measures=f"CPU power estimated from utilisation and a {self.tdp_w:g} W TDP ({set_by})",
            unit="W (estimated)",
            update_s=0.0,  # set by how often it is read: the sampler's interval
            detail={"tdp_w": self.tdp_w, "tdp_set_by": set_by, "cpu": model, "formula": TDP_FORMULA,
                    **({"why_estimated": why_estimated} if why_estimated else {})},
        )
        self._last_t = time.perf_counter()
        self._last_cpu = psutil.cpu_times()
        self._joules = 0.0

    def read(self) -> Reading:
        # Own cpu_times deltas, not psutil.cpu_percent(): that keeps one global baseline per process
        # and other callers would shift it.
        return self.read_from(time.perf_counter(), psutil.cpu_times())

    def read_from(self, t: float, cpu) -> Reading:
        """Read with a psutil.cpu_times() the caller already took at t (the sampler shares its own)."""
        watts = tdp_watts(self.tdp_w, busy_share(self._last_cpu, cpu))
        self._joules += watts * (t - self._last_t)
        self._last_t, self._last_cpu = t, cpu
        return Reading(self.info, t, joules=self._joules, watts=watts)

    def close(self) -> None:
        pass


def busy_share(before, after) -> float:
    """Share of CPU time spent busy between two psutil.cpu_times() readings (0..1)."""

    def total_and_idle(times) -> tuple[float, float]:
        # Linux counts guest time inside user time too; leave it out so it is not counted twice.
        total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
        return total, times.idle + getattr(times, "iowait", 0.0)

    (total_0, idle_0), (total_1, idle_1) = total_and_idle(before), total_and_idle(after)
    elapsed = total_1 - total_0
    if elapsed <= 0:
        return 0.0
    return min(max(1.0 - (idle_1 - idle_0) / elapsed, 0.0), 1.0)


# -- Detection ------------------------------------------------------------------------------------


@dataclass
class Detected:
    """The sources that work here, and (source, reason) for each that does not.

    fixable: those of `unavailable` this machine has but the user must unlock (a permission, a
    package), each reason saying how; shown up front, so measured energy is never lost silently.
    """

    sources: list[PowerSource] = field(default_factory=list)
    unavailable: list[tuple[str, str]] = field(default_factory=list)
    fixable: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        lines = []
        for s in self.sources:
            lines.append(f"  ok   {s.info.name:16} {s.info.label:14} {s.info.measures}")
            if formula := s.info.detail.get("formula"):  # an estimate shows how it is made
                lines.append(f"{'':38}{formula}")
        lines += [f"  --   {name:16} {reason}" for name, reason in self.unavailable]
        return "\n".join(lines)

    def close(self) -> None:
        for source in self.sources:
            source.close()


def detect_sources(tdp_w: float | None = None, powercap_root: str | Path = POWERCAP_ROOT,
                   servers: Sequence[tuple[str, str]] = ()) -> Detected:
    """Open every source this machine offers; the TDP estimate stands in when no CPU counter works.
    servers: (base URL, where) of the served models in use, whose GPUs' metrics are looked for."""
    from app.telemetry.emi import emi_sources  # emi.py builds on this module's sources
    from app.telemetry.server_power import server_power_sources

    found = Detected()
    for sources, failed in (rapl_sources(powercap_root), nvml_sources(), ioreport_sources(), emi_sources(),
                            server_power_sources(servers)):
        found.sources += sources
        found.unavailable += failed
    found.fixable = [(name, reason) for name, reason in found.unavailable if _user_can_fix(name, reason)]
    if any(s.info.domain == "cpu" and s.info.measured for s in found.sources):
        found.unavailable.append(("tdp", "not needed: CPU energy is measured"))
    else:
        # Why this system's CPU counter did not measure it: stored with every estimate.
        counter = {"Darwin": "ioreport", "Windows": "emi"}.get(platform.system(), "rapl")
        why = "; ".join(reason for name, reason in found.unavailable if name.startswith(counter))
        found.sources.append(TdpEstimateSource(tdp_w, why_estimated=why))
    return found


def _user_can_fix(name: str, reason: str) -> bool:
    """A counter this machine has, kept from us by something the user can change."""
    if RAPL_PERMISSION_HINT in reason:  # present, root-only
        return True
    if name == "ioreport":  # said only on Apple Silicon, where the counters always exist
        return NOT_INSTALLED in reason
    # Without nvidia-ml-py there is no asking the driver, but its nvidia-smi tells a GPU is there.
    return name == "nvml" and NOT_INSTALLED in reason and shutil.which("nvidia-smi") is not None
