"""A background thread that samples CPU, memory, battery and power at a fixed rate (default 10 Hz).

It may slow down between runs (idle_interval_s): waking costs CPU of its own, and nothing is being
measured then. A run marks itself with `with sampler.active():`, which brings the full rate back at once.

Timestamps are time.perf_counter(), the clock of every engine event (app.engines.types.now), so a
run's window [submit, finish] can be laid straight over the samples.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import psutil

from app.telemetry.procfs import open_counters
from app.telemetry.sources import (
    PowerSource,
    Reading,
    SourceUnavailable,
    TdpEstimateSource,
    busy_share,
)

# CPU time and power are read every tick: energy attribution rests on them. Slower-moving figures
# are read less often and carried forward: every read after a wake costs, most on virtual machines.
BATTERY_EVERY_S = 5.0  # battery state changes over minutes; plugging in shows within 5 s
MEMORY_EVERY_S = 0.5  # system memory and each worker's RSS; the peak comes from the kernel's
# high-water mark (VmHWM / peak working set), which only grows, so no peak is lost between reads.


@dataclass(frozen=True)
class ProcSample:
    """One worker process at one instant."""

    cpu_s: float  # cumulative user + system CPU seconds: the base of CPU-time attribution
    cpu_percent: float  # since the previous sample, of one core (200 = two cores busy)
    rss: int  # read every MEMORY_EVERY_S, carried forward in between
    peak_rss: int  # the OS's high-water mark where it keeps one (Linux, Windows), else the highest seen


@dataclass(frozen=True)
class Sample:
    t: float  # perf_counter
    cpu_percent: float  # system-wide busy share of all logical CPUs, 0-100, since the previous sample
    mem_total: int  # system memory, read every MEMORY_EVERY_S
    mem_available: int
    battery_percent: float | None  # None: no battery
    on_mains: bool | None  # None: unknown (no battery, or the OS does not say)
    procs: dict[int, ProcSample] = field(default_factory=dict)
    power: dict[str, Reading] = field(default_factory=dict)  # by source name
    # This process's own CPU seconds (the app: UI, streaming, this sampler), and the machine's logical
    # CPUs: what is left of cpu_percent after the workers and the app is other programs' load.
    own_cpu_s: float = 0.0
    logical_cpus: int = 0


class Sampler:
    """Samples on a daemon thread; pids can be added and removed while it runs.

    Use sample_now() at a run's start and end so that even a run shorter than the interval is
    bracketed by samples. A power source that fails while running is dropped and listed in
    `failures`; a worker that exits is dropped from the pids.
    """

    def __init__(self, sources: list[PowerSource] = (), interval_s: float = 0.1, max_samples: int = 36_000,
                 idle_interval_s: float | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        if idle_interval_s is not None and idle_interval_s < interval_s:
            raise ValueError(f"idle_interval_s ({idle_interval_s}) must be at least interval_s ({interval_s})")
        self.interval_s = interval_s
        self.idle_interval_s = idle_interval_s or interval_s  # between runs
        self._active = 0  # runs going on now
        self._wake = Waker()
        self.sources = list(sources)
        self.failures: list[tuple[str, str]] = []
        self._samples: collections.deque[Sample] = collections.deque(maxlen=max_samples)  # an hour at 10 Hz
        self._procs: dict[int, psutil.Process] = {}
        self._memory: dict[int, tuple[int, int]] = {}  # pid -> (rss, peak rss)
        self._last_read: dict[object, float] = {}  # when each slow figure was last read
        self._system_memory = (0, 0)
        self._last_proc_cpu: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counters = open_counters()  # Linux: /proc files kept open (cheaper reads); else None
        self._last_cpu = self._cpu_times()
        self._battery: tuple[float | None, bool | None] = (None, None)
        self._logical_cpus = psutil.cpu_count(logical=True) or 1
        self.own_cpu_s = 0.0  # CPU time the sampling thread itself has used, for the cost benchmark

    # -- control ------------------------------------------------------------------------------

    def start(self, pids: list[int] = ()) -> Sampler:
        if self._thread is not None:
            raise RuntimeError("the sampler is already running")
        for pid in pids:
            self.add_pid(pid)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="telemetry-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, after one last sample so the latest window is closed."""
        if self._thread is None:
            return
        self._stop.set()
        self._wake.wake()
        self._thread.join()
        self._thread = None
        self.sample_now()

    def add_pid(self, pid: int) -> None:
        """Follow a worker; raises psutil.NoSuchProcess if it does not exist."""
        process = psutil.Process(pid)
        with self._lock:
            self._procs[pid] = process

    def remove_pid(self, pid: int) -> None:
        with self._lock:
            self._forget(pid)

    def _forget(self, pid: int) -> None:
        self._procs.pop(pid, None)
        self._memory.pop(pid, None)
        self._last_proc_cpu.pop(pid, None)
        self._last_read.pop(("memory", pid), None)
        if self._counters is not None:
            self._counters.forget(pid)

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return list(self._procs)

    @property
    def samples(self) -> list[Sample]:
        """A snapshot, oldest first."""
        with self._lock:
            return list(self._samples)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """While a run goes on: sample at the full rate, the first tick one interval from now
        (take sample_now() at the run's start, as Session does)."""
        with self._lock:
            self._active += 1
        self._wake.wake()
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    def __enter__(self) -> Sampler:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- sampling -----------------------------------------------------------------------------

    def _loop(self) -> None:
        started = time.thread_time()
        deadline = time.perf_counter()
        try:
            take = True
            while not self._stop.is_set():
                if take:
                    self.sample_now()
                # A fixed grid, so a slow tick does not shift every later one.
                deadline += self.interval_s if self._active else self.idle_interval_s
                delay = deadline - time.perf_counter()
                if delay < 0:
                    deadline, delay = time.perf_counter(), 0.0
                take = not self._wake.wait(delay)
                if not take:  # a run started (or stop): the full rate's grid starts now. No sample here:
                    deadline = time.perf_counter()  # the run brackets itself with sample_now(), and this
                    # thread would only take the GIL from it while it submits
        finally:
            self.own_cpu_s += time.thread_time() - started

    def sample_now(self) -> Sample:
        """Take one sample (from any thread), store it and return it."""
        with self._lock:
            t = time.perf_counter()
            times = self._cpu_times()
            busy = 100.0 * busy_share(self._last_cpu, times)
            self._last_cpu = times
            if self._due("memory", t, MEMORY_EVERY_S):
                self._system_memory = self._memory_now()
            battery_percent, on_mains = self._battery_state(t)
            sample = Sample(
                t=t,
                cpu_percent=busy,
                mem_total=self._system_memory[0],
                mem_available=self._system_memory[1],
                battery_percent=battery_percent,
                on_mains=on_mains,
                procs=self._sample_procs(t),
                power=self._read_sources(t, times),
                own_cpu_s=time.process_time(),
                logical_cpus=self._logical_cpus,
            )
            self._samples.append(sample)
            return sample

    def _sample_procs(self, t: float) -> dict[int, ProcSample]:
        procs: dict[int, ProcSample] = {}
        for pid, process in list(self._procs.items()):
            try:
                cpu_s = self._process_cpu_s(process)
                if self._due(("memory", pid), t, MEMORY_EVERY_S):  # a new pid is due at once
                    rss, os_peak = self._process_memory(process)
                    self._memory[pid] = (rss, max(self._memory.get(pid, (0, 0))[1], rss, os_peak or 0))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                # The worker ended (or crashed; AccessDenied is how macOS says so for some exits):
                # nothing more to sample, and its pid may be reused by another process.
                self._forget(pid)
                continue
            last_t, last_cpu = self._last_proc_cpu.get(pid, (t, cpu_s))
            percent = 100.0 * (cpu_s - last_cpu) / (t - last_t) if t > last_t else 0.0
            self._last_proc_cpu[pid] = (t, cpu_s)
            rss, peak = self._memory[pid]
            procs[pid] = ProcSample(cpu_s=cpu_s, cpu_percent=percent, rss=rss, peak_rss=peak)
        return procs

    def _cpu_times(self):
        return self._counters.system() if self._counters is not None else psutil.cpu_times()

    def _process_cpu_s(self, process: psutil.Process) -> float:
        if self._counters is not None:
            return self._counters.process_cpu_s(process.pid)
        times = process.cpu_times()
        return times.user + times.system

    def _memory_now(self) -> tuple[int, int]:
        if self._counters is not None:
            return self._counters.system_memory()
        memory = psutil.virtual_memory()
        return memory.total, memory.available

    def _process_memory(self, process: psutil.Process) -> tuple[int, int | None]:
        """RSS now and the OS's own high-water mark where it keeps one."""
        if self._counters is not None:
            return self._counters.process_memory(process.pid)
        info = process.memory_info()
        return info.rss, getattr(info, "peak_wset", None)  # Windows' peak working set; macOS keeps none

    def _read_sources(self, t: float, cpu_times) -> dict[str, Reading]:
        readings: dict[str, Reading] = {}
        for source in list(self.sources):
            try:
                if isinstance(source, TdpEstimateSource):  # reuse this tick's CPU times: a third of the cost
                    readings[source.info.name] = source.read_from(t, cpu_times)
                else:
                    readings[source.info.name] = source.read()
            except SourceUnavailable as exc:
                self.sources.remove(source)
                self.failures.append((source.info.name, str(exc)))
        return readings

    def _due(self, key: object, t: float, every_s: float) -> bool:
        """True, and remembered, when the figure named key was last read every_s or more ago."""
        if t - self._last_read.get(key, float("-inf")) < every_s:
            return False
        self._last_read[key] = t
        return True

    def _battery_state(self, t: float) -> tuple[float | None, bool | None]:
        if self._due("battery", t, BATTERY_EVERY_S):
            battery = psutil.sensors_battery()
            percent = battery.percent if battery else None
            on_mains = battery.power_plugged if battery else None
            self._battery = (percent, on_mains)
        return self._battery



class Waker:
    """A wait another thread can cut short, on one bare lock held while nobody has woken it.

    threading.Event.wait builds a Condition and a fresh lock on every call; on the VMs measured, where
    the first work after each wake is expensive, that Python-level machinery cost more than the
    sampling itself (tests/perf/test_sampler_cost.py prints both)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def wait(self, timeout: float) -> bool:
        """True when woken (the wake is then used up), False once the timeout has passed."""
        return self._lock.acquire(timeout=timeout)

    def wake(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # already released: a wake is pending, one is enough
            pass
