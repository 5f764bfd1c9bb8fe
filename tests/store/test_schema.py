"""Migrations: any older file upgrades at open; a newer one is refused."""

from __future__ import annotations

import pytest
from sqlite_utils import Database

from app.store import SessionLog, StoreError
from app.store.schema import MIGRATION_SET, known_names, migrations


def schema_of(path) -> dict:
    db = Database(path)
    return {t.name: t.schema for t in db.tables if not t.name.startswith("_")}


@pytest.mark.parametrize("applied", range(len(known_names()) + 1))
def test_a_file_from_every_earlier_version_upgrades_at_open(tmp_path, applied):
    # A file as version `applied` left it (0: an empty file), upgraded by today's open.
    old = tmp_path / "old.db"
    names = known_names()
    db = Database(old)
    migrations.apply(db, stop_before=names[applied] if applied < len(names) else None)
    db.close()
    SessionLog.open(old).close()
    fresh = tmp_path / "fresh.db"
    SessionLog.open(fresh).close()
    assert schema_of(old) == schema_of(fresh)
    assert [m.name for m in migrations.applied(Database(old))] == names


def test_runs_written_before_an_upgrade_are_kept(tmp_path):
    from store_helpers import make_result

    path = tmp_path / "log.db"
    with SessionLog.open(path) as log:
        run_id = log.start_run(log.add_prompt(log.start_session(), _request()), pane=0)
        log.finish_run(run_id, make_result())
    with SessionLog.open(path) as log:  # open again: nothing pending, nothing lost
        assert log.get_run(run_id) == make_result()


def test_a_file_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "log.db"
    SessionLog.open(path).close()
    db = Database(path)
    db["_sqlite_migrations"].insert({"migration_set": MIGRATION_SET, "name": "999_from_the_future",
                                     "applied_at": "2030-01-01"})
    db.close()
    with pytest.raises(StoreError) as err:
        SessionLog.open(path)
    assert err.value.kind == "newer_schema"
    assert "newer FastSlow" in err.value.message and "999_from_the_future" in err.value.message


def _request():
    from app.engines.types import GenerationRequest

    return GenerationRequest.from_prompt("hi")
