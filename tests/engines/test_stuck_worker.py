"""A worker stuck where nothing polls the cancel flag: a chat template that loops for ever, a
frozen process. Rendering has a time limit; a cancel ends the run within a second, restarting the
worker where it must, and the pane can run again."""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import pytest

from app.engines.client import CANCEL_GRACE_S, EngineClient
from app.engines.deadline import RENDER_LIMIT_S
from app.engines.types import Failed, Finished, GenerationRequest, Token

LOOPS = ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
         "{% for m in messages %}{{ m.content }}{% endfor %}")
HELLO = GenerationRequest.from_prompt("Say hello.", max_tokens=4)


@pytest.fixture
def looping_client(smollm2_spec):
    with EngineClient() as client:
        client.load(dataclasses.replace(smollm2_spec, chat_template=LOOPS))
        yield client


def test_a_template_that_loops_for_ever_fails_the_run_once_its_time_is_up(looping_client):
    started = time.perf_counter()
    events = list(looping_client.generate(HELLO))
    took = time.perf_counter() - started
    assert isinstance(events[-1], Failed) and events[-1].kind == "template"
    assert f"took longer than {RENDER_LIMIT_S:g} s" in events[-1].message
    assert RENDER_LIMIT_S <= took < RENDER_LIMIT_S + 3


def test_a_cancel_ends_a_run_stuck_in_its_template_at_once(looping_client):
    stream = looping_client.generate(HELLO)
    time.sleep(0.5)
    asked = time.perf_counter()
    looping_client.cancel()
    events = list(stream)
    assert time.perf_counter() - asked < 1.0
    assert isinstance(events[-1], Finished) and events[-1].finish_reason == "cancelled"


def test_a_frozen_worker_is_restarted_by_a_cancel_and_the_next_run_works(smollm2_client):
    stream = smollm2_client.generate(GenerationRequest.from_prompt("Write a long story.", max_tokens=2000))
    for event in stream:
        if isinstance(event, Token):
            break
    frozen = smollm2_client.pid
    os.kill(frozen, signal.SIGSTOP)  # stuck where nothing polls the flag
    asked = time.perf_counter()
    smollm2_client.cancel()
    rest = list(stream)  # ends once the watchdog has killed it and a new worker has loaded the model
    assert isinstance(rest[-1], Finished) and rest[-1].finish_reason == "cancelled"
    ended = asked + CANCEL_GRACE_S
    assert rest[-1].t - ended < 1.0  # the run ended a grace period after the cancel, not when it would have
    assert smollm2_client.pid not in (None, frozen)
    events = list(smollm2_client.generate(HELLO))
    assert isinstance(events[-1], Finished) and events[-1].finish_reason in ("stop", "length")
