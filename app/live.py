"""A run as a view sees it, and its figures while it is still running (the app's live pane stats).

Qt-free. A view keeps one LiveRun per pane, fed RunUpdates on the view's own thread: nothing it
reads is mutated by the thread that runs the model. It asks for a snapshot on its own repaint
timer, so the cost is paid per repaint (a few per second), not per token. Once a run has ended,
every figure comes from its finished RunResult, the record the log stores.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from app.engines.types import Token
from app.engines.thought_parser import THINKING
from app.record import EnergyReport, RunResult, decode_rate, power_supply
from app.runs import Progress, RunUpdate
from app.telemetry import Sample, energy_for_window
from app.telemetry.energy import domain_words

RATE_WINDOW_S = 1.0  # "tokens/s now" counts the tokens of the last second
WAITING = "waiting"  # a pane whose run has not started (fair mode: another pane runs first)


class LiveRun:
    """One pane's run, built only from its RunUpdates: waiting, running, then its finished record."""

    def __init__(self, pane: int) -> None:
        self.pane = pane
        self.t_submit: float | None = None  # None until the run starts
        self.token_times: list[float] = []  # generated tokens, seconds from submit
        self.progress = Progress()
        self.thinking = self.answer = ""  # the text the updates brought, in order
        self.result: RunResult | None = None

    @property
    def started(self) -> bool:
        return self.t_submit is not None

    @property
    def done(self) -> bool:
        return self.result is not None

    def apply(self, update: RunUpdate) -> None:
        self.progress = update.progress
        if update.closing:
            self.result = update.result
            if self.result.total_s is not None:  # it ran (a run cancelled before it started did not)
                self.t_submit = update.t_submit
            return
        self.t_submit = update.t_submit
        event = update.event
        if isinstance(event, Token) and not event.injected:
            self.token_times.append(event.t - update.t_submit)
        for piece in update.pieces:
            if piece.channel == THINKING:
                self.thinking += piece.text
            else:
                self.answer += piece.text

    def times(self) -> list[float]:
        """Each generated token's time from submit: the stored timeline once the run has ended."""
        return self.result.token_times_s if self.result is not None else self.token_times

    def window(self, t_now: float) -> tuple[float, float] | None:
        """(start, end) of the run in perf_counter time; None while it waits."""
        if self.t_submit is None:
            return None
        if self.result is not None and self.result.total_s is not None:
            return self.t_submit, self.t_submit + self.result.total_s
        return self.t_submit, t_now


@dataclass(frozen=True)
class LiveStats:
    elapsed_s: float | None  # None while waiting
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
    status: str  # "waiting", "running", then the run's: "ok", "cancelled", "failed"
    thought_limits: str = ""  # once ended: "held open 2× with Wait", "closed by its budget", both or ""
    energy_about: str = ""  # what the energy rests on, in lines: sources, an estimate's TDP and formula, notes
    power_supply: str = ""  # "on battery (63%)", "on mains power"; "" without a battery
    energy_approximate: bool = False  # the figure is marked (a run too short for the sensor, a lost source)
    no_answer: str = ""  # once ended without an answer: why, and what to change
    energy_kind: str = ""  # "measured", "estimated", "mixed" (EnergyReport.kind); "" when unknown
    placement: str = ""  # once ended: where it ran ("CPU · 2 threads"); while running the pane's header says it
    load_note: str = ""  # once ended: how other processes' load distorted its figures; "" when it did not
    thought_note: str = ""  # once ended: where the engine could not hold the thought's limits (a server)


WAITING_STATS = LiveStats(None, None, None, None, None, 0, 0, None, None, None, "", WAITING)


def _thinking_s(n_thinking: int, ttft_s: float | None, ttfat_s: float | None, elapsed: float) -> float | None:
    if not n_thinking or ttft_s is None:
        return None
    closed = ttfat_s if ttfat_s is not None else elapsed
    return max(closed - ttft_s, 0.0)


def live_stats(
    run: LiveRun,
    t: float,
    samples: Sequence[Sample] = (),
    pid: int | None = None,
    share_with: Sequence[int] = (),
    domains: Collection[str] | None = None,
    server_share_with: Sequence[int] | None = None,
) -> LiveStats:
    """A snapshot at time t (perf_counter): "waiting" before the run starts; once it has ended, the
    figures of its finished record and nothing else."""
    if run.result is not None:
        return final_stats(run.result)
    if run.t_submit is None:
        return WAITING_STATS
    p = run.progress
    elapsed = max(t - run.t_submit, 0.0)
    times = run.token_times
    tps_now = tps_avg = None
    if times:
        recent = len(times) - bisect.bisect_left(times, elapsed - RATE_WINDOW_S)
        tps_now = recent / min(RATE_WINDOW_S, max(elapsed - times[0], 1e-3))
        tps_avg = decode_rate(times)  # the figure the finished record will hold, computed the same way
    watts = joules = None
    source, detail = "", {}
    if samples and elapsed > 0:
        figure = energy_for_window(samples, run.t_submit, t, pid, share_with, domains, server_share_with)
        if figure is not None:
            joules, source, detail = figure.joules, figure.source_label, figure.to_dict()
            recent = energy_for_window(samples, max(run.t_submit, t - RATE_WINDOW_S), t, pid, share_with, domains,
                                       server_share_with)
            watts = recent.avg_w if recent is not None else figure.avg_w
    supply = (samples[-1].on_mains, samples[-1].battery_percent) if samples else (None, None)
    return LiveStats(
        elapsed_s=elapsed,
        ttft_s=p.ttft_s,
        ttfat_s=p.ttfat_s,
        tps_now=tps_now,
        tps_avg=tps_avg,
        n_thinking=p.n_thinking,
        n_answer=p.n_answer,
        thinking_s=_thinking_s(p.n_thinking, p.ttft_s, p.ttfat_s, elapsed),
        watts_now=watts,
        joules=joules,
        energy_source=source,
        status="running",
        energy_about="\n".join(explain_energy(detail)),
        power_supply=power_supply(*supply),
        energy_kind=EnergyReport(energy_source=source, energy_detail=detail).kind,
    )


def final_stats(r: RunResult) -> LiveStats:
    """A finished run's figures, all from its record: what the log stores is what a pane shows."""
    elapsed = r.total_s
    return LiveStats(
        elapsed_s=elapsed,
        ttft_s=r.ttft_s,
        ttfat_s=r.ttfat_s,
        tps_now=None,
        tps_avg=r.decode_tps,
        n_thinking=r.n_thinking_tokens,
        n_answer=r.n_answer_tokens,
        thinking_s=_thinking_s(r.n_thinking_tokens, r.ttft_s, r.ttfat_s, elapsed or 0.0),
        watts_now=r.avg_w,
        joules=r.energy_j,
        energy_source=r.energy_source,
        status=r.status,
        thought_limits=thought_limits(r.thinking_extended, r.thinking_budget_hit),
        energy_about="\n".join(explain_energy(r.energy_detail)),
        power_supply=power_supply(r.on_mains, r.battery_percent),
        energy_approximate=r.energy_approximate,
        no_answer=r.no_answer,
        placement=r.placement,
        load_note=r.load_note,
        thought_note=r.thought_note,
        energy_kind=r.energy.kind,
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
    covers = " + ".join(domain_words(d) for d in detail.get("covers") or ())
    charged = f"charged for: {covers}" if covers else ""
    return [line for line in (said, *why, charged, *(detail.get("notes") or ())) if line]


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
