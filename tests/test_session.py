"""Comparisons on both bundled models: fair and live, figures consistent, failures isolated."""

import os
import signal

import pytest

from app.engines.types import GenerationRequest, ModelSpec, Sampling, Token
from app.hardware import MemoryState
from app.session import Session

QUESTION = GenerationRequest.from_prompt(
    "Name three primary colours.", max_tokens=24, sampling=Sampling(temperature=0.0)
)


def assert_consistent(result):
    assert result.status == "ok", result.error
    assert result.text.strip()
    assert result.n_prompt_tokens > 0 and result.n_generated > 0
    assert 0 < result.n_prompt_evaluated <= result.n_prompt_tokens
    assert result.ttft_s > 0 and result.prompt_tps > 0 and result.decode_tps > 0
    decode_window = result.token_times_s[-1] - result.token_times_s[0]
    # The first token cannot come before the prompt was processed, and nothing after the end.
    assert result.ttft_s >= result.prompt_eval_s * 0.9
    assert result.ttft_s + decode_window <= result.total_s + 1e-6
    assert result.decode_tps == pytest.approx((result.n_generated - 1) / decode_window)
    assert len(result.token_times_s) == result.n_generated


@pytest.fixture(scope="module")
def fair_session(smollm2_spec, gemma_spec):
    with Session([smollm2_spec, gemma_spec], mode="fair") as session:
        session.load()
        yield session


def test_fair_mode_runs_panes_one_after_another_with_all_cores(fair_session):
    results = fair_session.compare(QUESTION)
    assert [r.model for r in results] == ["smollm2-135m", "gemma3-270m"]
    for result in results:
        assert_consistent(result)
        assert result.mode == "fair"
        assert result.n_threads == fair_session.cores
        # Energy always comes with where it came from (estimated here: no RAPL/NVML on this VM).
        assert result.energy_j > 0 and result.energy_source.startswith(("measured:", "estimated:"))
        assert result.j_per_token == pytest.approx(result.energy_j / result.n_generated)
        assert result.peak_rss_bytes > 50 * 2**20  # the worker holds the model
    first_end = results[0].total_s
    # Pane 2 was submitted only after pane 1 finished: its clock starts later.
    assert fair_session.recorders[1].t_submit >= fair_session.recorders[0].t_submit + first_end


def test_live_mode_runs_panes_at_once_with_cores_split(smollm2_spec, gemma_spec):
    with Session([smollm2_spec, gemma_spec], mode="live", cores=2) as session:
        session.load()
        request = GenerationRequest.from_prompt("Describe the sea in detail.", max_tokens=48)
        results = session.compare(request)
        for result in results:
            assert_consistent(result)
            assert result.mode == "live" and result.n_threads == 1
            assert "shared by CPU time" in result.energy_source
        # Both were generating at the same time: their token windows overlap.
        starts = [rec.t_submit + r.token_times_s[0] for rec, r in zip(session.recorders.values(), results)]
        ends = [rec.t_submit + r.token_times_s[-1] for rec, r in zip(session.recorders.values(), results)]
        assert max(starts) < min(ends)


def test_a_killed_worker_fails_its_pane_and_the_other_pane_finishes(smollm2_spec, gemma_spec):
    with Session([smollm2_spec, gemma_spec], mode="live") as session:
        session.load()
        victim = session.panes[0].client.pid
        request = GenerationRequest.from_prompt("Write a long story about a dragon.", max_tokens=64)
        killed = False
        for i, event, _ in session.stream(request):
            if i == 0 and isinstance(event, Token) and not killed:
                os.kill(victim, signal.SIGKILL)
                killed = True
        dead, alive = session.results
        assert dead.status == "failed" and dead.error_kind == "worker_died"
        assert "SIGKILL" in dead.error
        assert alive.status == "ok" and alive.n_generated == 64


def test_a_pane_that_cannot_load_leaves_the_other_running(tmp_path, smollm2_spec):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00")  # the magic, then nothing
    with Session([ModelSpec(path=str(broken)), smollm2_spec]) as session:
        session.load()
        bad, good = session.compare(GenerationRequest.from_prompt("Hi", max_tokens=4))
        assert bad.status == "failed" and bad.error_kind == "bad_model_file"
        assert "broken.gguf" in bad.error
        assert good.status == "ok" and good.n_generated == 4


def test_a_model_that_does_not_fit_is_refused_with_figures(smollm2_spec):
    tiny = MemoryState(ram_total=64 * 2**20, ram_available=32 * 2**20, gpus=())
    with Session([smollm2_spec], memory=tiny) as session:
        session.load()
        [result] = session.compare(QUESTION)
        assert result.error_kind == "does_not_fit"
        assert "GiB" in result.error or "MiB" in result.error
        assert session.panes[0].client is None  # no worker was started


def test_asked_to_think_a_model_that_cannot_is_scaffolded_and_labelled(smollm2_spec):
    with Session([smollm2_spec]) as session:
        session.load()
        request = GenerationRequest.from_prompt("What is 6 times 7?", max_tokens=40, thinking=True,
                                                sampling=Sampling(temperature=0.0))
        [result] = session.compare(request)
    assert result.status == "ok" and result.strategy == "scaffold" and result.thinking_style == "scaffold"
    assert session.requests[0].messages[0].role == "system"
    assert result.n_thinking_tokens + result.n_answer_tokens == result.n_generated
    assert result.n_thinking_tokens > 0


def test_each_run_stores_its_telemetry_series_with_the_power_source(tmp_path, smollm2_spec):
    from app.store import SessionLog

    log = SessionLog.open(tmp_path / "log.db")
    with Session([smollm2_spec], mode="fair", log=log) as session:
        session.load()
        [result] = session.compare(QUESTION)
    record = log.run_record(log.list_runs()[0].id)
    log.close()
    names = {s["name"] for s in record["telemetry"]}
    assert {"system_cpu_percent", "worker_cpu_percent", "worker_rss_bytes", "power_w"} <= names
    power = [s for s in record["telemetry"] if s["name"] == "power_w"]
    assert all(s["unit"] == "W" and s["source"].split(":")[0] in ("measured", "estimated") for s in power)
    assert all(0 <= s["t_s"] <= result.total_s for s in record["telemetry"])  # the run's own window
    rss = [s["value"] for s in record["telemetry"] if s["name"] == "worker_rss_bytes"]
    assert min(rss) > 50e6  # the worker holds the 100 MB model


def test_a_log_that_fails_mid_session_gives_way_to_memory_and_loses_nothing(tmp_path, smollm2_spec):
    import sqlite3

    from app.store import MemoryLog, SessionLog

    path = tmp_path / "log.db"
    log = SessionLog.open(path, timeout=0.2)
    with Session([smollm2_spec, smollm2_spec], mode="fair", log=log) as session:
        session.load()
        session.compare(QUESTION)  # written to the file
        locker = sqlite3.connect(path, timeout=0.2)
        locker.execute("BEGIN EXCLUSIVE")  # another program holds the file
        results = session.compare(QUESTION)
        assert [r.status for r in results] == ["ok", "ok"]  # the comparison went on
        assert session.log_error is not None and session.log_error.kind == "locked"
        assert isinstance(session.log, MemoryLog)
        kept = session.log.list_runs()
        assert [(r.status, r.pane) for r in kept] == [("ok", 1), ("ok", 0)]  # this prompt's runs, complete
        assert session.log.run_record(kept[0].id)["telemetry"]
        session.compare(QUESTION)  # later prompts go to memory too
        assert len(session.log.list_runs()) == 4
        locker.rollback()
        locker.close()
        saved = SessionLog.open(path)
        assert session.log.save_to(saved) == (4, 0)
    statuses = [r.status for r in saved.list_runs()]
    saved.close()
    log.close()
    assert statuses == ["ok"] * 6


def test_a_power_source_lost_mid_session_is_named_in_every_later_energy_figure(smollm2_spec, monkeypatch):
    import app.session
    from app.telemetry.sources import detect_sources, nvml_sources
    from tests.telemetry.test_nvml import Gpu, StandInDriver

    gpu = Gpu(energy_mj=1_000)  # this machine's real sources, plus a GPU (a stand-in driver) that will fall off

    def with_a_gpu(tdp_w=None):
        found = detect_sources(tdp_w)
        found.sources += nvml_sources(StandInDriver(gpu))[0]
        return found

    monkeypatch.setattr(app.session, "detect_sources", with_a_gpu)
    with Session([smollm2_spec], mode="fair") as session:
        session.load()
        request = GenerationRequest.from_prompt("Hi", max_tokens=4, sampling=Sampling(temperature=0.0))
        [before] = session.compare(request)
        assert session.lost_sources() == [] and "measured:nvml" in before.energy_source
        gpu.gone = True
        [after] = session.compare(request)
        lost = "nvml:0 stopped answering: GPU is lost — energy leaves it out from then on"
        assert session.lost_sources() == [lost]
        assert after.energy_approximate and after.energy_detail["notes"][-1] == lost
        [later] = session.compare(request)
        assert later.energy_detail["notes"][-1] == lost and "nvml" not in later.energy_source


def test_each_run_says_whether_it_ran_on_battery(smollm2_spec, monkeypatch):
    import collections

    import psutil

    request = GenerationRequest.from_prompt("Hi", max_tokens=2, sampling=Sampling(temperature=0.0))
    with Session([smollm2_spec], mode="fair") as session:
        session.load()
        [here] = session.compare(request)
    real = psutil.sensors_battery()
    assert (here.on_mains, here.battery_percent) == ((real.power_plugged, real.percent) if real else (None, None))
    # A laptop unplugged at 63% (the OS's battery reading, stood in for: this machine has no battery).
    battery = collections.namedtuple("sbattery", "percent secsleft power_plugged")(63.0, 7200, False)
    monkeypatch.setattr(psutil, "sensors_battery", lambda: battery)
    with Session([smollm2_spec], mode="fair") as session:
        session.load()
        [unplugged] = session.compare(request)
    assert (unplugged.on_mains, unplugged.battery_percent) == (False, 63.0)
