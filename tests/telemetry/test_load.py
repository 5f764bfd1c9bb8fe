"""Other programs' load on the CPU: measured from the sampler's readings, and said when it distorts a run."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from app.telemetry.load import background_cores, background_now, load_note, threads_warning
from app.telemetry.sampler import ProcSample, Sample, Sampler

WORKER = 4242
SPIN = "import time\nend = time.perf_counter() + 30\nwhile time.perf_counter() < end: pass"


def _sample(t: float, busy_percent: float, worker_cpu_s: float, own_cpu_s: float, cpus: int = 2) -> Sample:
    procs = {WORKER: ProcSample(cpu_s=worker_cpu_s, cpu_percent=0.0, rss=0, peak_rss=0)}
    return Sample(t, busy_percent, 1, 1, None, None, procs, {}, own_cpu_s=own_cpu_s, logical_cpus=cpus)


def test_others_load_is_the_busy_cpu_less_the_workers_and_the_app():
    # Two CPUs all busy for 2 s: the worker used one CPU, the app 0.2 of one; others the rest, 0.8.
    samples = [_sample(t, 100.0, worker_cpu_s=t, own_cpu_s=1.0 + 0.2 * t) for t in (0.0, 1.0, 2.0)]
    assert background_cores(samples, 0.0, 2.0) == pytest.approx(0.8)


def test_only_the_runs_window_counts():
    # Others were busy (a whole CPU) only in the first second; the run began at 1 s.
    samples = [_sample(0.0, 0.0, 0.0, 1.0), _sample(1.0, 50.0, 0.0, 1.0), _sample(2.0, 0.0, 0.0, 1.0)]
    assert background_cores(samples, 0.0, 2.0) == pytest.approx(0.5)
    assert background_cores(samples, 1.0, 2.0) == pytest.approx(0.0)
    assert background_cores(samples, 0.5, 1.0) == pytest.approx(1.0)  # half an interval, at its rate


def test_nothing_sampled_is_not_measured():
    assert background_cores([], 0.0, 1.0) is None
    assert background_cores([_sample(0.0, 50.0, 0.0, 0.0)], 0.0, 1.0) is None  # one sample: no interval
    old = [_sample(t, 50.0, 0.0, 0.0, cpus=0) for t in (0.0, 1.0)]  # no CPU count: samples from before
    assert background_cores(old, 0.0, 1.0) is None


def test_a_run_is_flagged_when_its_threads_outnumber_the_free_cpus():
    said = load_note(1.0, n_threads=2, logical_cpus=2)
    assert said == ("other programs kept 1.0 of 2 CPUs busy; 2 threads shared the rest, "
                    "so its speed and energy read worse than this machine gives")
    assert load_note(1.0, n_threads=1, logical_cpus=2) == ""  # one thread fits the free CPU
    assert load_note(0.3, n_threads=2, logical_cpus=2) == ""  # a browser tab is not load
    assert load_note(None, n_threads=2, logical_cpus=2) == ""  # not measured: nothing said
    assert load_note(2.0, n_threads=0, logical_cpus=2) == ""  # no CPU threads (a remote or MLX run)


def test_before_a_run_the_warning_says_how_many_threads_fit():
    assert threads_warning(2, 2, 1.0) == ("other programs keep 1.0 of 2 CPUs busy; with 2 threads llama.cpp "
                                          "will wait on them (figures will read low): stop them, or run with 1 thread")
    assert threads_warning(8, 8, 7.9).endswith("run with 1 thread")  # never fewer than one
    assert threads_warning(8, 8, 2.0).endswith("run with 6 threads")
    assert threads_warning(4, 8, 1.0) == ""


@pytest.fixture
def spinner():
    process = subprocess.Popen([sys.executable, "-c", SPIN])
    yield process
    process.kill()
    process.wait()


def test_a_real_busy_process_is_others_load_until_it_is_one_of_ours(spinner):
    time.sleep(0.3)  # let it start spinning
    assert background_now(seconds=0.5) >= 0.6  # a whole core, less the noise of a shared machine
    sampler = Sampler(interval_s=0.05)
    sampler.add_pid(spinner.pid)  # now it is a worker the app follows: not others' load
    with sampler:
        sampler.sample_now()
        time.sleep(0.6)
        sampler.sample_now()
    samples = sampler.samples
    t0, t1 = samples[0].t, samples[-1].t
    system = sum(b.cpu_percent / 100 * b.logical_cpus * (b.t - a.t) for a, b in zip(samples, samples[1:])) / (t1 - t0)
    assert background_cores(samples, t0, t1) <= system - 0.6  # the spinner's core is taken out


@pytest.mark.model
def test_compare_warns_up_front_when_others_load_leaves_too_few_cpus(monkeypatch, capsys):
    import app.cli
    from app.cli import main

    monkeypatch.setattr(app.cli, "logical_cpus", lambda: 2)
    monkeypatch.setattr(app.cli, "background_now", lambda ours=(): 1.5)  # another program on 1.5 of 2 CPUs
    assert main(["compare", "Hi", "-m", "smollm2-135m", "--no-log", "--max-tokens", "4", "--threads", "2"]) == 0
    assert ("fastslow: warning: other programs keep 1.5 of 2 CPUs busy; with 2 threads llama.cpp will wait on "
            "them (figures will read low): stop them, or run with 1 thread") in capsys.readouterr().err.splitlines()
    monkeypatch.setattr(app.cli, "background_now", lambda ours=(): 0.1)  # a quiet machine: nothing said
    assert main(["compare", "Hi", "-m", "smollm2-135m", "--no-log", "--max-tokens", "4", "--threads", "2"]) == 0
    assert "busy" not in capsys.readouterr().err
