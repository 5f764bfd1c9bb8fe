"""SessionLog: what goes in comes back out, as it happened."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import fields, replace
from types import SimpleNamespace

import pytest
from store_helpers import INFO, finished_run, make_result

from app.runs import RunResult
from app.store import SessionLog, StoreError, TelemetrySample, resolve_db_path
from app.store.paths import ENV_VAR, default_db_path


def test_a_finished_run_comes_back_equal(log, prompt_id, request_):
    run_id = log.start_run(prompt_id, pane=1, info=INFO, request=request_, mode="fair")
    result = make_result(pane=1)
    log.finish_run(run_id, result)
    assert log.get_run(run_id) == result


@pytest.mark.parametrize("on_mains, battery_percent", [(False, 63.0), (True, 100.0), (None, None)],
                         ids=["on battery", "on mains", "no battery"])
def test_whether_a_run_was_on_battery_comes_back_as_it_was(log, prompt_id, request_, on_mains, battery_percent):
    run_id = log.start_run(prompt_id, pane=0, info=INFO, request=request_)
    result = make_result(pane=0).updated(on_mains=on_mains, battery_percent=battery_percent)
    log.finish_run(run_id, result)
    run = log.get_run(run_id)
    assert run.on_mains is on_mains and run.battery_percent == battery_percent  # None stays unknown, not False


def test_a_run_is_running_from_its_start(log, prompt_id, request_):
    run_id = log.start_run(prompt_id, pane=0, info=INFO, request=request_)
    run = log.get_run(run_id)
    assert (run.status, run.model, run.backend, run.thinking_budget) == ("running", "smollm2-135m", "CPU", 64)


def test_the_record_keeps_plan_request_and_model_info(log, prompt_id, request_):
    class Decision:  # the router's shape, without importing the router
        route, budget, confidence, reasons = "think", 64, 0.8, ["arithmetic with units"]

    run_id = log.start_run(prompt_id, pane=0, info=INFO, request=request_, decision=Decision())
    result = make_result()
    result = result.updated(energy_j=12.5, energy_source="estimated:tdp", energy_detail={"tdp_w": 15})
    log.finish_run(run_id, result)
    run = log.run_record(run_id)["run"]
    assert (run["route"], run["route_budget"], run["route_reasons"]) == ("think", 64, ["arithmetic with units"])
    assert run["params"]["max_tokens"] == 512 and run["params"]["sampling"]["top_k"] == 40
    assert run["model_info"]["n_layers"] == 30
    assert (run["energy_j"], run["energy_source"], run["energy_detail"]) == (12.5, "estimated:tdp", {"tdp_w": 15})


def test_energy_without_its_source_is_refused(log, prompt_id):
    run_id = log.start_run(prompt_id, pane=0)
    result = make_result().updated(energy_j=3.0)
    with pytest.raises(ValueError, match="source"):
        log.finish_run(run_id, result)


def test_the_timeline_stores_a_channel_per_token(log, prompt_id):
    run_id = log.start_run(prompt_id, pane=0)
    log.finish_run(run_id, make_result(n=3), channels=["thinking", "thinking", "answer"])
    timeline = log.run_record(run_id)["timeline"]
    assert timeline["channel"] == ["thinking", "thinking", "answer"]
    with pytest.raises(ValueError, match="2 channels for 3"):
        log.finish_run(run_id, make_result(n=3), channels=["answer", "answer"])


def test_every_run_result_field_has_a_column(log):
    # Adding a field to a part of RunResult needs a migration that adds its column.
    columns = set(log.db["runs"].columns_dict)
    assert set(RunResult.of(pane=0).to_dict()) - columns == {"token_times_s"}


def test_unicode_and_very_long_texts_survive(log, prompt_id, request_):
    text = "Ответ: 6:15 pm 🚆 — 答案\u0000 end " + "x" * 2_000_000
    run_id = finished_run(log, prompt_id, request_, text=text, n=20_000)
    run = log.get_run(run_id)
    assert run.text == text and len(run.token_times_s) == 20_000


def test_unfinished_runs_become_interrupted_when_the_log_closes(db_path, log, prompt_id):
    run_id = log.start_run(prompt_id, pane=0)
    log.close()
    with SessionLog.open(db_path) as again:
        assert again.get_run(run_id).status == "interrupted"
        assert again.run_record(run_id)["run"]["error_kind"] == "interrupted"


def test_open_marks_runs_of_a_dead_process_interrupted_but_not_live_ones(db_path, log, prompt_id):
    dead = log.start_run(prompt_id, pane=0)
    alive = log.start_run(prompt_id, pane=1)
    log.db.execute("UPDATE runs SET writer = '999999999:0.000' WHERE id = ?", [dead])
    log.db.conn.commit()
    with SessionLog.open(db_path) as other:  # another window of the app, while `log` still runs
        assert other.get_run(dead).status == "interrupted"
        assert other.get_run(alive).status == "running"


def test_unknown_ids_are_a_clear_not_found(log, prompt_id):
    for call in (lambda: log.get_run(99), lambda: log.add_prompt(42, None),
                 lambda: log.start_run(77, pane=0), lambda: log.finish_run(5, make_result())):
        with pytest.raises(StoreError) as err:
            call()
        assert err.value.kind == "not_found"


def test_telemetry_series_are_stored_with_the_run(log, prompt_id, request_):
    run_id = finished_run(log, prompt_id, request_)
    session_id = log.sessions()[0].id
    samples = [TelemetrySample(t_s=i / 10, name="power_w", value=20 + i, unit="W", source="measured:nvml")
               for i in range(5)]
    assert log.add_telemetry(session_id, samples, run_id=run_id) == 5
    stored = log.run_record(run_id)["telemetry"]
    assert [TelemetrySample(**s) for s in stored] == samples


def test_sessions_and_runs_are_listed(log, prompt_id, request_):
    first = finished_run(log, prompt_id, request_, pane=0)
    second = finished_run(log, prompt_id, request_, pane=1)
    assert [r.id for r in log.list_runs()] == [second, first]
    assert log.list_runs(limit=1)[0].decode_tps == 88.8
    [session] = log.sessions()
    assert (session.mode, session.n_prompts, session.n_runs) == ("fair", 1, 2)


def test_listed_runs_say_what_ran_what_the_router_chose_and_how_it_ended(log, request_):
    prompt_id = log.add_prompt(log.start_session(mode="live"), request_, known_answer="6:15 pm")
    think = SimpleNamespace(route="think", budget=256, confidence=0.8, reasons=("arithmetic",))
    run_id = log.start_run(prompt_id, pane=1, info=INFO, request=request_, mode="live", decision=think)
    log.finish_run(run_id, make_result(pane=1).updated(mode="live", strategy="scaffold", correct=True))
    unmarked = finished_run(log, prompt_id, request_, pane=0)
    listed = {r.id: r for r in log.list_runs()}
    r = listed[run_id]
    assert (r.mode, r.strategy, r.n_thinking_tokens, r.route, r.route_budget) == ("live", "scaffold", 2, "think", 256)
    assert (r.finish_reason, r.correct, r.no_answer) == ("stop", True, "")  # correct is a bool, not SQLite's 1
    assert (listed[unmarked].route, listed[unmarked].correct) == (None, None)


def test_two_panes_write_at_once_through_one_log(log, prompt_id, request_):
    errors = []

    def pane(i: int) -> None:
        try:
            for _ in range(50):
                finished_run(log, prompt_id, request_, pane=i)
        except StoreError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pane, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.pane for r in log.list_runs()) == [0] * 50 + [1] * 50


def test_two_logs_on_one_file_write_at_once(db_path, log, prompt_id, request_):
    # E.g. the GUI and the CLI at the same time: WAL and the busy timeout keep both going.
    other = SessionLog.open(db_path)
    threads = [threading.Thread(target=lambda lg=lg: [finished_run(lg, prompt_id, request_) for _ in range(30)])
               for lg in (log, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert len(log.list_runs()) == 60


def test_the_file_is_in_wal_mode(db_path, log):
    assert sqlite3.connect(db_path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_db_path_comes_from_flag_then_environment_then_data_dir(tmp_path):
    assert resolve_db_path("~/x.db", env={ENV_VAR: "/env.db"}).name == "x.db"
    assert "~" not in str(resolve_db_path("~/x.db", env={}))
    assert str(resolve_db_path(None, env={ENV_VAR: "/tmp/env.db"})) == "/tmp/env.db"
    assert resolve_db_path(None, env={}) == default_db_path()
    assert "FastSlow" in str(default_db_path())
