"""A fresh log on disk for every test, and a prompt to run."""

from __future__ import annotations

import contextlib

import pytest

from app.engines.types import GenerationRequest
from app.store import SessionLog, StoreError


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "log.db"


@pytest.fixture
def log(db_path):
    log = SessionLog.open(db_path)
    yield log
    with contextlib.suppress(StoreError):  # a test may have broken it on purpose
        log.close()


@pytest.fixture
def request_():
    return GenerationRequest.from_prompt("A train leaves at 3:40 pm and takes 2 h 35 min. When does it arrive?",
                                         thinking_budget=64)


@pytest.fixture
def prompt_id(log, request_):
    return log.add_prompt(log.start_session(mode="fair"), request_)
