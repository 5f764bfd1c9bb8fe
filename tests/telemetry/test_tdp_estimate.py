"""The estimate from CPU utilisation and TDP: its formula, its defaults, and a real reading."""

from __future__ import annotations

import time

import psutil
import pytest

from app.telemetry.sources import (
    DEFAULT_TDP_W,
    TDP_FORMULA,
    TdpEstimateSource,
    busy_share,
    cpu_class,
    default_tdp,
    tdp_watts,
)


def test_formula_is_tdp_times_utilisation():
    assert tdp_watts(65.0, 0.5) == 32.5
    assert tdp_watts(65.0, 0.0) == 0.0
    assert tdp_watts(65.0, 1.7) == 65.0  # clamped: utilisation cannot exceed all CPUs
    assert tdp_watts(65.0, -0.1) == 0.0


def _times(**values):
    # psutil's own cpu_times type, so the fields are exactly those of this platform
    kind = type(psutil.cpu_times())
    return kind(**{f: values.get(f, 0.0) for f in kind._fields})


def test_busy_share_counts_idle_and_iowait_as_not_busy():
    before = _times()
    after = _times(user=3.0, system=1.0, idle=3.0, **({"iowait": 1.0} if "iowait" in before._fields else {"idle": 4.0}))
    assert busy_share(before, after) == pytest.approx(0.5)


@pytest.mark.skipif("guest" not in type(psutil.cpu_times())._fields, reason="guest time is Linux's")
def test_busy_share_does_not_count_guest_time_twice():
    # Linux includes guest time in user time.
    assert busy_share(_times(), _times(user=2.0, guest=2.0, idle=2.0)) == pytest.approx(0.5)


def test_busy_share_of_no_elapsed_time_is_zero():
    same = _times(user=1.0, idle=1.0)
    assert busy_share(same, same) == 0.0


@pytest.mark.parametrize(
    "model, system, machine, battery, expected",
    [
        ("", "Darwin", "arm64", True, "apple-silicon"),
        ("AMD EPYC 7763 64-Core Processor", "Linux", "x86_64", False, "server"),
        ("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", "Linux", "x86_64", False, "server"),
        ("Intel(R) Core(TM) i7-8550U CPU @ 1.80GHz", "Linux", "x86_64", False, "laptop"),
        ("11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz", "Linux", "x86_64", False, "laptop"),
        ("Intel(R) Core(TM) Ultra 7 155H", "Windows", "AMD64", False, "laptop"),
        ("AMD Ryzen 7 5800U with Radeon Graphics", "Linux", "x86_64", False, "laptop"),
        ("Intel(R) Core(TM) i9-12900K", "Linux", "x86_64", True, "laptop"),  # a battery says laptop
        ("Intel(R) Core(TM) i9-12900K", "Linux", "x86_64", False, "desktop"),
        ("AMD Ryzen 5 5600G with Radeon Graphics", "Linux", "x86_64", False, "desktop"),
        ("", "Linux", "x86_64", False, "desktop"),
    ],
)
def test_cpu_class(model, system, machine, battery, expected):
    assert cpu_class(model, system, machine, battery) == expected


def test_default_tdp_per_class():
    assert default_tdp("desktop", 8) == DEFAULT_TDP_W["desktop"] == 65.0
    assert default_tdp("laptop", 8) == 28.0
    assert default_tdp("server", 2) == 15.0  # a small VM slice: never below 15 W
    assert default_tdp("server", 16) == 80.0


def test_a_user_tdp_is_used_and_recorded_with_the_formula():
    source = TdpEstimateSource(tdp_w=45)
    info = source.info
    assert (info.label, info.domain, info.measured) == ("estimated:tdp", "cpu", False)
    assert info.detail["tdp_w"] == 45.0 and info.detail["tdp_set_by"] == "user"
    assert info.detail["formula"] == TDP_FORMULA
    assert "45 W TDP" in info.measures


def test_the_default_tdp_says_it_is_a_default():
    assert TdpEstimateSource().info.detail["tdp_set_by"].startswith("default for a")


@pytest.mark.parametrize("bad", [0, -10])
def test_a_tdp_that_is_not_positive_is_refused(bad):
    with pytest.raises(ValueError, match="TDP must be positive"):
        TdpEstimateSource(tdp_w=bad)


def test_a_real_reading_accumulates_energy_from_real_cpu_use():
    source = TdpEstimateSource(tdp_w=100)
    first = source.read()
    spin_until = time.perf_counter() + 0.3
    while time.perf_counter() < spin_until:  # one core busy
        pass
    second = source.read()
    assert 0 < second.watts <= 100
    elapsed = second.t - first.t
    assert second.joules - first.joules == pytest.approx(second.watts * elapsed)
    # One busy core of psutil.cpu_count() logical CPUs, give or take the rest of the machine.
    assert second.watts >= 100 / psutil.cpu_count() * 0.5
