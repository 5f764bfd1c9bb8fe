"""Figures of a run while it is still running, for a view to show (the app's live pane stats).

Qt-free: a view asks for a snapshot on its own repaint timer, so the cost is paid per repaint
(a few per second), not per token.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from app.runs import RunRecorder, power_supply
from app.telemetry import Sample, energy_for_window

RATE_WINDOW_S = 1.0  # "tokens/s now" counts the tokens of the last second


@dataclass(frozen=True)
class LiveStats:
    elapsed_s: float
    ttft_s: float | None
    ttfat_s: float | None
    tps_now: float | None  # tokens in the last RATE_WINDOW_S
    tps_avg: float | None  # the decode rate so far
    n_thinking: int
    n_answer: int
    thinking_s: float | None  # how long the thought has lasted (or lasted, once closed)
    watts_now: float | None
    joules: float | None
    energy_source: str  # "measured:rapl", "estimated:tdp, shared by CPU time"…; "" when unknown
    status: str
    thought_limits: str = ""  # once ended: "held open 2× with Wait", "closed by its budget", both or ""
    energy_about: str = ""  # what the energy rests on, in lines: sources, an estimate's TDP and formula, notes
    power_supply: str = ""  # "on battery (63%)", "on mains power"; "" without a battery


def live_stats(
    recorder: RunRecorder,
    t: float,
    samples: Sequence[Sample] = (),
    pid: int | None = None,
    share_with: Sequence[int] = (),
) -> LiveStats:
    """A snapshot at time t (perf_counter); once the run has ended, its final figures."""
    r = recorder.result
    end = recorder.t_submit + r.total_s if r.total_s is not None else t
    elapsed = max(end - recorder.t_submit, 0.0)
    times = list(r.token_times_s)
    tps_now = tps_avg = None
    if times:
        since = elapsed - RATE_WINDOW_S
        recent = len(times) - bisect.bisect_left(times, since)
        tps_now = recent / min(RATE_WINDOW_S, max(elapsed - times[0], 1e-3)) if r.total_s is None else None
        if len(times) >= 2 and times[-1] > times[0]:
            tps_avg = (len(times) - 1) / (times[-1] - times[0])
    thinking_s = None
    if r.n_thinking_tokens and r.ttft_s is not None:
        closed = r.ttfat_s if r.ttfat_s is not None else elapsed
        thinking_s = max(closed - r.ttft_s, 0.0)
    if r.energy_j is not None:  # the run's final, attributed figure
        watts, joules, source, detail = r.avg_w, r.energy_j, r.energy_source, r.energy_detail
    else:
        watts = joules = None
        source, detail = "", {}
        if samples and elapsed > 0:
            figure = energy_for_window(samples, recorder.t_submit, recorder.t_submit + elapsed, pid, share_with)
            if figure is not None:
                joules, source, detail = figure.joules, figure.source_label, figure.to_dict()
                recent = energy_for_window(samples, max(recorder.t_submit, end - RATE_WINDOW_S), end, pid, share_with)
                watts = recent.avg_w if recent is not None else figure.avg_w
    # The run's own record once it has one, else the latest sample.
    supply = ((r.on_mains, r.battery_percent) if r.on_mains is not None or not samples
              else (samples[-1].on_mains, samples[-1].battery_percent))
    return LiveStats(
        elapsed_s=elapsed,
        ttft_s=r.ttft_s,
        ttfat_s=r.ttfat_s,
        tps_now=tps_now,
        tps_avg=tps_avg,
        n_thinking=r.n_thinking_tokens,
        n_answer=r.n_answer_tokens,
        thinking_s=thinking_s,
        watts_now=watts,
        joules=joules,
        energy_source=source,
        status=r.status,
        thought_limits=thought_limits(r.thinking_extended, r.thinking_budget_hit),
        energy_about="\n".join(explain_energy(detail)),
        power_supply=power_supply(*supply),
    )


def sources_said(details: dict) -> tuple[str, list[str]]:
    """An energy figure's sources in words (what each measures; an estimate's TDP and formula), and
    for an estimate why it is not a measurement. details: EnergyFigure.to_dict()["details"]."""
    said = "; ".join(d.get("measures", "") + (f" ({d['formula']})" if d.get("formula") else "")
                     for d in details.values())
    why = [f"estimated, not measured: {d['why_estimated']}" for d in details.values() if d.get("why_estimated")]
    return said, why


def explain_energy(detail: dict) -> list[str]:
    """Lines that say what an energy figure rests on (EnergyFigure.to_dict(), as runs store it)."""
    said, why = sources_said(detail.get("details") or {})
    return [line for line in (said, *why, *(detail.get("notes") or ())) if line]


def thought_limits(extended: int, budget_hit: bool) -> str:
    """What the request's limits did to the thought, in words (empty when they did nothing)."""
    said = [f"held open {extended}× with Wait"] if extended else []
    return " · ".join(said + (["closed by its budget"] if budget_hit else []))


def tokens_per_second_curve(token_times_s: Sequence[float], bin_s: float = 0.25) -> tuple[list[float], list[float]]:
    """(times, rates): tokens/s in consecutive bins from the first token on, for a chart."""
    if not token_times_s:
        return [], []
    start = token_times_s[0]
    n_bins = int((token_times_s[-1] - start) / bin_s) + 1
    counts = [0] * n_bins
    for t in token_times_s:
        counts[min(int((t - start) / bin_s), n_bins - 1)] += 1
    return [start + (i + 0.5) * bin_s for i in range(n_bins)], [c / bin_s for c in counts]
