"""Attribution on synthetic power curves whose integrals are known exactly."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.telemetry.energy import energy_for_window, split_phases
from app.telemetry.sampler import ProcSample, Sample
from app.telemetry.sources import Reading, SourceInfo

RAPL0 = SourceInfo("rapl:package-0", "measured:rapl", "cpu", "CPU package 0", "µJ", 0.001)
RAPL1 = SourceInfo("rapl:package-1", "measured:rapl", "cpu", "CPU package 1", "µJ", 0.001)
GPU = SourceInfo("nvml:0", "measured:nvml", "gpu", "GPU 0", "mJ", 0.1)
GPU_POWER = SourceInfo("nvml:0", "measured:nvml", "gpu", "GPU 0 power", "mW", 1.0)
TDP = SourceInfo("tdp", "estimated:tdp", "cpu", "estimate", "W", 0.0, {"tdp_w": 65.0, "formula": "P = TDP × u"})

DT = 0.1
GRID = [round(i * DT, 10) for i in range(21)]  # 0.0 … 2.0 s


def counter(info, energy_at):
    """Readings of a cumulative counter whose energy at time t is energy_at(t)."""
    return {t: Reading(info, t, joules=energy_at(t)) for t in GRID}


def power(info, watts_at):
    return {t: Reading(info, t, watts=watts_at(t)) for t in GRID}


def samples(*series, procs=None):
    """Samples on GRID carrying the given per-source readings and per-pid CPU seconds."""
    procs = procs or {}
    return [
        Sample(
            t=t, cpu_percent=0.0, mem_total=1, mem_available=1, battery_percent=None, on_mains=None,
            procs={pid: ProcSample(cpu_s=cpu_at(t), cpu_percent=0.0, rss=1, peak_rss=1) for pid, cpu_at in procs.items()},
            power={readings[t].info.name: readings[t] for readings in series},
        )
        for t in GRID
    ]


def test_constant_power_from_a_counter():
    figure = energy_for_window(samples(counter(RAPL0, lambda t: 10 * t)), 0.35, 1.35)
    assert figure.joules == pytest.approx(10.0)
    assert figure.avg_w == pytest.approx(10.0) and figure.peak_w == pytest.approx(10.0)
    assert figure.source_label == "measured:rapl" and not figure.approximate
    assert figure.breakdown == {"rapl:package-0": pytest.approx(10.0)} and figure.share == 1.0
    assert figure.details["rapl:package-0"]["label"] == "measured:rapl"


def test_a_power_ramp_is_integrated_exactly():
    # P(t) = 5 + 10 t W  ->  ∫ from 0.25 to 1.75 = 5·1.5 + 5·(1.75² − 0.25²) = 22.5 J
    figure = energy_for_window(samples(power(GPU_POWER, lambda t: 5 + 10 * t)), 0.25, 1.75)
    assert figure.joules == pytest.approx(22.5)
    assert figure.avg_w == pytest.approx(15.0)
    assert figure.peak_w == pytest.approx(22.5)  # P(1.75)


def test_a_counter_of_a_ramp_is_exact_at_sample_times():
    # E(t) = 5 t + 5 t², the counter of the same ramp
    figure = energy_for_window(samples(counter(RAPL0, lambda t: 5 * t + 5 * t * t)), 0.2, 1.8)
    assert figure.joules == pytest.approx(24.0)
    assert figure.peak_w == pytest.approx(22.5)  # the mean power of the last interval, 1.7 … 1.8 s


def test_gpu_and_cpu_packages_add_up_with_the_breakdown_kept():
    data = samples(counter(RAPL0, lambda t: 20 * t), counter(RAPL1, lambda t: 30 * t), counter(GPU, lambda t: 100 * t))
    figure = energy_for_window(data, 0.5, 1.5)
    assert figure.joules == pytest.approx(150.0)
    assert figure.breakdown == {
        "rapl:package-0": pytest.approx(20.0),
        "rapl:package-1": pytest.approx(30.0),
        "nvml:0": pytest.approx(100.0),
    }
    assert figure.source_label == "measured:nvml + measured:rapl"
    assert figure.peak_w == pytest.approx(150.0)


def test_a_cpu_run_is_not_charged_the_idle_gpu_and_says_what_it_drew():
    data = samples(counter(RAPL0, lambda t: 20 * t), counter(GPU, lambda t: 12 * t))
    figure = energy_for_window(data, 0.5, 1.5, domains=("cpu", "dram"))
    assert figure.joules == pytest.approx(20.0) and figure.breakdown == {"rapl:package-0": pytest.approx(20.0)}
    assert figure.covers == ("cpu",) and figure.left_out == {"nvml:0": pytest.approx(12.0)}
    assert figure.source_label == "measured:rapl" and not figure.approximate  # left out is said, not a flaw
    assert figure.notes == ("not charged: nvml:0 (GPU) drew 12.0 J (12.0 W) meanwhile; the run did not use it",)
    assert figure.to_dict()["covers"] == ["cpu"] and figure.to_dict()["left_out"] == {"nvml:0": pytest.approx(12.0)}


def test_a_gpu_run_is_charged_the_gpu_and_the_cpu():
    data = samples(counter(RAPL0, lambda t: 20 * t), counter(GPU, lambda t: 100 * t))
    figure = energy_for_window(data, 0.5, 1.5, domains=("cpu", "dram", "gpu"))
    assert figure.joules == pytest.approx(120.0) and figure.covers == ("cpu", "gpu") and figure.left_out == {}
    assert split_phases(data, 0.5, None, 1.5, 0, 10, domains=("cpu", "dram")).total.joules == pytest.approx(20.0)


def test_the_estimate_is_not_added_to_a_measured_cpu():
    figure = energy_for_window(samples(counter(RAPL0, lambda t: 20 * t), counter(TDP, lambda t: 65 * t)), 0.5, 1.5)
    assert figure.breakdown == {"rapl:package-0": pytest.approx(20.0)}
    assert figure.source_label == "measured:rapl"


def test_a_measured_gpu_and_an_estimated_cpu_add_up_and_say_so():
    figure = energy_for_window(samples(counter(GPU, lambda t: 100 * t), counter(TDP, lambda t: 30 * t)), 0.5, 1.5)
    assert figure.joules == pytest.approx(130.0)
    assert figure.source_label == "estimated:tdp + measured:nvml"
    assert figure.details["tdp"]["tdp_w"] == 65.0 and figure.details["tdp"]["formula"] == "P = TDP × u"


def test_overlapping_runs_are_shared_by_cpu_time():
    # Worker 1 uses 3 s of CPU a second, worker 2 uses 1: a 75/25 split of 40 W.
    data = samples(counter(RAPL0, lambda t: 40 * t), procs={1: lambda t: 3 * t, 2: lambda t: 1 * t})
    first = energy_for_window(data, 0.5, 1.5, pid=1, share_with=[2])
    second = energy_for_window(data, 0.5, 1.5, pid=2, share_with=[1, 2])  # its own pid in the list is ignored
    assert first.share == pytest.approx(0.75) and second.share == pytest.approx(0.25)
    assert first.joules == pytest.approx(30.0) and second.joules == pytest.approx(10.0)
    assert first.breakdown == {"rapl:package-0": pytest.approx(30.0)}
    assert first.peak_w == pytest.approx(30.0) and first.avg_w == pytest.approx(30.0)
    assert first.source_label == "measured:rapl, shared by CPU time"
    assert first.notes[-1] == "shared by CPU time: this run's share is 75% (fair mode measures each run alone)"
    assert not first.approximate


def test_a_run_alone_gets_the_whole_window():
    data = samples(counter(RAPL0, lambda t: 40 * t), procs={1: lambda t: 0.5 * t})
    figure = energy_for_window(data, 0.5, 1.5, pid=1)
    assert figure.share == 1.0 and figure.joules == pytest.approx(40.0) and figure.source_label == "measured:rapl"


def test_without_cpu_samples_for_a_worker_the_window_is_shared_equally():
    data = samples(counter(RAPL0, lambda t: 40 * t), procs={2: lambda t: t})
    figure = energy_for_window(data, 0.5, 1.5, pid=1, share_with=[2])
    assert figure.share == 0.5 and figure.joules == pytest.approx(20.0)
    assert figure.source_label.endswith("shared equally (no CPU time recorded for the workers)")


def test_workers_that_used_no_cpu_share_equally():
    data = samples(counter(RAPL0, lambda t: 40 * t), procs={1: lambda t: 0.0, 2: lambda t: 0.0, 3: lambda t: 0.0})
    figure = energy_for_window(data, 0.5, 1.5, pid=1, share_with=[2, 3])
    assert figure.share == pytest.approx(1 / 3) and "shared equally" in figure.source_label


def test_a_run_shorter_than_a_sample_interval_is_flagged_not_zero():
    figure = energy_for_window(samples(counter(RAPL0, lambda t: 10 * t)), 0.52, 0.54)
    assert figure.joules == pytest.approx(0.2)  # 10 W × 20 ms, interpolated
    assert figure.approximate
    assert "fewer than two samples inside the window" in figure.notes[0]


def test_a_run_shorter_than_the_sensor_update_is_flagged():
    figure = energy_for_window(samples(counter(GPU, lambda t: 100 * t)), 0.5, 0.55)  # NVML counter: 0.1 s
    assert figure.approximate and "shorter than the sensor's 0.1 s update" in figure.notes[0]
    assert figure.joules == pytest.approx(5.0)


def test_a_window_beyond_the_samples_is_extrapolated_and_flagged():
    figure = energy_for_window(samples(counter(RAPL0, lambda t: 10 * t)), 1.5, 2.5)
    assert figure.joules == pytest.approx(10.0) and figure.approximate
    assert "extrapolated" in figure.notes[0]
    held = energy_for_window(samples(power(GPU_POWER, lambda t: 50.0)), 1.9, 2.4)
    assert held.joules == pytest.approx(25.0) and held.approximate


def test_a_single_power_reading_gives_a_flagged_figure():
    one = samples(power(GPU_POWER, lambda t: 80.0))[5:6]
    figure = energy_for_window(one, 0.5, 0.6)
    assert figure.joules == pytest.approx(8.0) and figure.approximate


def test_a_single_counter_reading_gives_no_figure():
    assert energy_for_window(samples(counter(RAPL0, lambda t: t))[5:6], 0.5, 0.6) is None


def test_a_counter_source_with_one_reading_is_left_out_and_said():
    data = samples(counter(GPU, lambda t: 100 * t))
    data[10] = replace(data[10], power={**data[10].power, "rapl:package-0": Reading(RAPL0, 1.0, joules=0.0)})
    figure = energy_for_window(data, 0.5, 1.5)
    assert figure.breakdown == {"nvml:0": pytest.approx(100.0)}
    assert figure.approximate and "single counter reading" in figure.notes[0]


def test_no_power_data_gives_no_figure():
    assert energy_for_window(samples(), 0.5, 1.5) is None
    assert energy_for_window([], 0.5, 1.5) is None


@pytest.mark.parametrize("t0, t1", [(1.0, 1.0), (1.0, 0.5)])
def test_an_empty_window_is_refused(t0, t1):
    with pytest.raises(ValueError, match="positive length"):
        energy_for_window(samples(counter(RAPL0, lambda t: t)), t0, t1)


def test_to_dict_keeps_the_label_with_the_number():
    figure = energy_for_window(samples(counter(RAPL0, lambda t: 10 * t)), 0.5, 1.5)
    d = figure.to_dict()
    assert d["joules"] == pytest.approx(10.0) and d["source"] == "measured:rapl" and d["approximate"] is False


# -- thinking vs answer --------------------------------------------------------------------------


def thinking_then_answer(t):
    """30 W while thinking (0 … 1 s), 10 W while answering (1 … 2 s)."""
    return 30 * t if t <= 1 else 30 + 10 * (t - 1)


def test_split_phases_gives_each_phase_its_energy_and_joules_per_token():
    data = samples(counter(RAPL0, thinking_then_answer))
    phases = split_phases(data, 0.0, 1.0, 2.0, n_thinking=60, n_answer=20)
    assert phases.total.joules == pytest.approx(40.0)
    assert phases.thinking.joules == pytest.approx(30.0) and phases.answer.joules == pytest.approx(10.0)
    assert phases.thinking.peak_w == pytest.approx(30.0) and phases.answer.avg_w == pytest.approx(10.0)
    assert phases.j_per_thinking_token == pytest.approx(0.5)
    assert phases.j_per_answer_token == pytest.approx(0.5)
    assert phases.j_per_token == pytest.approx(0.5)


def test_split_phases_shares_each_phase_by_its_own_cpu_time():
    # Worker 1 has the CPU to itself while thinking, then splits it evenly with worker 2.
    data = samples(counter(RAPL0, thinking_then_answer), procs={1: lambda t: t, 2: lambda t: max(t - 1, 0.0)})
    phases = split_phases(data, 0.0, 1.0, 2.0, 10, 10, pid=1, share_with=[2])
    assert phases.thinking.share == pytest.approx(1.0) and phases.thinking.joules == pytest.approx(30.0)
    assert phases.answer.share == pytest.approx(0.5) and phases.answer.joules == pytest.approx(5.0)


def test_a_run_that_did_not_think_is_all_answer():
    phases = split_phases(samples(counter(RAPL0, thinking_then_answer)), 0.5, None, 1.5, 0, 25)
    assert phases.thinking is None and phases.answer is phases.total
    assert phases.j_per_thinking_token is None and phases.j_per_answer_token == pytest.approx(phases.total.joules / 25)


def test_a_run_that_ended_mid_thought_has_no_answer_phase():
    phases = split_phases(samples(counter(RAPL0, thinking_then_answer)), 0.0, 1.0, 1.0, 30, 0)
    assert phases.answer is None and phases.thinking is phases.total
    assert phases.j_per_answer_token is None and phases.j_per_thinking_token == pytest.approx(1.0)


def test_a_boundary_at_the_start_means_no_thinking():
    phases = split_phases(samples(counter(RAPL0, thinking_then_answer)), 0.0, 0.0, 2.0, 0, 10)
    assert phases.thinking is None and phases.answer.joules == pytest.approx(40.0)


def test_a_boundary_outside_the_run_is_refused():
    with pytest.raises(ValueError, match="outside the run"):
        split_phases(samples(counter(RAPL0, thinking_then_answer)), 0.5, 1.8, 1.5, 1, 1)


def test_split_phases_without_power_data_is_none():
    assert split_phases(samples(), 0.0, 1.0, 2.0, 1, 1) is None


def test_flat_fields_for_a_run_record():
    phases = split_phases(samples(counter(RAPL0, thinking_then_answer)), 0.0, 1.0, 2.0, 60, 20)
    flat = phases.flat()
    assert flat["energy_j"] == pytest.approx(40.0) and flat["energy_source"] == "measured:rapl"
    assert flat["thinking_energy_j"] == pytest.approx(30.0) and flat["answer_energy_j"] == pytest.approx(10.0)
    assert flat["j_per_thinking_token"] == pytest.approx(0.5) and flat["energy_approximate"] is False
    assert flat["energy_detail"]["breakdown"] == {"rapl:package-0": pytest.approx(40.0)}
    no_thought = split_phases(samples(counter(RAPL0, thinking_then_answer)), 0.0, None, 2.0, 0, 20).flat()
    assert no_thought["thinking_energy_j"] is None and no_thought["j_per_thinking_token"] is None
