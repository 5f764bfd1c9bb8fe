"""Windows' Energy Meter Interface: a device's answers, byte for byte as emi.h lays them out.

No Windows here, so a stand-in device answers the three requests with bytes built from the header's
structures (as test_rapl.py builds a sysfs tree); the SetupAPI/DeviceIoControl calls that fetch
such bytes on Windows are not run.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import replace

import pytest

from app.telemetry import Sample, energy_for_window
from app.telemetry.emi import (
    IOCTL_EMI_GET_MEASUREMENT,
    IOCTL_EMI_GET_METADATA,
    IOCTL_EMI_GET_METADATA_SIZE,
    IOCTL_EMI_GET_VERSION,
    J_PER_PWH,
    EmiError,
    emi_sources,
    parse_metadata,
)
from app.telemetry.sources import SourceUnavailable

PWH_PER_J = 1 / J_PER_PWH


def wchars(text: str, count: int = 16) -> bytes:
    """WCHAR name[count], null-padded."""
    assert len(text) < count, "the name and its null must fit"
    return text.encode("utf-16-le").ljust(2 * count, b"\0")


def metadata_v2(channels: list[tuple[int, str]], oem: str = "Intel", model: str = "RAPL") -> bytes:
    """EMI_METADATA_V2: HardwareOEM[16], HardwareModel[16], HardwareRevision, ChannelCount, then each
    EMI_CHANNEL_V2 (MeasurementUnit, ChannelNameSize in bytes with the null, ChannelName), packed
    one after the other as EMI_CHANNEL_V2_NEXT_CHANNEL walks them."""
    data = wchars(oem) + wchars(model) + struct.pack("<HH", 1, len(channels))
    for unit, name in channels:
        encoded = (name + "\0").encode("utf-16-le")
        data += struct.pack("<IH", unit, len(encoded)) + encoded
    return data


def metadata_v1(name: str, unit: int = 0) -> bytes:
    """EMI_METADATA_V1: MeasurementUnit, HardwareOEM[16], HardwareModel[16], HardwareRevision,
    MeteredHardwareNameSize, MeteredHardwareName."""
    encoded = (name + "\0").encode("utf-16-le")
    return struct.pack("<I", unit) + wchars("Contoso") + wchars("Meter") + struct.pack("<HH", 3, len(encoded)) + encoded


class StandInMeter:
    """An energy meter device: counters in picowatt-hours that tests advance."""

    def __init__(self, version: int, metadata: bytes, pwh: list[int], name: str = r"\\?\ACPI#INT3532#0") -> None:
        self.name, self._version, self._metadata, self.pwh = name, version, metadata, pwh
        self.measurements = 0
        self.closed = False
        self.fail: Exception | None = None
        self.cut_short = False

    def version(self) -> int:
        return self._version

    def metadata(self) -> bytes:
        return self._metadata

    def measurement(self, n_channels: int) -> bytes:
        if self.fail:
            raise self.fail
        self.measurements += 1
        data = b"".join(struct.pack("<QQ", energy, 10_000_000 * self.measurements) for energy in self.pwh[:n_channels])
        return data[:-4] if self.cut_short else data

    def close(self) -> None:
        self.closed = True


INTEL = [(0, "RAPL_Package0_PKG"), (0, "RAPL_Package0_PP0"), (0, "RAPL_Package0_PP1"),
         (0, "RAPL_Package0_DRAM"), (0, "RAPL_Package0_PSYS")]


def test_the_ioctl_codes_are_emi_h_s_ctl_codes():
    def ctl_code(function: int) -> int:  # CTL_CODE(FILE_DEVICE_UNKNOWN, function, METHOD_BUFFERED, FILE_READ_ACCESS)
        return (0x22 << 16) | (0x1 << 14) | (function << 2) | 0

    assert [IOCTL_EMI_GET_VERSION, IOCTL_EMI_GET_METADATA_SIZE, IOCTL_EMI_GET_METADATA, IOCTL_EMI_GET_MEASUREMENT] == [
        ctl_code(0), ctl_code(1), ctl_code(2), ctl_code(3)]


def test_the_setupapi_structures_have_windows_sizes_and_the_guid_its_fields():
    import ctypes
    import uuid

    from app.telemetry.emi import GUID_DEVICE_ENERGY_METER, structures

    GUID, SP_DEVICE_INTERFACE_DATA = structures()
    guid = GUID.from_buffer_copy(uuid.UUID(GUID_DEVICE_ENERGY_METER).bytes_le)
    # DEFINE_GUID(GUID_DEVICE_ENERGY_METER, 0x45bd8344, 0x7ed6, 0x49cf, 0xa4, 0x40, 0xc2, 0x76, 0xc9, 0x33, 0xb0, 0x53)
    assert (guid.Data1, guid.Data2, guid.Data3, bytes(guid.Data4)) == (
        0x45BD8344, 0x7ED6, 0x49CF, bytes([0xA4, 0x40, 0xC2, 0x76, 0xC9, 0x33, 0xB0, 0x53]))
    assert ctypes.sizeof(GUID) == 16
    assert ctypes.sizeof(SP_DEVICE_INTERFACE_DATA) == (32 if ctypes.sizeof(ctypes.c_void_p) == 8 else 28)


def test_metadata_v2_is_walked_channel_by_channel_even_unaligned():
    meta = parse_metadata(2, metadata_v2([(0, "RAPL_Package0_PKG"), (0, "Odd"), (0, "RAPL_Package0_DRAM")],
                                         oem="Intel Corp", model="RAPL EMI"))
    assert (meta.oem, meta.model, meta.revision) == ("Intel Corp", "RAPL EMI", 1)
    assert [c.name for c in meta.channels] == ["RAPL_Package0_PKG", "Odd", "RAPL_Package0_DRAM"]


def test_an_intel_meter_counts_the_package_and_dram_once_each_and_says_why_not_the_rest():
    meter = StandInMeter(2, metadata_v2(INTEL), [1_000_000_000] * 5)
    sources, failed = emi_sources([meter])
    assert [(s.info.name, s.info.domain, s.info.label, s.info.unit) for s in sources] == [
        ("emi:RAPL_Package0_PKG", "cpu", "measured:emi", "pWh"), ("emi:RAPL_Package0_DRAM", "dram", "measured:emi", "pWh")]
    assert failed == [
        ("emi:RAPL_Package0_PP0", "inside the CPU package, which is counted instead"),
        ("emi:RAPL_Package0_PP1", "inside the CPU package, which is counted instead"),
        ("emi:RAPL_Package0_PSYS", "the whole platform, overlapping the package; not used")]
    assert sources[0].info.measures == ("CPU package energy from Windows' Energy Meter Interface (Intel RAPL, "
                                        "channel RAPL_Package0_PKG), from its cumulative counter")
    # One second at 12 W on the package and 2 W on DRAM; PP0 (inside the package) must not add.
    first = [replace(s.read(), t=0.0) for s in sources]
    meter.pwh = [1_000_000_000 + round(12 * PWH_PER_J), 1_000_000_000 + round(9 * PWH_PER_J),
                 1_000_000_000, 1_000_000_000 + round(2 * PWH_PER_J), 1_000_000_000 + round(30 * PWH_PER_J)]
    import time

    time.sleep(0.01)  # past the shared read of this tick
    second = [replace(s.read(), t=1.0) for s in sources]
    assert meter.measurements == 2  # one per tick for both channels: opening (and the first read), then the second
    samples = [Sample(t, 0, 1, 1, None, None, {}, {r.info.name: r for r in rs}) for t, rs in ((0.0, first), (1.0, second))]
    figure = energy_for_window(samples, 0.0, 1.0)
    assert figure.breakdown == pytest.approx({"emi:RAPL_Package0_PKG": 12.0, "emi:RAPL_Package0_DRAM": 2.0})
    assert figure.source_label == "measured:emi"
    for source in sources:
        source.close()
    assert meter.closed


@pytest.mark.parametrize("names, package", [
    (["Current Socket Power", "Apu Power", "VDDCR_VDD Power", "VDDCR_SOC Power"], "Current Socket Power"),
    (["VDDCR_VDD Power", "Apu Power"], "Apu Power"),
])
def test_an_amd_meter_counts_its_socket_and_not_the_rails_inside_it(names, package):
    meter = StandInMeter(2, metadata_v2([(0, n) for n in names], oem="AMD", model="SMU"), [5] * len(names))
    sources, failed = emi_sources([meter])
    assert [s.info.name for s in sources] == [f"emi:{package}"]
    assert sources[0].info.measures.startswith("CPU package (socket) energy")
    assert {name for name, _ in failed} == {f"emi:{n}" for n in names if n != package}
    assert all(reason == "inside the CPU package, which is counted instead" for _, reason in failed)


def test_a_version_1_meter_has_one_channel_named_for_its_hardware():
    sources, failed = emi_sources([StandInMeter(1, metadata_v1("RAPL_Package0_PKG"), [7])])
    assert [s.info.name for s in sources] == ["emi:RAPL_Package0_PKG"] and failed == []
    assert "(Contoso Meter, channel RAPL_Package0_PKG)" in sources[0].info.measures


def test_a_channel_of_unknown_coverage_is_not_counted_and_its_meter_is_closed():
    meter = StandInMeter(1, metadata_v1("Battery Discharge"), [7])
    assert emi_sources([meter]) == ([], [("emi:Battery Discharge",
                                           "what this channel covers is not known to FastSlow; not counted")])
    assert meter.closed


@pytest.mark.parametrize("version, metadata, said", [
    (3, metadata_v2(INTEL), "EMI version 3 is not one this app reads (1 or 2)"),
    (2, metadata_v2(INTEL)[:100], "the EMI metadata is cut short (100 bytes)"),
    (1, metadata_v1("RAPL_Package0_PKG")[:60], "the EMI metadata is cut short (60 bytes)"),
    (2, metadata_v2([(1, "RAPL_Package0_PKG")]), "reports in unit 1, which EMI does not define"),
])
def test_a_meter_that_answers_what_cannot_be_read_is_listed_with_why(version, metadata, said):
    meter = StandInMeter(version, metadata, [1] * 5)
    sources, failed = emi_sources([meter])
    assert sources == [] and len(failed) == 1 and failed[0][1] == said
    assert meter.closed


def test_a_meter_that_stops_answering_is_dropped_with_the_reason():
    meter = StandInMeter(2, metadata_v2(INTEL), [1] * 5)
    (package, _dram), _ = emi_sources([meter])
    import time

    time.sleep(0.01)
    meter.cut_short = True
    with pytest.raises(SourceUnavailable, match=r"emi:RAPL_Package0_PKG stopped answering: the EMI measurement "
                                                r"is cut short: 76 bytes for 5 channels"):
        package.read()
    time.sleep(0.01)
    meter.cut_short, meter.fail = False, EmiError(r"\\?\ACPI#INT3532#0 refused request 0x22400c: The device is not ready")
    with pytest.raises(SourceUnavailable, match="refused request 0x22400c"):
        package.read()


@pytest.mark.skipif(sys.platform == "win32", reason="on Windows the real devices are opened")
def test_off_windows_it_says_so():
    assert emi_sources() == ([], [("emi", "not Windows")])
