"""RAPL through powercap, against a tree in the exact sysfs format."""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import pytest

from app.telemetry.sources import (
    RAPL_PERMISSION_HINT,
    RaplSource,
    SourceUnavailable,
    counter_delta,
    detect_sources,
    rapl_sources,
)
from tests.telemetry.conftest import write_zone
from unprivileged import as_nobody


def test_finds_the_packages_and_not_their_sub_zones(powercap):
    sources, failed = rapl_sources(powercap)
    assert [s.info.name for s in sources] == ["rapl:package-0", "rapl:package-1"]
    assert failed == []
    info = sources[0].info
    assert (info.label, info.domain, info.unit, info.measured) == ("measured:rapl", "cpu", "µJ", True)
    assert "package-0" in info.measures and "intel-rapl:0" in info.measures


def test_reads_the_counter_in_joules_from_when_it_was_opened(powercap):
    source = RaplSource(powercap / "intel-rapl:0")
    assert source.read().joules == 0.0
    (powercap / "intel-rapl:0" / "energy_uj").write_text("3500000\n")
    reading = source.read()
    assert reading.joules == pytest.approx(2.5)
    assert reading.watts is None and reading.info is source.info


def test_counter_wrap_around_is_added_not_subtracted(tmp_path):
    zone = write_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=999_000, max_uj=1_000_000)
    source = RaplSource(zone)
    (zone / "energy_uj").write_text("500\n")  # wrapped past max_energy_range_uj
    assert source.read().joules == pytest.approx(1_500 / 1e6)
    (zone / "energy_uj").write_text("2500\n")
    assert source.read().joules == pytest.approx(3_500 / 1e6)


def test_counter_delta():
    assert counter_delta(10, 25, 100) == 15
    assert counter_delta(90, 5, 100) == 15
    assert counter_delta(7, 7, 100) == 0


def test_amd_zones_in_the_same_layout_are_read(tmp_path):
    # Zen CPUs appear through the same powercap driver; only the names tell them apart.
    write_zone(tmp_path, "intel-rapl:0", "package-0", 42)
    sources, _ = rapl_sources(tmp_path)
    assert [s.info.name for s in sources] == ["rapl:package-0"]


def test_psys_and_mmio_duplicates_are_left_out_with_reasons(tmp_path):
    write_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    write_zone(tmp_path, "intel-rapl:1", "psys", 1)
    write_zone(tmp_path, "intel-rapl-mmio:0", "package-0", 1)
    sources, failed = rapl_sources(tmp_path)
    assert [s.info.name for s in sources] == ["rapl:package-0"]
    reasons = dict(failed)
    assert "overlaps the packages" in reasons["rapl:psys"]
    assert "duplicate of rapl:package-0" in reasons["rapl:intel-rapl-mmio:0"]


def test_no_powercap_directory_says_so(tmp_path):
    sources, failed = rapl_sources(tmp_path / "absent")
    assert sources == [] and failed[0][0] == "rapl" and "does not exist" in failed[0][1]


def test_no_zones_says_so(tmp_path):
    sources, failed = rapl_sources(tmp_path)
    assert sources == [] and "no RAPL zones" in failed[0][1]


def test_an_incomplete_zone_says_which_file(tmp_path):
    zone = write_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (zone / "max_energy_range_uj").unlink()
    _, failed = rapl_sources(tmp_path)
    assert failed[0][0] == "rapl:intel-rapl:0" and "incomplete" in failed[0][1]


@pytest.mark.parametrize("bad", ["", "0", "lots"])
def test_a_zone_without_a_usable_range_is_reported(tmp_path, bad):
    zone = write_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (zone / "max_energy_range_uj").write_text(f"{bad}\n")
    with pytest.raises(SourceUnavailable, match="no usable max_energy_range_uj"):
        RaplSource(zone)


def test_garbage_in_the_counter_is_reported(tmp_path):
    zone = write_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (zone / "energy_uj").write_text("not a number\n")
    with pytest.raises(SourceUnavailable, match="cannot be read as a counter"):
        RaplSource(zone)


def test_an_unopenable_counter_is_reported(tmp_path):
    # A directory where the file should be cannot be opened even by root.
    zone = write_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (zone / "energy_uj").unlink()
    (zone / "energy_uj").mkdir()
    _, failed = rapl_sources(tmp_path)
    assert "cannot be read as a counter" in failed[0][1]


def test_a_counter_that_vanishes_while_read_raises(powercap):
    source = RaplSource(powercap / "intel-rapl:0")
    (powercap / "intel-rapl:0" / "energy_uj").unlink()
    with pytest.raises(SourceUnavailable):
        source.read()


# -- permission denied: mode 000, as the kernel ships energy_uj to non-root users (0400 root) -------

def _locked_powercap(tmp: str) -> Path:
    """One package zone whose energy_uj is mode 000 (the kernel ships it 0400 root)."""
    root = Path(tmp)
    os.chmod(root, 0o755)  # traversable by the unprivileged child
    zone = write_zone(root, "intel-rapl:0", "package-0", 123)
    os.chmod(zone / "energy_uj", 0o000)
    return root


def test_permission_denied_tells_the_user_how_to_grant_access():
    with tempfile.TemporaryDirectory() as tmp:
        root = _locked_powercap(tmp)
        n_sources, failed = as_nobody(lambda: (lambda found: (len(found[0]), found[1]))(rapl_sources(root)))
    assert n_sources == 0
    [(name, reason)] = failed
    assert name == "rapl:intel-rapl:0"
    assert "permission denied" in reason and RAPL_PERMISSION_HINT in reason
    assert "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj" in reason and "udev" in reason


def test_a_locked_counter_is_flagged_fixable_and_every_estimate_says_why_it_is_not_measured():
    import app.telemetry.server_power  # noqa: F401 — detect_sources imports it; the child may not (unprivileged.py)

    def detect():
        found = detect_sources(tdp_w=45, powercap_root=root)
        [tdp] = [s for s in found.sources if s.info.domain == "cpu"]
        return found.fixable, tdp.info.name, tdp.info.detail["why_estimated"]

    with tempfile.TemporaryDirectory() as tmp:
        root = _locked_powercap(tmp)
        fixable, estimate, why = as_nobody(detect)
    [(name, reason)] = fixable
    assert name == "rapl:intel-rapl:0" and RAPL_PERMISSION_HINT in reason
    assert estimate == "tdp" and why == reason


@pytest.mark.skipif(platform.system() == "Darwin", reason="a Mac's estimate says why IOReport did not measure")
def test_a_machine_without_rapl_has_nothing_to_fix_and_its_estimate_says_so(tmp_path):
    found = detect_sources(tdp_w=45, powercap_root=tmp_path / "absent")
    assert found.fixable == []
    [tdp] = [s for s in found.sources if s.info.domain == "cpu"]
    assert tdp.info.detail["why_estimated"] == (
        f"{tmp_path / 'absent'} does not exist: no powercap interface (not Linux, or a VM without RAPL)")
    found.close()


def test_detect_prefers_rapl_over_the_estimate(powercap):
    found = detect_sources(powercap_root=powercap)
    names = [s.info.name for s in found.sources]
    assert "rapl:package-0" in names and "tdp" not in names
    assert ("tdp", "not needed: CPU energy is measured") in found.unavailable
    found.close()


def test_detect_falls_back_to_the_estimate_when_rapl_is_unreadable(tmp_path):
    zone = write_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (zone / "energy_uj").unlink()
    (zone / "energy_uj").mkdir()
    found = detect_sources(tdp_w=45, powercap_root=tmp_path)
    assert [s.info.name for s in found.sources if s.info.domain == "cpu"] == ["tdp"]
    assert any(name == "rapl:intel-rapl:0" for name, _ in found.unavailable)
    assert "estimated:tdp" in found.describe() and "rapl:intel-rapl:0" in found.describe()


def test_dram_sub_zones_are_their_own_domain_and_add_to_the_packages(powercap, tmp_path):
    from app.telemetry import Sample, energy_for_window

    write_zone(powercap, "intel-rapl:0:2", "dram", 200_000)
    write_zone(powercap, "intel-rapl:1:1", "dram", 300_000)
    sources, failed = rapl_sources(powercap)
    assert [s.info.name for s in sources] == ["rapl:package-0", "rapl:package-1", "rapl:dram-0", "rapl:dram-1"]
    assert [s.info.domain for s in sources] == ["cpu", "cpu", "dram", "dram"] and failed == []
    assert "memory energy" in sources[2].info.measures
    # 10 J on each package and 2 J on each DRAM zone over one second: 24 J in all, with the breakdown.
    from dataclasses import replace

    first = {s.info.name: replace(s.read(), t=0.0) for s in sources}  # one instant for all, for exact sums
    for dirname, uj in (("intel-rapl:0", 11_000_000), ("intel-rapl:1", 15_000_000),
                        ("intel-rapl:0:2", 2_200_000), ("intel-rapl:1:1", 2_300_000)):
        (powercap / dirname / "energy_uj").write_text(f"{uj}\n")
    second = {s.info.name: replace(s.read(), t=1.0) for s in sources}
    t0, t1 = 0.0, 1.0
    samples = [Sample(t0, 0, 1, 1, None, None, {}, first), Sample(t1, 0, 1, 1, None, None, {}, second)]
    figure = energy_for_window(samples, t0, t1)
    assert figure.joules == pytest.approx(24.0)
    assert figure.breakdown == pytest.approx({"rapl:package-0": 10.0, "rapl:package-1": 10.0,
                                              "rapl:dram-0": 2.0, "rapl:dram-1": 2.0})
