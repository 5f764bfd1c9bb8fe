"""Ids SQLite cannot hold are refused with a sentence; a JSONL export holds only JSON."""

from __future__ import annotations

import json

import pytest
from store_helpers import finished_run, fastslow

from app.store import StoreError
from app.store.export import write_jsonl

HUGE = str(2**70)



@pytest.fixture
def db(db_path, log, prompt_id, request_):
    finished_run(log, prompt_id, request_)
    log.close()
    return str(db_path)


@pytest.mark.parametrize("argv, sentence", [
    (["log", "show", HUGE], f"there is no run {HUGE}"),
    (["log", "show", f"-{HUGE}"], f"there is no run -{HUGE}"),
    (["log", "list", "--session", HUGE], f"there is no session {HUGE}"),
    (["log", "export", "--format", "jsonl", "--output", "-", "--session", HUGE], f"there is no session {HUGE}"),
    (["log", "export", "--format", "csv", "--output", "-", "--session", HUGE], f"there is no session {HUGE}"),
    (["log", "export", "--format", "html", "--output", "-", "--session", HUGE], f"there is no session {HUGE}"),
])
def test_an_id_beyond_64_bits_is_a_sentence(db, capsys, argv, sentence):
    assert fastslow(*argv, "--db", db) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastslow: ") and sentence in err and err.count("\n") == 1, err


def test_a_huge_limit_lists_everything(db, capsys):
    assert fastslow("log", "list", "--limit", HUGE, "--db", db) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_a_limit_below_one_is_refused_by_argparse(db, capsys):
    with pytest.raises(SystemExit) as exit_:
        fastslow("log", "list", "--limit", "0", "--db", db)
    assert exit_.value.code == 2 and "is not a whole number of 1 or more" in capsys.readouterr().err


def test_the_store_api_refuses_huge_ids_too(log, prompt_id):
    for call in (lambda: log.get_run(2**70), lambda: log.run_record(-(2**64)), lambda: list(log.records(2**63)),
                 lambda: log.list_runs(session_id=2**70), lambda: log.add_telemetry(1, [], run_id=2**70)):
        with pytest.raises(StoreError) as err:
            call()
        assert err.value.kind == "not_found"


def _strict(line: str) -> dict:
    def refuse(name):
        raise AssertionError(f"{name} is not JSON")
    return json.loads(line, parse_constant=refuse)


def test_jsonl_writes_infinities_and_nan_as_null(tmp_path, log, prompt_id, request_, capsys, db_path):
    run_id = finished_run(log, prompt_id, request_)
    # SQLite keeps ±Infinity in a REAL column; a dict written by the app can hold NaN.
    log.db.execute("UPDATE runs SET decode_tps = 9e999, ttft_s = -9e999, energy_detail = ? WHERE id = ?",
                   ['{"tdp_w": NaN, "notes": [Infinity]}', run_id])
    log.db.conn.commit()
    out = tmp_path / "runs.jsonl"
    assert write_jsonl(log, out) == 1
    record = _strict(out.read_text(encoding="utf-8"))
    assert (record["run"]["decode_tps"], record["run"]["ttft_s"]) == (None, None)
    assert record["run"]["energy_detail"] == {"tdp_w": None, "notes": [None]}
    log.close()
    assert fastslow("log", "show", str(run_id), "--json", "--db", str(db_path)) == 0
    assert _strict(capsys.readouterr().out)["run"]["decode_tps"] is None
