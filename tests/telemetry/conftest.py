"""A powercap tree on disk in the exact sysfs layout: one directory per zone, one value per file."""

from __future__ import annotations

from pathlib import Path

import pytest


def write_zone(root: Path, dirname: str, name: str, energy_uj: int, max_uj: int = 262_143_328_850) -> Path:
    """A zone directory as /sys/class/powercap/<dirname> shows it (values end in a newline)."""
    zone = root / dirname
    zone.mkdir(parents=True)
    (zone / "name").write_text(f"{name}\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (zone / "enabled").write_text("1\n")
    return zone


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """Two packages, a core sub-zone and the control-type directory, as on a two-socket machine."""
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # the control type itself: not a zone
    (root / "intel-rapl" / "enabled").write_text("1\n")
    write_zone(root, "intel-rapl:0", "package-0", 1_000_000)
    write_zone(root, "intel-rapl:0:0", "core", 400_000)  # inside package-0: must not be added to it
    write_zone(root, "intel-rapl:1", "package-1", 5_000_000)
    return root
