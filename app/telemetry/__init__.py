"""Live telemetry: a sampler for CPU, memory, battery and power, the sources of power and energy,
and the attribution of energy to runs. Imports nothing above it (no Qt, no session)."""

from app.telemetry.energy import (
    EnergyFigure,
    PhaseEnergy,
    energy_for_window,
    power_series,
    split_phases,
)
from app.telemetry.emi import EmiSource
from app.telemetry.sampler import ProcSample, Sample, Sampler
from app.telemetry.sources import (
    Detected,
    IOReportSource,
    NvmlSource,
    PowerSource,
    RaplSource,
    Reading,
    SourceInfo,
    SourceUnavailable,
    TdpEstimateSource,
    detect_sources,
)

__all__ = [
    "Detected",
    "EmiSource",
    "EnergyFigure",
    "IOReportSource",
    "NvmlSource",
    "PhaseEnergy",
    "PowerSource",
    "ProcSample",
    "RaplSource",
    "Reading",
    "Sample",
    "Sampler",
    "SourceInfo",
    "SourceUnavailable",
    "TdpEstimateSource",
    "detect_sources",
    "energy_for_window",
    "power_series",
    "split_phases",
]
