"""Other programs' load on the CPU, and when it distorts a run's figures.

llama.cpp's threads wait on each other at every step: one thread on a core another program holds
slows all of them. On a 2-core machine a compare with 2 threads fell from 80 to about 1 token/s
while another process kept one core busy. So each run measures the load others put on the machine
(busy CPU minus the workers and this app), stores it, and is flagged when its threads outnumber
the cores left free, the way a run on battery is flagged.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from itertools import pairwise

import psutil

from app.telemetry.sampler import Sample
from app.telemetry.sources import busy_share

BUSY_CORES = 0.5  # less than half a core of others' work is noise: a browser tab, a shell


def background_cores(samples: Sequence[Sample], t0: float, t1: float) -> float | None:
    """Logical CPUs kept busy by other programs over [t0, t1], on average; None if unmeasured.

    Each sample interval's busy CPU time, less what the workers it followed and this app used, is
    counted for its overlap with the window. Intervals without a CPU count (old samples) are skipped.
    """
    busy = covered = 0.0
    for a, b in pairwise(samples):
        overlap = min(b.t, t1) - max(a.t, t0)
        if overlap <= 0 or b.t <= a.t or not b.logical_cpus:
            continue
        span = b.t - a.t
        system = b.cpu_percent / 100.0 * b.logical_cpus * span
        ours = max(b.own_cpu_s - a.own_cpu_s, 0.0) if a.own_cpu_s else 0.0
        ours += sum(max(p.cpu_s - a.procs[pid].cpu_s, 0.0) for pid, p in b.procs.items() if pid in a.procs)
        busy += max(system - ours, 0.0) * overlap / span
        covered += overlap
    return busy / covered if covered > 0 else None


def load_note(background: float | None, n_threads: int, logical_cpus: int) -> str:
    """Why other programs' load distorted a run's figures, or "" when it did not."""
    if background is None or background < BUSY_CORES or not n_threads or not logical_cpus:
        return ""
    free = logical_cpus - background
    if n_threads <= free:
        return ""
    return (f"other programs kept {background:.1f} of {logical_cpus} CPUs busy; {_threads(n_threads)} "
            f"shared the rest, so its speed and energy read worse than this machine gives")


def threads_warning(n_threads: int, logical_cpus: int, background: float | None) -> str:
    """Before a run: a sentence when its threads will wait on other programs' load, else ""."""
    if not load_note(background, n_threads, logical_cpus):
        return ""
    fewer = max(int(logical_cpus - background), 1)
    return (f"other programs keep {background:.1f} of {logical_cpus} CPUs busy; with {_threads(n_threads)} "
            f"llama.cpp will wait on them (figures will read low): stop them, or run with {_threads(fewer)}")


def background_now(ours: Iterable[int] = (), seconds: float = 0.25) -> float:
    """Other programs' load right now: logical CPUs kept busy over `seconds`, less this process and
    the pids in `ours` (the workers)."""
    processes = []
    for pid in ours:
        try:
            processes.append(psutil.Process(pid))
        except psutil.Error:
            pass
    before_cpu, before_own = psutil.cpu_times(), time.process_time()
    before = [_cpu_s(p) for p in processes]
    t = time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - t
    system = busy_share(before_cpu, psutil.cpu_times()) * (psutil.cpu_count(logical=True) or 1) * elapsed
    ours_s = time.process_time() - before_own + sum(max(_cpu_s(p) - b, 0.0) for p, b in zip(processes, before))
    return max(system - ours_s, 0.0) / elapsed


def _cpu_s(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")
