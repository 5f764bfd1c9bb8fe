"""Live figures of a running run, and the tokens/s curve the charts draw."""

import pytest

from app.engines.thought_parser import StreamSplit
from app.engines.types import PromptDone, Started
from app.live import WAITING, LiveRun, live_stats, tokens_per_second_curve
from app.runs import RunRecorder
from app.telemetry import Sample, power_series
from app.telemetry.sources import Reading, SourceInfo

T0 = 100.0
RAPL = SourceInfo("rapl:package-0", "measured:rapl", "cpu", "CPU package", "µJ", 0.001)
NVML_W = SourceInfo("nvml:0", "measured:nvml", "gpu", "GPU board power", "mW", 0.1)
TDP = SourceInfo("tdp", "estimated:tdp", "cpu", "estimate", "W", 0.1)


def _thinking_run(n_thinking=4, n_answer=3, step=0.1, finish=True, finished=None, **record) -> LiveRun:
    """A view's LiveRun fed the updates of a thinking run; finish: its Finished event and the closing
    update, with `record` set on the finished record (energy, battery) as the session sets it."""
    recorder = RunRecorder(0, None, "fair", T0, thinking_style="think-tags")
    run = LiveRun(0)
    worker = StreamSplit("think-tags")  # the events as a worker sends them
    run.apply(recorder.feed(Started(T0 + 0.01, 12, 2)))
    run.apply(recorder.feed(PromptDone(T0 + 0.2, 12, 12, 0.19)))
    t = T0 + 0.2
    texts = ["<think>", "hmm"] + ["x"] * (n_thinking - 3) + ["</think>"] + ["ans"] * n_answer
    for text in texts:
        t += step
        run.apply(recorder.feed(worker.token(t, text, 1)))
    if finish:
        run.apply(recorder.feed(worker.finished(**(finished or dict(t=t + 0.01, finish_reason="stop",
                                                                      n_generated=len(texts), engine_decode_s=0.5)))))
        run.apply(recorder.closing_update(recorder.record().updated(**record)))
    return run


def _counter_samples(watts: float, t0: float, t1: float, dt: float = 0.1) -> list[Sample]:
    samples, t = [], t0
    while t <= t1 + 1e-9:
        reading = Reading(RAPL, t, joules=watts * (t - t0))
        samples.append(Sample(t, 50.0, 1, 1, None, None, {}, {RAPL.name: reading}))
        t += dt
    return samples


def test_once_ended_it_says_what_the_thought_limits_did():
    run = _thinking_run(finished=dict(t=T0 + 2.0, finish_reason="stop", n_generated=7, engine_decode_s=0.5,
                                      thinking_budget_hit=True, thinking_extended=2))
    assert live_stats(run, T0 + 3.0).thought_limits == "held open 2× with Wait · closed by its budget"
    assert live_stats(_thinking_run(), T0 + 3.0).thought_limits == ""


def test_a_run_that_has_not_started_is_waiting_and_shows_no_figures():
    # Fair mode: the second pane waits while the first runs; nothing of the first may show in it.
    stats = live_stats(LiveRun(1), T0 + 3.0, _counter_samples(20.0, T0, T0 + 3))
    assert stats.status == WAITING
    assert stats.elapsed_s is None and stats.joules is None and stats.watts_now is None
    assert (stats.n_thinking, stats.n_answer, stats.ttft_s) == (0, 0, None)


def test_the_view_gets_every_piece_once_in_order():
    run = _thinking_run()
    assert (run.thinking, run.answer) == (run.result.thinking, run.result.text) == ("hmmx", "ansansans")


def test_a_finished_run_shows_its_record_and_nothing_else():
    run = _thinking_run(energy_j=7.5, avg_w=9.0, energy_source="estimated:tdp", decode_tps=11.0)
    stats = live_stats(run, T0 + 60, _counter_samples(20.0, T0, T0 + 2))
    r = run.result
    assert (stats.elapsed_s, stats.ttft_s, stats.ttfat_s) == (r.total_s, r.ttft_s, r.ttfat_s)
    assert (stats.tps_avg, stats.joules, stats.watts_now) == (11.0, 7.5, 9.0)  # the record's, not recomputed


def test_while_running_the_figures_grow_with_the_clock():
    recorder = _thinking_run(finish=False)
    stats = live_stats(recorder, T0 + 2.0)
    assert stats.status == "running"
    assert stats.elapsed_s == pytest.approx(2.0)
    assert stats.ttft_s == pytest.approx(0.3)
    assert (stats.n_thinking, stats.n_answer) == (4, 3)
    assert stats.ttfat_s == pytest.approx(0.3 + 4 * 0.1)  # the first answer token after four thinking ones
    assert stats.thinking_s == pytest.approx(0.4)
    assert stats.tps_avg == pytest.approx(10.0)
    assert stats.tps_now == 0.0  # nothing in the last second: it has stalled
    assert live_stats(recorder, T0 + 1.0).tps_now == pytest.approx(7 / 0.7)  # 7 tokens since the first, 0.7 s ago
    assert stats.joules is None and stats.energy_source == ""  # no samples: no energy, never a made-up one


def test_once_finished_the_clock_stops_and_tps_now_goes_away():
    run = _thinking_run()
    later = live_stats(run, T0 + 60)
    assert later.elapsed_s == pytest.approx(run.result.total_s)
    assert later.tps_now is None


def test_energy_so_far_comes_from_the_samples_with_its_source():
    recorder = _thinking_run(finish=False)
    samples = _counter_samples(20.0, T0 - 0.5, T0 + 1.5)
    stats = live_stats(recorder, T0 + 1.5, samples)
    assert stats.joules == pytest.approx(30.0, rel=1e-6)  # 20 W for 1.5 s
    assert stats.watts_now == pytest.approx(20.0, rel=1e-6)
    assert stats.energy_source == "measured:rapl"


def test_a_finished_run_shows_its_attributed_energy():
    run = _thinking_run(energy_j=7.5, avg_w=9.0, energy_source="estimated:tdp")
    stats = live_stats(run, T0 + 5, _counter_samples(20.0, T0, T0 + 2))
    assert (stats.joules, stats.watts_now, stats.energy_source) == (7.5, 9.0, "estimated:tdp")


def test_an_estimate_shows_its_tdp_formula_and_why_it_is_not_measured_while_running_and_after():
    why = "/sys/class/powercap does not exist: no powercap interface (not Linux, or a VM without RAPL)"
    tdp = SourceInfo("tdp", "estimated:tdp", "cpu", "CPU power estimated from utilisation and a 45 W TDP (user)",
                     "W (estimated)", 0.0, {"tdp_w": 45.0, "formula": "P = TDP × u", "why_estimated": why})
    samples = [Sample(T0 - 0.5 + 0.1 * i, 50.0, 1, 1, None, None, {},
                      {"tdp": Reading(tdp, T0 - 0.5 + 0.1 * i, joules=22.5 * 0.1 * i, watts=22.5)}) for i in range(21)]
    running = live_stats(_thinking_run(finish=False), T0 + 1.5, samples)
    assert running.energy_about.splitlines() == [
        "CPU power estimated from utilisation and a 45 W TDP (user) (P = TDP × u)", f"estimated, not measured: {why}",
        "charged for: CPU"]
    detail = {"details": {"tdp": {"measures": "CPU power estimated from utilisation and a 45 W TDP (user)",
                                  "formula": "P = TDP × u", "why_estimated": why}},
              "notes": ["tdp: approximate: the window is shorter than the sensor's 0.1 s update"]}
    run = _thinking_run(energy_j=7.5, energy_source="estimated:tdp", energy_detail=detail)
    assert live_stats(run, T0 + 5).energy_about.splitlines()[-1] == (
        "tdp: approximate: the window is shorter than the sensor's 0.1 s update")


def test_a_cpu_run_beside_an_idle_gpu_is_charged_the_cpu_and_says_what_the_gpu_drew():
    samples = [Sample(T0 - 0.5 + 0.1 * i, 50.0, 1, 1, None, None, {}, {
        RAPL.name: Reading(RAPL, T0 - 0.5 + 0.1 * i, joules=20.0 * 0.1 * i),  # 20 W CPU
        NVML_W.name: Reading(NVML_W, T0 - 0.5 + 0.1 * i, watts=15.0),  # a GPU idling at 15 W
    }) for i in range(21)]
    on_cpu = live_stats(_thinking_run(finish=False), T0 + 1.0, samples, domains=("cpu", "dram"))
    assert on_cpu.joules == pytest.approx(20.0) and on_cpu.watts_now == pytest.approx(20.0)
    assert on_cpu.energy_about.splitlines()[-2:] == [
        "charged for: CPU", "not charged: nvml:0 (GPU) drew 15.0 J (15.0 W) meanwhile; the run did not use it"]
    on_gpu = live_stats(_thinking_run(finish=False), T0 + 1.0, samples, domains=("cpu", "dram", "gpu"))
    assert on_gpu.joules == pytest.approx(35.0) and "charged for: CPU + GPU" in on_gpu.energy_about


def test_it_says_whether_the_run_is_on_battery_while_running_and_after():
    from dataclasses import replace

    from app.runs import power_supply

    running = _thinking_run(finish=False)
    unplugged = [replace(s, on_mains=False, battery_percent=63.0) for s in _counter_samples(20.0, T0, T0 + 1)]
    assert live_stats(running, T0 + 1, unplugged).power_supply == "on battery (63%)"
    assert live_stats(running, T0 + 1, _counter_samples(20.0, T0, T0 + 1)).power_supply == ""  # no battery
    finished = _thinking_run(on_mains=True, battery_percent=80.0)
    assert live_stats(finished, T0 + 5, unplugged).power_supply == "on mains power"  # the run's own record
    assert power_supply(False, None) == "on battery"


def test_the_tokens_per_second_curve_counts_each_bin():
    xs, ys = tokens_per_second_curve([1.0, 1.1, 1.2, 1.3, 1.6, 2.9], bin_s=0.5)
    assert xs == pytest.approx([1.25, 1.75, 2.25, 2.75])
    assert ys == pytest.approx([8.0, 2.0, 0.0, 2.0])
    assert tokens_per_second_curve([]) == ([], [])


def test_the_power_curve_sums_cpu_and_gpu_and_prefers_measured_cpu():
    samples = []
    for n in range(5):
        t = T0 + n * 0.5
        samples.append(Sample(t, 10.0, 1, 1, None, None, {}, {
            RAPL.name: Reading(RAPL, t, joules=12.0 * n * 0.5),  # a 12 W counter
            NVML_W.name: Reading(NVML_W, t, watts=30.0),  # a power-only GPU
            TDP.name: Reading(TDP, t, watts=99.0),  # an estimate for the CPU that RAPL measures: left out
        }))
    ts, watts, label = power_series(samples)
    assert label == "measured:nvml + measured:rapl"
    assert all(w == pytest.approx(42.0) for w in watts)
    assert ts[0] == pytest.approx(T0) and ts[-1] == pytest.approx(T0 + 2.0)
    assert power_series([]) == ([], [], "")


def test_a_run_shorter_than_a_sample_interval_still_has_its_power_curve():
    # Readings at 0 s and 0.5 s only; the run lasted from 0.1 s to 0.3 s, with no sample inside it.
    samples = [Sample(T0 + t, 10.0, 1, 1, None, None, {}, {RAPL.name: Reading(RAPL, T0 + t, joules=12.0 * t)})
               for t in (0.0, 0.5)]
    ts, watts, label = power_series(samples, window=(T0 + 0.1, T0 + 0.3))
    # The window's ends and the one interval's midpoint (a counter's average power), nothing outside it.
    assert ts == pytest.approx([T0 + 0.1, T0 + 0.25, T0 + 0.3])
    assert watts == pytest.approx([12.0] * 3) and label == "measured:rapl"
