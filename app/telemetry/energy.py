"""Attribution: the energy of a run's window, its share when runs overlap, and its phases.

Counter sources (RAPL, NVML's energy counter, the TDP estimate's running total) give energy as the
counter's difference across the window, read at the window's ends by linear interpolation (constant
power within a sample interval). Power-only sources are integrated as a piecewise-linear curve.
When panes run at once, the window's energy is split by each worker's share of the CPU time.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from app.telemetry.sampler import Sample
from app.record import SERVER_DOMAIN
from app.telemetry.sources import Reading, SourceInfo


DOMAIN_WORDS = {"cpu": "CPU", "dram": "memory", "gpu": "GPU", "ane": "Neural Engine"}


def domain_words(domain: str) -> str:
    """A hardware domain as a person says it: "GPU", "the server's GPUs (gpu-box:8000)"."""
    if domain.startswith(SERVER_DOMAIN):
        return f"the server's GPUs ({domain[len(SERVER_DOMAIN):]})"
    return DOMAIN_WORDS.get(domain, domain)


@dataclass(frozen=True)
class EnergyFigure:
    """Energy of one window: never a bare number, always with where it came from."""

    joules: float
    avg_w: float
    peak_w: float  # the window's peak power, times the run's share when shared
    source_label: str  # e.g. "measured:rapl", "measured:nvml + estimated:tdp, shared by CPU time"
    approximate: bool  # too short for the sensor, or reaching past the samples: see notes
    breakdown: dict[str, float]  # joules by source name, after sharing
    share: float = 1.0  # this run's share of the window's energy
    notes: tuple[str, ...] = ()  # why it is approximate, how it was shared, what was left out
    details: dict[str, dict] = field(default_factory=dict)  # per source: what it measures, TDP, formula
    covers: tuple[str, ...] = ()  # the hardware domains charged ("cpu", "dram", "gpu"), sorted
    left_out: dict[str, float] = field(default_factory=dict)  # joules by source of hardware the run did not use

    def to_dict(self) -> dict:
        return {
            "joules": self.joules,
            "avg_w": self.avg_w,
            "peak_w": self.peak_w,
            "source": self.source_label,
            "approximate": self.approximate,
            "breakdown": dict(self.breakdown),
            "share": self.share,
            "notes": list(self.notes),
            "details": dict(self.details),
            "covers": list(self.covers),
            "left_out": dict(self.left_out),
        }


@dataclass(frozen=True)
class PhaseEnergy:
    """A run's energy, split at the end of its thinking."""

    total: EnergyFigure
    thinking: EnergyFigure | None  # None: the run did not think
    answer: EnergyFigure | None  # None: the run ended before answering
    j_per_token: float | None
    j_per_thinking_token: float | None
    j_per_answer_token: float | None

    def flat(self) -> dict:
        """Plain fields for a run record (RunResult, the store, the CLI's --json)."""
        total = self.total
        return {
            "energy_j": total.joules,
            "energy_source": total.source_label,
            "energy_approximate": total.approximate,
            "avg_w": total.avg_w,
            "peak_w": total.peak_w,
            "thinking_energy_j": None if self.thinking is None else self.thinking.joules,
            "answer_energy_j": None if self.answer is None else self.answer.joules,
            "j_per_token": self.j_per_token,
            "j_per_thinking_token": self.j_per_thinking_token,
            "j_per_answer_token": self.j_per_answer_token,
            "energy_detail": total.to_dict(),
        }


def energy_for_window(
    samples: Sequence[Sample],
    t0: float,
    t1: float,
    pid: int | None = None,
    share_with: Sequence[int] = (),
    domains: Collection[str] | None = None,
    server_share_with: Sequence[int] | None = None,
    fixed_share: tuple[float, str] | None = None,
) -> EnergyFigure | None:
    """Energy used over [t0, t1] (perf_counter seconds); None when the samples hold no power data.

    pid and share_with: the run's worker and the workers of runs that overlapped it; the window's
    energy is then split by each one's CPU time within the window.
    domains: the hardware the run used (Conditions.energy_domains); the other domains' sources (an
    idle GPU beside a CPU run) are not charged, and a note says what they drew. None: all.
    server_share_with: for a served model's GPUs, the workers of the runs beside it on that same
    server (a local run beside it used none of them); None: share_with.
    fixed_share: (share, how) decided by the caller instead: one of k samples decoded together takes
    the batch's energy by its tokens (run_energy.token_share).
    """
    if t1 <= t0:
        raise ValueError(f"the window must have positive length, not [{t0}, {t1}]")
    near = _near(samples, t0, t1)
    series = _series(near)
    every = _summable([readings[0].info for readings in series.values()])
    chosen = [info for info in every if domains is None or info.domain in domains]
    unused = [info for info in every if info not in chosen]
    if not chosen:
        return None
    joules: dict[str, float] = {}
    peak = 0.0
    notes: list[str] = []
    for info in chosen:
        result = _source_energy(series[info.name], t0, t1)
        if result is None:
            notes.append(f"{info.name}: a single counter reading cannot give energy; left out")
            continue
        joules[info.name], source_peak, source_notes = result
        peak += source_peak
        notes += [f"{info.name}: {note}" for note in source_notes]
    if not joules:
        return None
    used = [info for info in chosen if info.name in joules]
    share, share_note = fixed_share or _share(near, t0, t1, pid, share_with)
    server_share, server_note = (share, share_note) if server_share_with is None or fixed_share else _share(
        near, t0, t1, pid, server_share_with)
    shares = {info.name: server_share if info.domain.startswith(SERVER_DOMAIN) else share for info in used}
    label = " + ".join(sorted({info.label for info in used}))
    if share_note or server_note:
        label += f", {share_note or server_note}"
    breakdown = {name: j * shares[name] for name, j in joules.items()}
    total = sum(breakdown.values())
    details = {info.name: {"label": info.label, "measures": info.measures, "unit": info.unit, **info.detail} for info in used}
    approximate = bool(notes)  # every note so far is a reason the figure is approximate
    if share_note:
        alone = "" if fixed_share else " (fair mode measures each run alone)"
        notes.append(f"{share_note}: this run's share is {share:.0%}{alone}")
    if server_note and server_share_with is not None and any(d.startswith(SERVER_DOMAIN) for d in {i.domain for i in used}):
        notes.append(f"the server's GPUs {server_note} with this app's other requests there: this run's share is "
                     f"{server_share:.0%}")
    left_out = {}
    for info in unused:  # said, not charged: the figure stays this run's
        drawn = _source_energy(series[info.name], t0, t1)
        if drawn is not None:
            left_out[info.name] = drawn[0]
            notes.append(f"not charged: {info.name} ({domain_words(info.domain)}) drew "
                         f"{drawn[0]:.1f} J ({drawn[0] / (t1 - t0):.1f} W) meanwhile; the run did not use it")
    return EnergyFigure(
        joules=total,
        avg_w=total / (t1 - t0),
        peak_w=peak * share,  # an approximation where the server's GPUs are shared otherwise
        source_label=label,
        approximate=approximate,
        breakdown=breakdown,
        share=share,
        notes=tuple(notes),
        details=details,
        covers=tuple(sorted({info.domain for info in used})),
        left_out=left_out,
    )


def split_phases(
    samples: Sequence[Sample],
    t_start: float,
    t_boundary: float | None,
    t_end: float,
    n_thinking: int,
    n_answer: int,
    pid: int | None = None,
    share_with: Sequence[int] = (),
    domains: Collection[str] | None = None,
    server_share_with: Sequence[int] | None = None,
    fixed_share: tuple[float, str] | None = None,
) -> PhaseEnergy | None:
    """Energy of a run and of its thinking [t_start, t_boundary] and answer [t_boundary, t_end].

    t_boundary: when thinking ended (the first answer token); None for a run that did not think.
    Prompt evaluation falls in the first phase: it is part of what a thinking run costs.
    """
    total = energy_for_window(samples, t_start, t_end, pid, share_with, domains, server_share_with, fixed_share)
    if total is None:
        return None
    if t_boundary is not None and not t_start <= t_boundary <= t_end:
        raise ValueError(f"the phase boundary {t_boundary} is outside the run [{t_start}, {t_end}]")
    thinking = answer = None
    if t_boundary is None or t_boundary == t_start:
        answer = total
    elif t_boundary == t_end:
        thinking = total
    else:
        thinking = energy_for_window(samples, t_start, t_boundary, pid, share_with, domains, server_share_with,
                                     fixed_share)
        answer = energy_for_window(samples, t_boundary, t_end, pid, share_with, domains, server_share_with,
                                   fixed_share)
    return PhaseEnergy(
        total=total,
        thinking=thinking,
        answer=answer,
        j_per_token=_per_token(total, n_thinking + n_answer),
        j_per_thinking_token=_per_token(thinking, n_thinking),
        j_per_answer_token=_per_token(answer, n_answer),
    )


def _per_token(figure: EnergyFigure | None, n: int) -> float | None:
    return figure.joules / n if figure is not None and n > 0 else None


# -- which sources add up ---------------------------------------------------------------------


def _summable(infos: list[SourceInfo]) -> list[SourceInfo]:
    """Per domain, the measured sources if any, else the estimates: never two figures for one CPU.

    Different domains (GPU + CPU package) and different zones of one domain (two CPU packages)
    measure different hardware, so they add up.
    """
    chosen: list[SourceInfo] = []
    for domain in sorted({info.domain for info in infos}):
        mine = [info for info in infos if info.domain == domain]
        measured = [info for info in mine if info.measured]
        chosen += measured or mine
    return chosen


# -- one source over one window -----------------------------------------------------------------


def _source_energy(readings: list[Reading], t0: float, t1: float) -> tuple[float, float, list[str]] | None:
    """(joules, peak watts, notes) of one source over [t0, t1]; None if it cannot say."""
    info = readings[0].info
    notes: list[str] = []
    ts = [r.t for r in readings]
    if ts[0] > t0 or ts[-1] < t1:
        notes.append("approximate: the window reaches past the samples, extrapolated")
    if t1 - t0 < info.update_s:
        notes.append(f"approximate: the window is shorter than the sensor's {info.update_s:g} s update")
    elif sum(t0 <= t <= t1 for t in ts) < 2:
        notes.append("approximate: fewer than two samples inside the window, interpolated")
    if all(r.joules is not None for r in readings):
        if len(readings) < 2:
            return None
        es = [r.joules for r in readings]
        joules = _interp(ts, es, t1) - _interp(ts, es, t0)
        return max(joules, 0.0), _peak_rate(ts, es, t0, t1), notes
    ws = [r.watts for r in readings if r.watts is not None]
    ts = [r.t for r in readings if r.watts is not None]
    joules, peak = _integrate_power(ts, ws, t0, t1)
    return joules, peak, notes


def _interp(ts: list[float], vs: list[float], t: float) -> float:
    """Linear through the samples, extended along the nearest interval beyond them (needs 2+)."""
    i = min(max(bisect.bisect_right(ts, t), 1), len(ts) - 1)
    (ta, va), (tb, vb) = (ts[i - 1], vs[i - 1]), (ts[i], vs[i])
    return va if tb == ta else va + (vb - va) * (t - ta) / (tb - ta)


def _peak_rate(ts: list[float], es: list[float], t0: float, t1: float) -> float:
    """The highest average power of a sample interval that overlaps the window."""
    rates = [(es[i + 1] - es[i]) / (ts[i + 1] - ts[i]) for i in range(len(ts) - 1) if ts[i] < t1 and ts[i + 1] > t0 and ts[i + 1] > ts[i]]
    if not rates:  # the window lies wholly beyond the samples: the nearest interval's rate
        return max((_interp(ts, es, t1) - _interp(ts, es, t0)) / (t1 - t0), 0.0)
    return max(max(rates), 0.0)


def _integrate_power(ts: list[float], ws: list[float], t0: float, t1: float) -> tuple[float, float]:
    """Exact integral of the piecewise-linear power curve (held flat beyond the samples), and its peak."""
    knots = [(t0, _power_at(ts, ws, t0))]
    knots += [(t, w) for t, w in zip(ts, ws) if t0 < t < t1]
    knots.append((t1, _power_at(ts, ws, t1)))
    joules = sum((tb - ta) * (wa + wb) / 2 for (ta, wa), (tb, wb) in pairwise(knots))
    return joules, max(w for _, w in knots)


def _power_at(ts: list[float], ws: list[float], t: float) -> float:
    if t <= ts[0]:
        return ws[0]
    if t >= ts[-1]:
        return ws[-1]
    return _interp(ts, ws, t)


# -- samples ----------------------------------------------------------------------------------


def _near(samples: Sequence[Sample], t0: float, t1: float) -> list[Sample]:
    """The samples inside the window plus two either side, enough to interpolate its ends."""
    times = [s.t for s in samples]
    lo = max(bisect.bisect_left(times, t0) - 2, 0)
    hi = bisect.bisect_right(times, t1) + 2
    return list(samples[lo:hi])


def _series(samples: list[Sample]) -> dict[str, list[Reading]]:
    series: dict[str, list[Reading]] = {}
    for sample in samples:
        for name, reading in sample.power.items():
            mine = series.setdefault(name, [])
            if not mine or reading.t > mine[-1].t:  # a source polled apart (a server's) repeats its latest
                mine.append(reading)
    return series


def _share(samples: list[Sample], t0: float, t1: float, pid: int | None, others: Sequence[int]) -> tuple[float, str]:
    """This worker's share of the CPU time all the overlapping workers used in the window."""
    others = [p for p in dict.fromkeys(others) if p != pid]
    if pid is None or not others:
        return 1.0, ""
    used = {p: _cpu_seconds(samples, p, t0, t1) for p in [pid, *others]}
    total = sum(v for v in used.values() if v is not None)
    if used[pid] is None or total <= 0:
        return 1.0 / len(used), "shared equally (no CPU time recorded for the workers)"
    return used[pid] / total, "shared by CPU time"


def _cpu_seconds(samples: list[Sample], pid: int, t0: float, t1: float) -> float | None:
    points = [(s.t, s.procs[pid].cpu_s) for s in samples if pid in s.procs]
    if len(points) < 2:
        return None
    ts, cs = [t for t, _ in points], [c for _, c in points]
    return max(_interp(ts, cs, t1) - _interp(ts, cs, t0), 0.0)


# -- a power curve for charts ---------------------------------------------------------------------


def power_series(samples: Sequence[Sample], window: tuple[float, float] | None = None,
                 ) -> tuple[list[float], list[float], str]:
    """(times, watts, label): this machine's total power per sample interval, summed the way energy is summed.

    Counter sources become the average power between consecutive reads; power-only sources are
    taken as read. A chart of this curve and the energy figures of runs agree with each other.
    With a window (t0, t1) the curve is read at its two ends and at the points inside, from the
    samples around it too: a run shorter than two sample intervals still has its curve.
    """
    if window is not None:
        samples = _near(samples, *window)
    series = _series(list(samples))
    # This machine's power: a server's GPUs (hundreds of watts, shared with others) are not drawn here.
    chosen = _summable([readings[0].info for readings in series.values()
                        if not readings[0].info.domain.startswith(SERVER_DOMAIN)])
    if not chosen:
        return [], [], ""
    curves: list[tuple[list[float], list[float]]] = []
    for info in chosen:
        readings = series[info.name]
        if all(r.joules is not None for r in readings):
            ts = [(a.t + b.t) / 2 for a, b in pairwise(readings) if b.t > a.t]
            ws = [max((b.joules - a.joules) / (b.t - a.t), 0.0) for a, b in pairwise(readings) if b.t > a.t]
        else:
            ts = [r.t for r in readings if r.watts is not None]
            ws = [r.watts for r in readings if r.watts is not None]
        if ts:
            curves.append((ts, ws))
    if not curves:
        return [], [], ""
    times = sorted({t for ts, _ in curves for t in ts})
    if window is not None:  # the window's ends and what lies between, read off the curve
        t0, t1 = window
        times = [t0, *(t for t in times if t0 < t < t1), t1]
    watts = [sum(_power_at(ts, ws, t) for ts, ws in curves) for t in times]
    return times, watts, " + ".join(sorted({info.label for info in chosen}))
