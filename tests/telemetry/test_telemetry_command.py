"""`fastslow telemetry`: the sources here, why the others are not used, and a real short sample."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from app.telemetry.commands import describe
from app.telemetry.sources import RAPL_PERMISSION_HINT, Detected, TdpEstimateSource


def test_it_lists_the_sources_samples_them_and_says_what_sampling_cost(capsys):
    assert main(["telemetry", "--seconds", "0.5", "--tdp", "45"]) == 0
    text = capsys.readouterr().out
    assert "  ok   tdp              estimated:tdp  CPU power estimated from utilisation and a 45 W TDP (user)" in text
    assert "P = TDP × CPU utilisation" in text
    assert "Sampled 0.5 s at 10 Hz" in text and "in all" in text and "estimated:tdp" in text
    assert "the sampler's own thread used" in text
    assert "  --   rapl" in text or "measured:rapl" in text  # either way, RAPL is accounted for


def test_json_gives_every_source_with_its_unit_and_the_sampled_energy(capsys):
    assert main(["telemetry", "--seconds", "0.6", "--hz", "20", "--tdp", "45", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    tdp = next(s for s in record["sources"] if s["name"] == "tdp")
    assert tdp["label"] == "estimated:tdp" and tdp["unit"] == "W (estimated)" and tdp["detail"]["tdp_w"] == 45.0
    assert {name for name, _ in record["unavailable"]} >= {"nvml", "ioreport"}  # no GPU, not a Mac
    window = record["window"]
    assert window["hz"] == 20 and window["samples"] >= 8  # 12 expected; a loaded machine may miss a few
    energy = window["energy"]
    assert energy["source"] == "estimated:tdp" and set(energy["breakdown"]) == {"tdp"}
    # The estimate can only lie between idle and the TDP at full load over the window.
    assert 0.0 <= energy["joules"] <= 45.0 * window["seconds"] + 1e-9
    assert 0.0 <= window["cpu_percent"] <= 100.0 and window["sampler_cpu_percent"] >= 0.0


def test_zero_seconds_only_lists_the_sources(capsys):
    assert main(["telemetry", "--seconds", "0"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Energy sources on this machine:") and "Sampled" not in text


@pytest.mark.parametrize("argv, said", [
    (["--hz", "0"], "argument --hz: must be a positive rate, not 0"),
    (["--seconds", "-1"], "argument --seconds: must be 0 or more seconds, not -1"),
    (["--seconds", "soon"], "argument --seconds: must be 0 or more seconds, not 'soon'"),
    (["--tdp", "-65"], "argument --tdp: must be positive watts, not -65"),
    (["--tdp", "nan"], "argument --tdp: must be positive watts, not nan"),
])
def test_bad_values_are_refused_with_what_was_expected(capsys, argv, said):
    with pytest.raises(SystemExit) as exit_:
        main(["telemetry", *argv])
    assert exit_.value.code == 2 and said in capsys.readouterr().err


def test_a_counter_the_user_can_unlock_is_said_last_with_how():
    reason = f"/sys/class/powercap/intel-rapl:0/energy_uj: permission denied. {RAPL_PERMISSION_HINT}"
    found = Detected([TdpEstimateSource(45, why_estimated=reason)], [("rapl:intel-rapl:0", reason)],
                     [("rapl:intel-rapl:0", reason)])
    text = describe(found, None)
    assert text.endswith(f"To measure what is estimated or missing now:\n  rapl:intel-rapl:0: {reason}")
    assert describe(Detected([TdpEstimateSource(45)]), None).count("To measure") == 0


def test_the_compare_summary_says_why_energy_is_estimated():
    from app.cli import format_table
    from app.runs import RunResult

    why = "/sys/class/powercap does not exist: no powercap interface (not Linux, or a VM without RAPL)"
    detail = {"details": {"tdp": {"measures": "CPU power estimated from utilisation and a 45 W TDP (user)",
                                  "formula": "P = TDP × u", "why_estimated": why}}}
    result = RunResult.of(pane=0, model="m", mode="fair", status="ok", energy_j=1.0, energy_source="estimated:tdp",
                       energy_detail=detail)
    lines = format_table([result]).splitlines()
    assert lines[-2:] == [
        "energy: estimated:tdp — CPU power estimated from utilisation and a 45 W TDP (user) (P = TDP × u)",
        f"  estimated, not measured: {why}"]
