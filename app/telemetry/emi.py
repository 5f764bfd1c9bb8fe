"""Windows' Energy Meter Interface (EMI): cumulative energy counters that firmware and drivers publish,
such as Intel's RAPL package and DRAM channels or AMD's socket power, read with DeviceIoControl.

Layouts and codes are those of Microsoft's emi.h (version 2 since Windows 10 1809). The device's
answers are parsed here apart from the Windows calls that fetch them, so the parsing and the choice
of channels are tested on any system; the calls themselves (SetupAPI, CreateFile, DeviceIoControl)
can only run on Windows.
"""

from __future__ import annotations

import struct
import sys
import time
from dataclasses import dataclass
from typing import Protocol

from app.telemetry.sources import OncePerTick, Reading, SourceInfo, SourceUnavailable

GUID_DEVICE_ENERGY_METER = "{45BD8344-7ED6-49CF-A440-C276C933B053}"
# CTL_CODE(FILE_DEVICE_UNKNOWN, function 0-3, METHOD_BUFFERED, FILE_READ_ACCESS)
IOCTL_EMI_GET_VERSION = 0x224000
IOCTL_EMI_GET_METADATA_SIZE = 0x224004
IOCTL_EMI_GET_METADATA = 0x224008
IOCTL_EMI_GET_MEASUREMENT = 0x22400C
PICOWATT_HOURS = 0  # EmiMeasurementUnitPicowattHours, the only unit EMI defines
J_PER_PWH = 3.6e-9
NAME_BYTES = 32  # EMI_NAME_MAX WCHARs
MEASUREMENT = struct.Struct("<QQ")  # EMI_CHANNEL_MEASUREMENT_DATA: AbsoluteEnergy (pWh), AbsoluteTime (100 ns)
# AMD publishes its package under one of these; the first present is the package, the rest overlap it.
AMD_PACKAGE_CHANNELS = ("Current Socket Power", "Socket Power", "Apu Power")


class EmiError(Exception):
    """The device cannot be read or answered something this module cannot parse; the message says which."""


@dataclass(frozen=True)
class EmiChannel:
    name: str
    unit: int  # EMI_MEASUREMENT_UNIT


@dataclass(frozen=True)
class EmiMetadata:
    oem: str
    model: str
    revision: int
    channels: tuple[EmiChannel, ...]


class EmiDevice(Protocol):
    """What an energy meter device answers (WindowsEmiDevice on Windows)."""

    name: str

    def version(self) -> int: ...
    def metadata(self) -> bytes: ...
    def measurement(self, n_channels: int) -> bytes: ...
    def close(self) -> None: ...


# -- parsing ------------------------------------------------------------------------------------


def parse_metadata(version: int, data: bytes) -> EmiMetadata:
    """EMI_METADATA_V1 (one channel: the metered hardware) or EMI_METADATA_V2 (ChannelCount channels)."""
    try:
        if version == 1:
            # MeasurementUnit, HardwareOEM, HardwareModel, HardwareRevision, MeteredHardwareNameSize, name
            (unit,) = struct.unpack_from("<I", data, 0)
            revision, name_size = struct.unpack_from("<HH", data, 4 + 2 * NAME_BYTES)
            name = _wide(data, 8 + 2 * NAME_BYTES, name_size)
            return EmiMetadata(_wide(data, 4, NAME_BYTES), _wide(data, 4 + NAME_BYTES, NAME_BYTES), revision,
                               (EmiChannel(name, unit),))
        if version == 2:
            # HardwareOEM, HardwareModel, HardwareRevision, ChannelCount, then each EMI_CHANNEL_V2:
            # MeasurementUnit, ChannelNameSize, ChannelName; the next one follows its name
            # (EMI_CHANNEL_V2_NEXT_CHANNEL), so channels after the first may be unaligned.
            revision, count = struct.unpack_from("<HH", data, 2 * NAME_BYTES)
            offset, channels = 2 * NAME_BYTES + 4, []
            for _ in range(count):
                unit, name_size = struct.unpack_from("<IH", data, offset)
                channels.append(EmiChannel(_wide(data, offset + 6, name_size), unit))
                offset += 6 + name_size
            return EmiMetadata(_wide(data, 0, NAME_BYTES), _wide(data, NAME_BYTES, NAME_BYTES), revision,
                               tuple(channels))
    except struct.error:
        raise EmiError(f"the EMI metadata is cut short ({len(data)} bytes)") from None
    raise EmiError(f"EMI version {version} is not one this app reads (1 or 2)")


def _wide(data: bytes, offset: int, size: int) -> str:
    """A null-terminated UTF-16 string of `size` bytes at offset."""
    if offset + size > len(data):
        raise struct.error("short")
    return data[offset:offset + size].decode("utf-16-le", errors="replace").split("\0", 1)[0]


def parse_measurements(data: bytes, n_channels: int) -> list[int]:
    """Each channel's cumulative energy in picowatt-hours (EMI_MEASUREMENT_DATA_V1/V2)."""
    if len(data) < MEASUREMENT.size * n_channels:
        raise EmiError(f"the EMI measurement is cut short: {len(data)} bytes for {n_channels} channels")
    return [MEASUREMENT.unpack_from(data, MEASUREMENT.size * i)[0] for i in range(n_channels)]


def channel_roles(names: list[str]) -> list[tuple[str | None, str]]:
    """(domain, what it covers) for each channel; domain None: not counted, the text says why.

    Summing every channel would count some energy twice: Intel's PP0 (cores) and PP1 (graphics) lie
    inside the package (PKG), AMD's rails inside its socket, and PSYS spans the whole platform.
    """
    amd = [n.lower() for n in AMD_PACKAGE_CHANNELS]
    amd_package = next((n for wanted in amd for n in names if n.lower() == wanted), None)
    roles: list[tuple[str | None, str]] = []
    for name in names:
        upper = name.upper()
        if upper.endswith("_PKG"):
            roles.append(("cpu", "CPU package"))
        elif upper.endswith("_DRAM"):
            roles.append(("dram", "memory"))
        elif name == amd_package:
            roles.append(("cpu", "CPU package (socket)"))
        elif upper.endswith(("_PP0", "_PP1")) or upper.startswith("VDDCR") or name.lower() in amd:
            roles.append((None, "inside the CPU package, which is counted instead"))
        elif "PSYS" in upper:
            roles.append((None, "the whole platform, overlapping the package; not used"))
        else:
            roles.append((None, "what this channel covers is not known to FastSlow; not counted"))
    return roles


# -- sources ------------------------------------------------------------------------------------


class EmiSource:
    """One EMI channel: cumulative picowatt-hours, read with the device's other channels at one instant."""

    def __init__(self, device: EmiDevice, reader: OncePerTick, index: int, channel: EmiChannel,
                 meta: EmiMetadata, domain: str, covers: str) -> None:
        self._device, self._reader, self._index = device, reader, index
        self.info = SourceInfo(
            name=f"emi:{channel.name}",
            label="measured:emi",
            domain=domain,
            measures=f"{covers} energy from Windows' Energy Meter Interface ({meta.oem} {meta.model}, "
                     f"channel {channel.name}), from its cumulative counter",
            unit="pWh",
            update_s=0.1,  # EMI does not say how often drivers refresh; runs shorter than this are flagged
            detail={"channel": channel.name, "device": device.name},
        )
        self._start_pwh = self._pwh()

    def _pwh(self) -> int:
        try:
            return self._reader.value()[self._index]
        except EmiError as exc:
            raise SourceUnavailable(f"{self.info.name} stopped answering: {exc}") from exc

    def read(self) -> Reading:
        t = time.perf_counter()
        return Reading(self.info, t, joules=(self._pwh() - self._start_pwh) * J_PER_PWH)

    def close(self) -> None:
        self._device.close()  # shared by the device's channels: closing twice is harmless


def emi_sources(devices: list[EmiDevice] | None = None) -> tuple[list[EmiSource], list[tuple[str, str]]]:
    """A source per package or DRAM channel of every energy meter, and (name, reason) for the rest.

    devices: None opens this machine's (Windows only).
    """
    failed: list[tuple[str, str]] = []
    if devices is None:
        if sys.platform != "win32":
            return [], [("emi", "not Windows")]
        devices, failed = open_windows_devices()
        if not devices and not failed:
            return [], [("emi", "no Energy Meter Interface device on this machine")]
    sources: list[EmiSource] = []
    for device in devices:
        try:
            meta = parse_metadata(device.version(), device.metadata())
            n = len(meta.channels)
            reader = OncePerTick(lambda device=device, n=n: parse_measurements(device.measurement(n), n))
            mine = []
            for index, (channel, (domain, covers)) in enumerate(zip(meta.channels, channel_roles(
                    [c.name for c in meta.channels]))):
                if domain is None:
                    failed.append((f"emi:{channel.name}", covers))
                elif channel.unit != PICOWATT_HOURS:
                    failed.append((f"emi:{channel.name}", f"reports in unit {channel.unit}, which EMI does not define"))
                else:
                    mine.append(EmiSource(device, reader, index, channel, meta, domain, covers))
            sources += mine
            if not mine:
                device.close()
        except Exception as exc:  # whatever a device answers, it becomes a reason, never a crash
            failed.append((f"emi:{device.name}", str(exc)))
            device.close()
    return sources, failed


# -- Windows ------------------------------------------------------------------------------------
# Not run on the machines this project is tested on (Linux): everything here is wrapped so that a
# failure becomes a reason in `fastslow telemetry`, never a crash.


def open_windows_devices() -> tuple[list[EmiDevice], list[tuple[str, str]]]:
    try:
        paths = _device_paths()
    except Exception as exc:  # SetupAPI failed in a way the checks below do not name
        return [], [("emi", f"the energy meter devices could not be listed: {exc}")]
    devices, failed = [], []
    for path in paths:
        try:
            devices.append(WindowsEmiDevice(path))
        except Exception as exc:
            failed.append((f"emi:{path}", str(exc)))
    return devices, failed


def structures():
    """GUID and SP_DEVICE_INTERFACE_DATA as ctypes structures (definable, and checked, off Windows too)."""
    import ctypes

    # Fixed-width types: DWORD is 32 bits on Windows, but ctypes.wintypes maps it to C long elsewhere.
    class GUID(ctypes.Structure):
        _fields_ = [("Data1", ctypes.c_uint32), ("Data2", ctypes.c_uint16), ("Data3", ctypes.c_uint16),
                    ("Data4", ctypes.c_ubyte * 8)]

    class SP_DEVICE_INTERFACE_DATA(ctypes.Structure):
        _fields_ = [("cbSize", ctypes.c_uint32), ("InterfaceClassGuid", GUID), ("Flags", ctypes.c_uint32),
                    ("Reserved", ctypes.c_size_t)]  # ULONG_PTR

    return GUID, SP_DEVICE_INTERFACE_DATA


def _win():
    import ctypes
    from ctypes import wintypes

    GUID, SP_DEVICE_INTERFACE_DATA = structures()
    setupapi = ctypes.WinDLL("setupapi", use_last_error=True)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    handle, pointer = wintypes.HANDLE, ctypes.c_void_p
    setupapi.SetupDiGetClassDevsW.argtypes = [ctypes.POINTER(GUID), wintypes.LPCWSTR, wintypes.HWND, wintypes.DWORD]
    setupapi.SetupDiGetClassDevsW.restype = handle
    setupapi.SetupDiEnumDeviceInterfaces.argtypes = [handle, pointer, ctypes.POINTER(GUID), wintypes.DWORD,
                                                     ctypes.POINTER(SP_DEVICE_INTERFACE_DATA)]
    setupapi.SetupDiGetDeviceInterfaceDetailW.argtypes = [handle, ctypes.POINTER(SP_DEVICE_INTERFACE_DATA), pointer,
                                                          wintypes.DWORD, ctypes.POINTER(wintypes.DWORD), pointer]
    setupapi.SetupDiDestroyDeviceInfoList.argtypes = [handle]
    kernel32.CreateFileW.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, pointer, wintypes.DWORD,
                                     wintypes.DWORD, handle]
    kernel32.CreateFileW.restype = handle
    kernel32.DeviceIoControl.argtypes = [handle, wintypes.DWORD, pointer, wintypes.DWORD, pointer, wintypes.DWORD,
                                         ctypes.POINTER(wintypes.DWORD), pointer]
    kernel32.CloseHandle.argtypes = [handle]
    return ctypes, wintypes, GUID, SP_DEVICE_INTERFACE_DATA, setupapi, kernel32


def _last_error(ctypes, what: str) -> EmiError:
    code = ctypes.get_last_error()
    return EmiError(f"{what}: {ctypes.FormatError(code).strip()} (error {code})")


def _device_paths() -> list[str]:
    """The interface paths of every present device of class GUID_DEVICE_ENERGY_METER."""
    import uuid

    ctypes, wintypes, GUID, SP_DEVICE_INTERFACE_DATA, setupapi, _ = _win()
    guid = GUID.from_buffer_copy(uuid.UUID(GUID_DEVICE_ENERGY_METER).bytes_le)
    digcf_present, digcf_deviceinterface, error_no_more_items = 0x2, 0x10, 259
    info = setupapi.SetupDiGetClassDevsW(ctypes.byref(guid), None, None, digcf_present | digcf_deviceinterface)
    if info is None or info == ctypes.c_void_p(-1).value:
        raise _last_error(ctypes, "SetupDiGetClassDevs")
    paths = []
    try:
        index = 0
        while True:
            interface = SP_DEVICE_INTERFACE_DATA(cbSize=ctypes.sizeof(SP_DEVICE_INTERFACE_DATA))
            if not setupapi.SetupDiEnumDeviceInterfaces(info, None, ctypes.byref(guid), index, ctypes.byref(interface)):
                if ctypes.get_last_error() == error_no_more_items:
                    return paths
                raise _last_error(ctypes, "SetupDiEnumDeviceInterfaces")
            required = wintypes.DWORD()
            setupapi.SetupDiGetDeviceInterfaceDetailW(info, ctypes.byref(interface), None, 0, ctypes.byref(required), None)
            detail = ctypes.create_string_buffer(max(required.value, 8))
            # SP_DEVICE_INTERFACE_DETAIL_DATA_W.cbSize: the fixed part, a DWORD and one WCHAR padded to the
            # platform's alignment: 8 on 64-bit Windows, 6 on 32-bit.
            struct.pack_into("<I", detail, 0, 8 if ctypes.sizeof(ctypes.c_void_p) == 8 else 6)
            if not setupapi.SetupDiGetDeviceInterfaceDetailW(info, ctypes.byref(interface), detail, len(detail),
                                                             None, None):
                raise _last_error(ctypes, "SetupDiGetDeviceInterfaceDetail")
            paths.append(ctypes.wstring_at(ctypes.addressof(detail) + 4))
            index += 1
    finally:
        setupapi.SetupDiDestroyDeviceInfoList(info)


class WindowsEmiDevice:
    """An energy meter device opened read-only with CreateFile and asked with DeviceIoControl."""

    def __init__(self, path: str) -> None:
        self._ctypes, self._wintypes, *_, self._kernel32 = _win()
        generic_read, share_read_write, open_existing = 0x80000000, 0x1 | 0x2, 3
        handle = self._kernel32.CreateFileW(path, generic_read, share_read_write, None, open_existing, 0, None)
        if handle is None or handle == self._ctypes.c_void_p(-1).value:
            raise _last_error(self._ctypes, f"{path} cannot be opened")
        self.name, self._handle = path, handle

    def _ask(self, code: int, size: int) -> bytes:
        if self._handle is None:
            raise EmiError(f"{self.name} is closed")
        out, returned = self._ctypes.create_string_buffer(size), self._wintypes.DWORD()
        if not self._kernel32.DeviceIoControl(self._handle, code, None, 0, out, size, self._ctypes.byref(returned), None):
            raise _last_error(self._ctypes, f"{self.name} refused request {code:#x}")
        return out.raw[:returned.value]

    def version(self) -> int:
        return struct.unpack_from("<H", self._ask(IOCTL_EMI_GET_VERSION, 2))[0]

    def metadata(self) -> bytes:
        (size,) = struct.unpack_from("<I", self._ask(IOCTL_EMI_GET_METADATA_SIZE, 4))
        return self._ask(IOCTL_EMI_GET_METADATA, size)

    def measurement(self, n_channels: int) -> bytes:
        return self._ask(IOCTL_EMI_GET_MEASUREMENT, MEASUREMENT.size * n_channels)

    def close(self) -> None:
        if self._handle is not None:
            self._kernel32.CloseHandle(self._handle)
            self._handle = None
