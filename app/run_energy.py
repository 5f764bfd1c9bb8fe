"""What a finished run cost, from the session's telemetry: its energy (split at the end of its
thinking, shared by CPU time with runs beside it) and its stored series of readings."""

from __future__ import annotations

from collections.abc import Sequence

from app.record import RunResult, remote_energy_note
from app.store import TelemetrySample
from app.telemetry import Sample, power_series, split_phases
from app.telemetry.load import background_cores, load_note


def with_energy(
    result: RunResult, samples: Sequence[Sample], t_submit: float, pid: int | None,
    share_with: Sequence[int] = (), lost_sources: Sequence[str] = (), server_share_with: Sequence[int] | None = None,
    token_share: tuple[float, str] | None = None,
) -> RunResult:
    """The record with its energy over [submit, end], the power supply at its end, the worker's
    peak memory and other programs' load on the CPU; as it was where the run never ran or nothing
    was sampled."""
    if pid is None or result.total_s is None:
        return result
    t0, t1 = t_submit, t_submit + result.total_s
    changes: dict = {}
    if samples:  # the sample that closed the run's window
        changes.update(on_mains=samples[-1].on_mains, battery_percent=samples[-1].battery_percent)
    boundary = None
    if result.n_thinking_tokens:  # a thought that never closed is thinking to the end
        boundary = t0 + result.ttfat_s if result.ttfat_s is not None else t1
    phases = split_phases(samples, t0, boundary, t1, result.n_thinking_tokens, result.n_answer_tokens,
                          pid, list(share_with), result.conditions.energy_domains, server_share_with, token_share)
    if phases is not None:
        changes.update(phases.flat())  # the record's energy names, each with its source
        if lost_sources:  # a source that stopped is missing from here on: say so with the figure
            detail = changes["energy_detail"]
            changes.update(energy_approximate=True,
                           energy_detail={**detail, "notes": [*detail.get("notes", []), *lost_sources]})
        remote = remote_energy_note(result.conditions, phases.total.covers)
        if remote:  # a served model: the figure is this machine's, and says the server's is missing
            detail = changes["energy_detail"]
            changes["energy_detail"] = {**detail, "notes": [*detail.get("notes", []), remote]}
    last = next((s.procs[pid] for s in reversed(samples) if pid in s.procs), None)
    changes["peak_rss_bytes"] = last.peak_rss if last else None
    background = background_cores(samples, t0, t1)
    if background is not None:  # others' load on the CPU, and whether it distorted the figures
        cpus = samples[-1].logical_cpus
        changes.update(background_cores=round(background, 2),
                       load_note=load_note(background, result.conditions.n_threads, cpus))
    return result.updated(**changes)


def token_share(result: RunResult, batch: Sequence[RunResult]) -> tuple[float, str]:
    """One of k samples decoded together: its share of the energy over its window is its tokens over
    every sample's tokens in that window (each decode step makes one token per live sample)."""
    end = result.total_s or 0.0
    mine = len(result.tokens.token_times_s)
    everyone = sum(sum(1 for t in r.tokens.token_times_s if t <= end) for r in batch)
    share = mine / everyone if everyone else 1.0 / max(len(batch), 1)
    return share, f"shared by tokens with the {len(batch)} samples decoded together"


def batch_time_s(result: RunResult, batch: Sequence[RunResult]) -> float | None:
    """One sample's share of its batch's wall time, by tokens: the k shares add up to the batch's time."""
    wall = max((r.total_s for r in batch if r.total_s is not None), default=None)
    tokens = sum(len(r.tokens.token_times_s) for r in batch)
    if wall is None:
        return None
    return wall * len(result.tokens.token_times_s) / tokens if tokens else wall / max(len(batch), 1)


def run_series(result: RunResult, samples: Sequence[Sample], t_submit: float, pid: int | None) -> list[TelemetrySample]:
    """The run's window of telemetry, as stored series: the worker's CPU and memory, the power."""
    if result.total_s is None or pid is None:
        return []
    t0, t1 = t_submit, t_submit + result.total_s
    rows = []
    for sample in (s for s in samples if t0 <= s.t <= t1):
        t = sample.t - t0
        rows.append(TelemetrySample(t, "system_cpu_percent", sample.cpu_percent, "%"))
        proc = sample.procs.get(pid)
        if proc is not None:
            rows.append(TelemetrySample(t, "worker_cpu_percent", proc.cpu_percent, "% of a core"))
            rows.append(TelemetrySample(t, "worker_rss_bytes", float(proc.rss), "B"))
    ts, watts, label = power_series(samples, window=(t0, t1))
    rows += [TelemetrySample(t - t0, "power_w", w, "W", label) for t, w in zip(ts, watts)]
    return rows
