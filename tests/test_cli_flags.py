"""Every numeric flag of compare, eval and scale takes a bounded value or is refused by argparse
(exit 2, one sentence naming the flag): no traceback, no NaN in the log, no thread count the
machine lacks (the issue "Nothing lost, nothing let in", case 14). By hand for the issue's values,
and with hypothesis over arbitrary text, through the parser itself (app.cli._parser)."""

from __future__ import annotations

import contextlib
import io
import math

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.cli import MAX_SAMPLES, MAX_SEED, _parser
from app.settings import MAX_GPU_LAYERS, MAX_N_CTX, logical_cpus


def _whole(low, high):
    return lambda v: type(v) is int and low <= v <= high


def _finite(low, high):
    return lambda v: type(v) is float and math.isfinite(v) and low <= v <= high


# (command's arguments before the flag, flag, attribute, what a parsed value must be)
COMPARE, EVAL, SCALE = ["compare", "Hi"], ["eval"], ["scale"]
FLAGS = [
    (COMPARE, "--max-tokens", "max_tokens", _whole(1, MAX_N_CTX)),
    (COMPARE, "--ctx", "ctx", _whole(1, MAX_N_CTX)),
    (COMPARE, "--threads", "threads", _whole(1, logical_cpus())),
    (COMPARE, "--gpu-layers", "gpu_layers", lambda v: v is None or _whole(-1, MAX_GPU_LAYERS)(v)),
    (COMPARE, "--thinking-budget", "thinking_budget", _whole(0, MAX_N_CTX)),
    (COMPARE, "--min-thinking", "min_thinking", _whole(0, MAX_N_CTX)),
    (COMPARE, "--temperature", "temperature", _finite(0.0, 5.0)),
    (COMPARE, "--seed", "seed", _whole(0, MAX_SEED)),
    (COMPARE, "--tdp", "tdp", _finite(1.0, 2000.0)),
    (EVAL, "--limit", "limit", _whole(1, 10**6)),
    (EVAL, "--max-tokens", "max_tokens", _whole(1, MAX_N_CTX)),
    (EVAL, "--thinking-budget", "thinking_budget", _whole(0, MAX_N_CTX)),
    (EVAL, "--min-thinking", "min_thinking", _whole(0, MAX_N_CTX)),
    (EVAL, "--k", "k", _whole(1, MAX_SAMPLES)),
    (EVAL, "--cascade-threshold", "cascade_threshold", _finite(0.0, 1.0)),
    (EVAL, "--ctx", "ctx", _whole(1, MAX_N_CTX)),
    (EVAL, "--threads", "threads", _whole(1, logical_cpus())),
    (EVAL, "--tdp", "tdp", _finite(1.0, 2000.0)),
    (SCALE, "--limit", "limit", _whole(1, 10**6)),
    (SCALE, "--k-budget", "k_budget", _whole(0, MAX_N_CTX)),
    (SCALE, "--answer-tokens", "answer_tokens", _whole(1, MAX_N_CTX)),
    (SCALE, "--seed", "seed", _whole(0, MAX_SEED)),
    (SCALE, "--ctx", "ctx", _whole(1, MAX_N_CTX)),
    (SCALE, "--threads", "threads", _whole(1, logical_cpus())),
    (SCALE, "--tdp", "tdp", _finite(1.0, 2000.0)),
    (SCALE, "--budgets", "budgets",
     lambda v: type(v) is tuple and v and all(type(b) is int and 0 <= b <= MAX_N_CTX for b in v)),
    (SCALE, "--k", "ks", lambda v: type(v) is tuple and v and all(type(k) is int and 1 <= k <= MAX_SAMPLES for k in v)),
    (["models"], "--ctx", "ctx", _whole(1, MAX_N_CTX)),
]
IDS = [f"{before[0]} {flag}" for before, flag, _, _ in FLAGS]


def parse(before: list[str], flag: str, text: str):
    """(namespace, None) when the flag takes text, else (None, what argparse said); `--flag=text`,
    so that text starting with '-' is the flag's value, not another option."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return _parser().parse_args([*before, f"{flag}={text}"]), None
        except SystemExit as exc:
            assert exc.code == 2, f"{flag}={text!r} exited {exc.code}"
    return None, err.getvalue()


def _refused_in_a_sentence(said: str, command: str, flag: str) -> None:
    last = said.rstrip("\n").splitlines()[-1]
    assert last.startswith(f"fastslow {command}: error: argument {flag}: "), said
    assert "must be" in last or "give at least one value" in last, said  # our sentence, not "invalid <type> value"
    assert "Traceback" not in said


@pytest.mark.parametrize(
    "before, flag, text",
    [
        (COMPARE, "--tdp", "-5"), (COMPARE, "--tdp", "nan"), (COMPARE, "--tdp", "inf"), (COMPARE, "--tdp", "0"),
        (COMPARE, "--tdp", "2001"), (COMPARE, "--temperature", "-1"), (COMPARE, "--temperature", "nan"),
        (COMPARE, "--temperature", "inf"), (COMPARE, "--temperature", "5.01"), (COMPARE, "--threads", "1000"),
        (COMPARE, "--threads", "0"), (COMPARE, "--gpu-layers", "-5"), (COMPARE, "--gpu-layers", "1e3"),
        (COMPARE, "--max-tokens", "0"), (COMPARE, "--max-tokens", "9" * 5000), (COMPARE, "--seed", "-1"),
        (COMPARE, "--ctx", "4096.0"), (EVAL, "--tdp", "nan"), (EVAL, "--k", "0"), (EVAL, "--cascade-threshold", "nan"),
        (SCALE, "--tdp", "-inf"), (SCALE, "--budgets", "0,nan"), (SCALE, "--budgets", f"0,{MAX_N_CTX + 1}"),
        (SCALE, "--k", ","), (SCALE, "--threads", str(logical_cpus() + 1)),
    ],
)
def test_the_issues_values_are_refused_in_one_sentence(before, flag, text):
    namespace, said = parse(before, flag, text)
    assert namespace is None
    _refused_in_a_sentence(said, before[0], flag)


def test_the_bounds_themselves_are_taken():
    assert parse(COMPARE, "--tdp", "1")[0].tdp == 1.0 and parse(COMPARE, "--tdp", "2000")[0].tdp == 2000.0
    assert parse(COMPARE, "--temperature", "0")[0].temperature == 0.0
    assert parse(COMPARE, "--temperature", "5")[0].temperature == 5.0
    assert parse(COMPARE, "--threads", str(logical_cpus()))[0].threads == logical_cpus()
    assert parse(COMPARE, "--gpu-layers", "-1")[0].gpu_layers == -1
    assert parse(COMPARE, "--gpu-layers", "0")[0].gpu_layers == 0  # the CPU
    assert parse(COMPARE, "--gpu-layers", "auto")[0].gpu_layers is None  # as many as fit
    assert parse(EVAL, "--k", "1")[0].k == 1 and parse(SCALE, "--budgets", "0,64")[0].budgets == (0, 64)
    defaults = _parser().parse_args(["compare", "Hi"])
    assert 0.0 <= defaults.temperature <= 5.0 and (defaults.seed, defaults.gpu_layers, defaults.tdp) == (0, None, None)


def test_threads_follow_this_machines_logical_cpus(monkeypatch):
    import psutil

    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 16 if logical else 8)
    assert parse(COMPARE, "--threads", "16")[0].threads == 16
    _, said = parse(COMPARE, "--threads", "17")
    assert said.splitlines()[-1] == ("fastslow compare: error: argument --threads: must be from 1 to 16 "
                                     "(the logical CPUs of this machine), not 17")


numbers_as_text = st.one_of(
    st.integers(-10**6, 10**7).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-10, 3000).map(lambda f: f"{f:.3f}"),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "Infinity", "1e999", "0x10", "1_000", " 7 ", "٣", "", "-", "1,2"]),
    st.text(max_size=10),
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.sampled_from(range(len(FLAGS))), numbers_as_text)
@example(IDS.index("compare --tdp"), "nan")
@example(IDS.index("compare --temperature"), "-1")
@example(IDS.index("compare --gpu-layers"), "-5")
def test_any_text_gives_a_bounded_value_or_argparses_exit_2_with_a_sentence(index, text):
    before, flag, attribute, bounded = FLAGS[index]
    namespace, said = parse(before, flag, text)
    if namespace is None:
        _refused_in_a_sentence(said, before[0], flag)
    else:
        value = getattr(namespace, attribute)
        assert bounded(value), f"{flag}={text!r} gave {value!r}"
