"""Exports: complete JSONL that imports back, flat CSV, an HTML report, a SQLite copy; no home paths."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from store_helpers import finished_run

from app.store import SessionLog, StoreError
from app.store.export import export, home_scrubber, import_jsonl, write_jsonl
from app.store.report import tokens_per_second

HOME = str(Path.home())


@pytest.fixture
def filled(log, prompt_id, request_):
    """Two panes on one prompt; the model file sits in the user's home."""
    ids = [finished_run(log, prompt_id, request_, pane=i) for i in (0, 1)]
    log.db.execute("UPDATE runs SET model_path = ?", [f"{HOME}/models/smollm2.gguf"])
    log.db.conn.commit()
    return ids


def test_jsonl_round_trips_into_a_fresh_database(tmp_path, log, filled):
    out = tmp_path / "runs.jsonl"
    assert write_jsonl(log, out, keep_home_paths=True) == 2
    with SessionLog.open(tmp_path / "other.db") as other:
        assert import_jsonl(other, out) == (2, 0)
        assert import_jsonl(other, out) == (0, 2)  # matched by uid: no duplicates
        assert [other.get_run(r.id) for r in reversed(other.list_runs())] == [log.get_run(i) for i in filled]
        assert other.sessions()[0].uid == log.sessions()[0].uid


def test_each_jsonl_line_is_one_complete_run(tmp_path, log, filled):
    out = tmp_path / "runs.jsonl"
    write_jsonl(log, out)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2
    assert set(lines[0]) == {"format", "version", "session", "prompt", "run", "timeline", "telemetry"}
    assert len(lines[0]["timeline"]["t"]) == lines[0]["run"]["n_generated"]


def test_exports_write_the_home_folder_as_tilde_unless_asked(tmp_path, log, filled):
    for fmt in ("jsonl", "csv", "html", "sqlite"):
        out = tmp_path / f"scrubbed.{fmt}"
        export(log, fmt, out)
        assert HOME.encode() not in out.read_bytes(), fmt
        assert b"~/models/smollm2.gguf" in out.read_bytes(), fmt
    kept = tmp_path / "kept.jsonl"
    export(log, "jsonl", kept, keep_home_paths=True)
    assert f"{HOME}/models".encode() in kept.read_bytes()


def test_the_scrubber_replaces_whole_path_components_only():
    scrub = home_scrubber("/home/ann")
    assert scrub("/home/ann/m.gguf and /home/ann") == "~/m.gguf and ~"
    assert scrub("/home/anna/m.gguf") == "/home/anna/m.gguf"
    assert home_scrubber("C:\\Users\\ann")('"C:\\\\Users\\\\ann\\\\m.gguf"') == '"~\\\\m.gguf"'


def test_csv_is_one_flat_row_per_run(tmp_path, log, filled):
    out = tmp_path / "runs.csv"
    export(log, "csv", out)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [int(r["id"]) for r in rows] == filled
    assert rows[0]["decode_tps"] == "88.8" and rows[0]["backend"] == "CPU" and rows[0]["prompt"].startswith("A train")


def test_the_html_report_shows_answers_metrics_and_a_chart(tmp_path, log, filled):
    log.db.execute("UPDATE runs SET text = '<script>alert(1)</script>' WHERE id = ?", [filled[1]])
    log.db.conn.commit()
    out = tmp_path / "report.html"
    assert export(log, "html", out) == 2
    page = out.read_text(encoding="utf-8")
    assert "A train leaves at 3:40 pm" in page and "It arrives at 6:15 pm." in page
    assert "decode tok/s" in page and "88.8" in page
    assert page.count("<polyline") == 2
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "on battery" not in page and "on mains" not in page  # no battery recorded: nothing said


def test_the_html_report_and_csv_say_which_runs_were_on_battery(tmp_path, log, filled):
    log.db.execute("UPDATE runs SET on_mains = 0, battery_percent = 41 WHERE id = ?", [filled[0]])
    log.db.execute("UPDATE runs SET on_mains = 1, battery_percent = 100 WHERE id = ?", [filled[1]])
    log.db.conn.commit()
    export(log, "html", tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "fair mode, CPU · 4 threads, on battery (41%)</p>" in page
    assert "fair mode, CPU · 4 threads, on mains power</p>" in page
    export(log, "csv", tmp_path / "runs.csv")
    rows = list(csv.DictReader((tmp_path / "runs.csv").open(encoding="utf-8")))
    assert [(r["on_mains"], r["battery_percent"]) for r in rows] == [("False", "41.0"), ("True", "100.0")]


def test_tokens_per_second_comes_from_the_timeline():
    points = tokens_per_second([i / 50 for i in range(100)], window=4)
    assert all(rate == pytest.approx(50) for _, rate in points)


def test_the_sqlite_copy_can_hold_one_session(tmp_path, log, filled, request_):
    other_session = log.add_prompt(log.start_session(), request_)
    finished_run(log, other_session, request_)
    out = tmp_path / "copy.db"
    assert export(log, "sqlite", out, session_id=1) == 2
    conn = sqlite3.connect(out)
    assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with SessionLog.open(out) as copy:
        assert [copy.get_run(i).text for i in filled] == [log.get_run(i).text for i in filled]


def test_the_sqlite_copy_never_overwrites(tmp_path, log, filled):
    out = tmp_path / "copy.db"
    out.write_text("precious")
    with pytest.raises(StoreError, match="already exists"):
        export(log, "sqlite", out)
    assert out.read_text() == "precious"


def test_an_html_report_needs_a_session(tmp_path, log):
    with pytest.raises(StoreError) as err:
        export(log, "html", tmp_path / "r.html")
    assert err.value.kind == "not_found"
    log.start_session()
    with pytest.raises(StoreError, match="no session 9"):
        export(log, "html", tmp_path / "r.html", session_id=9)


def test_an_unwritable_output_is_a_clear_error(tmp_path, log, filled):
    with pytest.raises(StoreError, match="cannot write"):
        export(log, "jsonl", tmp_path / "no" / "such" / "dir.jsonl")


@pytest.mark.parametrize("content, message", [
    ('{"format": "fastslow-run", "version": 1}\n', "line 1: record 1 is not a FastSlow run record"),
    ('\n[1, 2]\n', "line 2"),
    ('not json\n', "line 1 is not JSON"),
    ('{"format": "fastslow-run", "version": 99, "run": {}}\n', "newer than this FastSlow reads"),
])
def test_a_bad_import_names_the_line_and_adds_nothing(tmp_path, log, filled, content, message):
    good = tmp_path / "good.jsonl"
    write_jsonl(log, good)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, encoding="utf-8")
    with SessionLog.open(tmp_path / "fresh.db") as fresh:
        with pytest.raises(StoreError) as err:
            import_jsonl(fresh, bad)
        assert err.value.kind == "bad_import" and message in err.value.message
        assert fresh.list_runs() == []


def test_importing_a_missing_file_is_a_clear_error(tmp_path, log):
    with pytest.raises(StoreError, match="cannot read"):
        import_jsonl(log, tmp_path / "nope.jsonl")


def test_the_html_report_charts_power_from_the_runs_telemetry(tmp_path, log, filled):
    from app.store import TelemetrySample

    session_id = log.run_record(filled[0])["session"]["id"]
    for run_id, watts in zip(filled, (12.0, 30.0)):
        log.add_telemetry(session_id, [TelemetrySample(t / 10, "power_w", watts + t, "W", "estimated:tdp")
                                       for t in range(5)], run_id=run_id)
    out = tmp_path / "report.html"
    export(log, "html", out)
    page = out.read_text(encoding="utf-8")
    assert page.count("<polyline") == 4  # tokens/s and power, a line per run each
    assert 'aria-label="power over time"' in page and "37 W" in page  # the scale: (30 + 4) W + 10%
    assert "Power during each run (estimated:tdp)" in page


def test_the_report_and_csv_say_where_each_run_ran_and_flag_a_busy_machine(tmp_path, log, filled):
    log.db.execute("UPDATE runs SET backend = 'CUDA', device = 'NVIDIA GeForce RTX 4070', n_gpu_layers = 20, "
                   "n_layers = 30 WHERE id = ?", [filled[0]])
    note = "another process kept 1.0 of 2 cores busy while this run used 2 threads"
    log.db.execute("UPDATE runs SET background_cores = 1.0, load_note = ? WHERE id = ?", [note, filled[1]])
    log.db.conn.commit()
    export(log, "html", tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<p>fair mode, CUDA · RTX 4070 · 20/30 layers · 4 threads</p>" in page
    assert f"Busy machine: {note}.</p>" in page and page.count("Busy machine") == 1
    assert "Thinking budget not held" not in page  # no run here asked a server for one
    export(log, "csv", tmp_path / "runs.csv")
    first, second = csv.DictReader((tmp_path / "runs.csv").open(encoding="utf-8"))
    assert (first["device"], first["n_gpu_layers"], first["n_layers"]) == ("NVIDIA GeForce RTX 4070", "20", "30")
    assert (second["background_cores"], second["load_note"]) == ("1.0", note)


def test_a_served_runs_budget_it_could_not_hold_is_said_in_the_report_and_the_csv(tmp_path, log, filled):
    note = "the server cannot hold a thinking budget (16 tokens): max tokens (24) caps only the whole reply"
    log.db.execute("UPDATE runs SET thought_note = ? WHERE id = ?", [note, filled[0]])
    log.db.conn.commit()
    export(log, "html", tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count(f"Thinking budget not held: {note}.</p>") == 1
    export(log, "csv", tmp_path / "runs.csv")
    first, second = csv.DictReader((tmp_path / "runs.csv").open(encoding="utf-8"))
    assert (first["thought_note"], second["thought_note"]) == (note, "")
