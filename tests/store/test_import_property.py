"""Property: any JSON in any field of an import record is either imported, and then lists, shows
and exports (as strict JSON that imports again), or refused with a StoreError that names the
record's line; never another exception, and a refused file adds nothing."""

from __future__ import annotations

import argparse
import copy
import io
import json
import uuid

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from store_helpers import finished_run

from app.engines.types import GenerationRequest
from app.store import SessionLog, StoreError, TelemetrySample
from app.store.commands import cmd_list, cmd_show
from app.store.export import import_jsonl, write_csv, write_html, write_jsonl
from app.store.log import fit_record

DELETE = object()

# Any JSON value: the extremes included (beyond 64 bits, NaN and Infinity, which Python's json
# reads and writes, lone surrogates, which it escapes and reads back).
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1])
           | st.floats() | st.text(st.characters(exclude_categories=()), max_size=8)
           | st.sampled_from(["ok", "running", "answer", "thinking", "", "measured:nvml"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A log with one real run, its exported record, and a log to import into."""
    folder = tmp_path_factory.mktemp("import")
    with SessionLog.open(folder / "source.db") as source:
        request = GenerationRequest.from_prompt("What is 2 + 2?")
        prompt_id = source.add_prompt(source.start_session(), request, known_answer="4")
        run_id = finished_run(source, prompt_id, request)
        source.add_telemetry(1, [TelemetrySample(0.1, "power_w", 12.0, "W", "estimated:tdp")], run_id=run_id)
        write_jsonl(source, folder / "good.jsonl")
    record = json.loads((folder / "good.jsonl").read_text(encoding="utf-8"))
    target = SessionLog.open(folder / "target.db")
    yield folder, record, target
    target.close()


def like(original) -> st.SearchStrategy:
    """Values of the original's JSON type: valid more often, so that imports get through and the
    reads of what came in are tested too (long, odd, extreme, but of the right kind)."""
    if isinstance(original, bool):
        return st.booleans()
    if isinstance(original, int):
        return st.integers(min_value=-(2**63), max_value=2**63 - 1)
    if isinstance(original, float):
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**63 - 1)
    if isinstance(original, str):
        return st.text(max_size=40) | st.sampled_from(["ok", "failed", "=1+1", "-1", "\x00", "ответ 🚆"])
    if isinstance(original, list):
        return st.lists(st.floats(allow_nan=False, allow_infinity=False) if original and isinstance(
            original[0], float) else st.sampled_from(["answer", "thinking"]), max_size=8)
    if isinstance(original, dict):
        return st.dictionaries(st.text(max_size=5), json_values, max_size=3)
    return st.none() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5)


def _get(record, path):
    for step in path:
        record = record[step]
    return record


def _paths(record: dict) -> list[tuple[str, ...]]:
    paths = [(key,) for key in record]
    for part in ("session", "prompt", "run", "timeline"):
        paths += [(part, key) for key in record[part]]
    return paths + [("telemetry", 0, "value"), ("prompt", "messages", 0, "content"), ("run", "unknown_field")]


def _set(record: dict, path: tuple, value) -> None:
    target = record
    for step in path[:-1]:
        try:
            target = target[step]
        except (KeyError, IndexError, TypeError):
            return  # an earlier change removed the way there
    if not isinstance(target, (dict, list)):
        return
    if value is DELETE:
        if isinstance(target, dict):
            target.pop(path[-1], None)
        return
    if isinstance(target, dict) or (isinstance(path[-1], int) and path[-1] < len(target)):
        target[path[-1]] = value


def _strict(text: str):
    def refuse(name):
        raise AssertionError(f"the export holds {name}, which is not JSON")
    return json.loads(text, parse_constant=refuse)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_json_in_any_field_is_imported_whole_or_refused_by_line(world, data):
    folder, good, log = world
    record = copy.deepcopy(good)
    for part in ("session", "prompt", "run"):  # a new run each time, so it is not skipped as known
        record[part]["uid"] = uuid.uuid4().hex
    if data.draw(st.booleans(), label="whole record replaced"):
        record = data.draw(json_values, label="record")
    else:
        for _ in range(data.draw(st.integers(1, 3), label="how many changes")):
            path = data.draw(st.sampled_from(_paths(good)), label="where")
            try:
                original = _get(good, path)
            except (KeyError, IndexError):
                original = None
            value = data.draw(json_values | st.just(DELETE) | like(original) | like(original), label="value")
            _set(record, path, value)
    line = json.dumps(record)  # Python's json: NaN and Infinity written bare, surrogates escaped
    path = folder / "one.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    runs_before = log.db.execute("SELECT count(*) FROM runs").fetchone()[0]
    try:
        imported, skipped = import_jsonl(log, path)
    except StoreError as err:
        event("refused")
        assert err.kind == "bad_import", err
        assert err.message.startswith(f"{path} line 1"), err.message
        assert "\n" not in err.message
        assert log.db.execute("SELECT count(*) FROM runs").fetchone()[0] == runs_before  # nothing came in
        return
    event("imported" if imported else "skipped")
    assert (imported, skipped) in ((1, 0), (0, 1))
    if skipped:
        return
    run_id, session_id = log.db.execute("SELECT id, session_id FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    # It lists, shows and exports, as the CLI does them.
    args = argparse.Namespace(db=log.path, session=session_id, limit=5)
    out = io.StringIO()
    assert cmd_list(args, out=out) == 0 and out.getvalue().count("\n") >= 2
    for as_json in (False, True):
        assert cmd_show(argparse.Namespace(db=log.path, run_id=run_id, json=as_json), out=io.StringIO()) == 0
    assert write_jsonl(log, folder / "again.jsonl", session_id=session_id) >= 1
    lines = (folder / "again.jsonl").read_text(encoding="utf-8").split("\n")  # JSONL: \n only, not U+2028
    for exported in filter(None, lines):
        fit_record(_strict(exported))  # strict JSON, and it would import again
    assert write_csv(log, folder / "again.csv", session_id=session_id) >= 1
    assert write_html(log, folder / "again.html", session_id=session_id) >= 1
