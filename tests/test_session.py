"""Comparisons on both bundled models: fair and live, figures consistent, failures isolated."""

import os
import signal
import time

import pytest

from app.cancellation import Cancellation
from app.engines.types import GenerationRequest, ModelSpec, Sampling, Token
from app.hardware import MemoryState
from app.record import Conditions
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


def closing_updates(session, request, **kwargs):
    """Run a comparison; each pane's closing update (its finished record and its clock's origin)."""
    closing = {}
    session.compare(request, on_update=lambda u: closing.update({u.pane: u}) if u.closing else None, **kwargs)
    return [closing[i] for i in sorted(closing)]


def test_fair_mode_runs_panes_one_after_another_with_all_cores(fair_session):
    closing = closing_updates(fair_session, QUESTION)
    results = [u.result for u in closing]
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
    assert closing[1].t_submit >= closing[0].t_submit + first_end


def test_live_mode_runs_panes_at_once_with_cores_split(smollm2_spec, gemma_spec):
    with Session([smollm2_spec, gemma_spec], mode="live", cores=2) as session:
        session.load()
        request = GenerationRequest.from_prompt("Describe the sea in detail.", max_tokens=48)
        closing = closing_updates(session, request)
        for update in closing:
            assert_consistent(update.result)
            assert update.result.mode == "live" and update.result.n_threads == 1
            assert "shared by CPU time" in update.result.energy_source
        # Both were generating at the same time: their token windows overlap.
        starts = [u.t_submit + u.result.token_times_s[0] for u in closing]
        ends = [u.t_submit + u.result.token_times_s[-1] for u in closing]
        assert max(starts) < min(ends)


def test_live_mode_hands_each_update_its_own_pieces_even_to_a_slow_reader(smollm2_spec):
    # The garbled live panes: a reader that read the recorder's latest pieces after the pump thread
    # had fed it the next event showed "TomTom has 3 boxes with 1 apples apples". Each update now
    # carries its own pieces; a reader that lags behind still gets every piece once, in order.
    thinking = GenerationRequest.from_prompt("Tom has 3 boxes with 12 apples each. How many apples?",
                                             max_tokens=48, sampling=Sampling(temperature=0.0), thinking=True)
    direct = GenerationRequest.from_prompt("Tom has 3 boxes with 12 apples each. How many apples?",
                                           max_tokens=48, sampling=Sampling(temperature=0.0))
    with Session([smollm2_spec, smollm2_spec], mode="live", cores=2) as session:
        session.load()
        shown = {0: {"thinking": "", "answer": ""}, 1: {"thinking": "", "answer": ""}}
        results = {}
        for update in session.stream([direct, thinking]):
            time.sleep(0.005)  # a busy GUI thread: the other pane's pump runs ahead meanwhile
            for piece in update.pieces:
                shown[update.pane][piece.channel] += piece.text
            if update.closing:
                results[update.pane] = update.result
    for i, r in results.items():
        assert r.status == "ok" and r.n_generated > 10
        assert (shown[i]["thinking"], shown[i]["answer"]) == (r.thinking, r.text)
    assert results[1].strategy == "scaffold" and results[1].thinking


def test_a_killed_worker_fails_its_pane_and_the_other_pane_finishes(smollm2_spec, gemma_spec):
    with Session([smollm2_spec, gemma_spec], mode="live") as session:
        session.load()
        victim = session.panes[0].client.pid
        request = GenerationRequest.from_prompt("Write a long story about a dragon.", max_tokens=64)
        killed, results = False, {}
        for update in session.stream(request):
            if update.pane == 0 and isinstance(update.event, Token) and not killed:
                os.kill(victim, signal.SIGKILL)
                killed = True
            if update.closing:
                results[update.pane] = update.result
        dead, alive = results[0], results[1]
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
        asked = session.panes[0].plan(request)
    assert result.status == "ok" and result.strategy == "scaffold" and result.thinking_style == "scaffold"
    assert asked.messages[0].role == "system"
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
    run = record["run"]
    assert run["background_cores"] is not None and run["background_cores"] >= 0  # others' load, measured
    assert run["energy_detail"]["covers"] and "gpu" not in run["energy_detail"]["covers"]  # a CPU run


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
        assert session.log_waiting and not isinstance(session.log, MemoryLog)  # its rows wait for the file…
        assert session.flush_log(0.5) is False  # …which stays locked: they go to memory
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


def test_finished_runs_wait_for_a_log_locked_mid_run_and_land_in_their_own_rows(tmp_path, smollm2_spec):
    # Another program holds the file (BEGIN EXCLUSIVE) while the runs end, then lets go: each run's
    # row is completed as it finished, not left `running` to be marked interrupted.
    import sqlite3
    import threading

    from app.store import SessionLog

    path = tmp_path / "log.db"
    log = SessionLog.open(path, timeout=0.2)
    locker = sqlite3.connect(path, timeout=5, check_same_thread=False)
    with Session([smollm2_spec, smollm2_spec], mode="live", log=log) as session:
        session.load()
        lock_taken = threading.Event()

        def hold_while_running(update):
            if not lock_taken.is_set() and isinstance(update.event, Token):
                locker.execute("BEGIN EXCLUSIVE")
                lock_taken.set()

        results = session.compare(QUESTION, on_update=hold_while_running)
        assert session.log_waiting and session.log_error.kind == "locked"
        threading.Timer(1.0, locker.rollback).start()  # the other program is done a second later
        assert session.flush_log(10.0) is True
        assert session.log is log and session.log_waiting == 0
    locker.close()
    rows = log.list_runs()
    log.close()
    assert sorted((r.pane, r.status, r.n_generated) for r in rows) == [(0, "ok", 24), (1, "ok", 24)]
    assert [r.status for r in results] == ["ok", "ok"]


def test_finished_runs_wait_for_a_full_disk_and_land_once_there_is_room(tmp_path, smollm2_spec):
    # SQLite's own page limit stands in for a full disk: the same SQLITE_FULL, the same StoreError.
    from app.store import SessionLog

    log = SessionLog.open(tmp_path / "log.db", timeout=0.2)
    with Session([smollm2_spec, smollm2_spec], mode="fair", log=log) as session:
        session.load()
        pages = log.db.execute("PRAGMA page_count").fetchone()[0]
        full = lambda update: update.pane == 0 and log.db.execute(f"PRAGMA max_page_count = {pages}")  # noqa: E731
        results = session.compare(QUESTION, on_update=full)
        assert session.log_waiting and session.log_error.kind == "full"
        log.db.execute("PRAGMA max_page_count = 1073741823")  # room again
        assert session.flush_log(5.0) is True
    rows = sorted((r.pane, r.status, r.n_generated) for r in log.list_runs())
    log.close()
    assert rows == [(0, "ok", 24), (1, "ok", 24)] and [r.status for r in results] == ["ok", "ok"]


def test_a_power_source_lost_mid_session_is_named_in_every_later_energy_figure(smollm2_spec, monkeypatch):
    import app.session
    from app.telemetry.sources import detect_sources, nvml_sources
    from tests.telemetry.test_nvml import Gpu, StandInDriver

    gpu = Gpu(energy_mj=1_000)  # this machine's real sources, plus a GPU (a stand-in driver) that will fall off

    def with_a_gpu(tdp_w=None, servers=()):
        found = detect_sources(tdp_w)
        found.sources += nvml_sources(StandInDriver(gpu))[0]
        return found

    monkeypatch.setattr(app.session, "detect_sources", with_a_gpu)
    # The model runs on this machine's CPU; it is charged the GPU as a run with offloaded layers is
    # (app/record.energy_domains), so that the GPU's loss touches its figures.
    monkeypatch.setattr(Conditions, "energy_domains", property(lambda self: ("cpu", "dram", "gpu")))
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
        assert session.lost_sources(("cpu", "dram")) == []  # a CPU-only run's figure is untouched by it


def test_a_cpu_run_beside_a_gpu_is_not_charged_the_gpu_and_says_what_it_drew(smollm2_spec, monkeypatch):
    import app.session
    from app.telemetry.sources import detect_sources, nvml_sources
    from tests.telemetry.test_nvml import Gpu, StandInDriver

    gpu = Gpu(energy_mj=1_000)  # an idle GPU (a stand-in driver) beside this machine's CPU

    def with_a_gpu(tdp_w=None, servers=()):
        found = detect_sources(tdp_w)
        found.sources += nvml_sources(StandInDriver(gpu))[0]
        return found

    monkeypatch.setattr(app.session, "detect_sources", with_a_gpu)
    with Session([smollm2_spec], mode="fair") as session:
        session.load()
        [run] = session.compare(GenerationRequest.from_prompt("Hi", max_tokens=4, sampling=Sampling(temperature=0.0)))
    assert run.placement.startswith("CPU · ") and "nvml" not in run.energy_source
    assert "nvml:0" in run.energy_detail["left_out"] and "gpu" not in run.energy_detail["covers"]
    assert any(note.startswith("not charged: nvml:0 (GPU) drew ") for note in run.energy_detail["notes"])


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


LONG = GenerationRequest.from_prompt("Write a long story about a lighthouse keeper.", max_tokens=400,
                                     sampling=Sampling(temperature=0.0))


def _cancel_once_pane_writes(session, pane, panes=None, request=LONG, log_to=None):
    """Run a comparison and cancel (these panes; None: all) once `pane` has written 5 tokens."""
    cancellation, results, tokens = Cancellation(), {}, 0
    for update in session.stream(request, cancellation=cancellation):
        if update.pane == pane and isinstance(update.event, Token):
            tokens += 1
            if tokens == 5:
                cancellation.cancel(panes)
        if update.closing:
            results[update.pane] = update.result
    return [results[i] for i in sorted(results)]


@pytest.fixture(scope="module")
def two_smollm2(smollm2_spec):
    with Session([smollm2_spec, smollm2_spec], mode="fair") as session:
        session.load()
        yield session


def test_esc_in_fair_mode_stops_the_running_pane_and_the_waiting_one_never_starts(two_smollm2, tmp_path):
    from app.store import SessionLog

    two_smollm2.mode, two_smollm2.log = "fair", SessionLog.open(tmp_path / "log.db")
    try:
        running, waiting = _cancel_once_pane_writes(two_smollm2, pane=0)
        rows = {r.pane: r for r in two_smollm2.log.list_runs()}
    finally:
        two_smollm2.log.close()
        two_smollm2.log = None
    assert running.status == "cancelled" and 5 <= running.n_generated < 400
    assert waiting.status == "cancelled" and waiting.n_generated == 0 and waiting.total_s is None
    assert waiting.no_answer == "cancelled before it started"
    assert {p: r.status for p, r in rows.items()} == {0: "cancelled", 1: "cancelled"}  # nothing left running


def test_a_panes_own_cancel_in_fair_mode_stops_that_pane_only(two_smollm2):
    two_smollm2.mode = "fair"
    short = GenerationRequest.from_prompt("Say hello.", max_tokens=12, sampling=Sampling(temperature=0.0))
    cancelled, finished = _cancel_once_pane_writes(two_smollm2, pane=0, panes=[0], request=[LONG, short])
    assert cancelled.status == "cancelled" and cancelled.n_generated < 400
    assert finished.status == "ok" and finished.n_generated == 12


def test_a_panes_own_cancel_in_live_mode_stops_that_pane_only(two_smollm2):
    two_smollm2.mode = "live"
    try:
        medium = GenerationRequest.from_prompt("Count from one to twenty in words.", max_tokens=40,
                                               sampling=Sampling(temperature=0.0))
        finished, cancelled = _cancel_once_pane_writes(two_smollm2, pane=1, panes=[1], request=[medium, LONG])
    finally:
        two_smollm2.mode = "fair"
    assert cancelled.status == "cancelled" and cancelled.n_generated < 400
    assert finished.status == "ok" and finished.n_generated == 40


def test_a_cancel_before_a_comparison_starts_runs_nothing(two_smollm2):
    cancellation = Cancellation()
    cancellation.cancel()
    results = [u.result for u in two_smollm2.stream(QUESTION, cancellation=cancellation) if u.closing]
    assert [(r.status, r.n_generated) for r in results] == [("cancelled", 0), ("cancelled", 0)]
