"""`fastslow telemetry`: which energy sources this machine offers, why the others are not used,
and a short sample of what they read (with what sampling itself costs here)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TextIO

from app.exit_codes import EXIT_INTERRUPTED, EXIT_OK
from app.telemetry.energy import energy_for_window
from app.telemetry.sampler import Sampler
from app.telemetry.sources import Detected, detect_sources



def add_telemetry_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    command = subparsers.add_parser(
        "telemetry", help="the energy sources here (measured or estimated, and why), and a short sample of them")
    command.add_argument("--seconds", type=_number(0.0, "0 or more seconds"), default=3.0,
                         help="how long to sample (default 3; 0 only lists the sources)")
    command.add_argument("--hz", type=_number(0.0, "a positive rate", strict=True), default=10.0,
                         help="samples a second (default 10, the app's default)")
    command.add_argument("--tdp", type=_number(0.0, "positive watts", strict=True), metavar="W",
                         help="your CPU's TDP, for the estimate when no CPU counter is readable")
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=cmd_telemetry)
    return command


def _number(minimum: float, what: str, strict: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None
        if value < minimum or (strict and value == minimum) or value != value:
            raise argparse.ArgumentTypeError(f"must be {what}, not {text}")
        return value
    return parse


def cmd_telemetry(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    found = detect_sources(args.tdp)
    try:
        window = sample_window(found, args.seconds, args.hz) if args.seconds > 0 else None
    except KeyboardInterrupt:
        print("\nfastslow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        found.close()
    if args.json:
        out.write(json.dumps(as_record(found, window)) + "\n")
    else:
        out.write(describe(found, window) + "\n")
    return EXIT_OK


def sample_window(found: Detected, seconds: float, hz: float) -> dict:
    """Sample every source for `seconds`: average CPU, memory, the energy with its breakdown, and
    what the sampler's own thread used."""
    with Sampler(found.sources, interval_s=1.0 / hz) as sampler:
        t0 = sampler.sample_now().t
        time.sleep(seconds)
        t1 = sampler.sample_now().t
    inside = [s for s in sampler.samples if t0 < s.t <= t1]
    figure = energy_for_window(sampler.samples, t0, t1)
    return {
        "seconds": t1 - t0,
        "hz": hz,
        "samples": len(inside),
        "cpu_percent": sum(s.cpu_percent for s in inside) / len(inside) if inside else None,
        "mem_total": inside[-1].mem_total if inside else None,
        "mem_available": inside[-1].mem_available if inside else None,
        "energy": None if figure is None else figure.to_dict(),
        "sampler_cpu_percent": 100.0 * sampler.own_cpu_s / (t1 - t0),
        "failures": [list(f) for f in sampler.failures],
    }


def as_record(found: Detected, window: dict | None) -> dict:
    return {
        "sources": [
            {"name": s.info.name, "label": s.info.label, "domain": s.info.domain, "measures": s.info.measures,
             "unit": s.info.unit, "update_s": s.info.update_s, "detail": s.info.detail}
            for s in found.sources
        ],
        "unavailable": [list(u) for u in found.unavailable],
        "fixable": [list(f) for f in found.fixable],
        "window": window,
    }


def describe(found: Detected, window: dict | None) -> str:
    lines = ["Energy sources on this machine:", found.describe()]
    if window is not None:
        lines.append(f"Sampled {window['seconds']:.1f} s at {window['hz']:g} Hz ({window['samples']} samples):")
        if window["cpu_percent"] is not None:
            gib = 1024**3
            lines.append(f"  system CPU {window['cpu_percent']:.0f}% on average; memory "
                         f"{window['mem_available'] / gib:.1f} of {window['mem_total'] / gib:.1f} GiB available")
        energy = window["energy"]
        if energy is not None:
            for name, joules in energy["breakdown"].items():
                lines.append(f"  {name:16} {joules / window['seconds']:7.2f} W on average  {joules:8.2f} J")
            lines.append(f"  {'in all':16} {energy['avg_w']:7.2f} W on average  {energy['joules']:8.2f} J"
                         f"  (peak {energy['peak_w']:.2f} W; {energy['source']})")
        for name, reason in window["failures"]:
            lines.append(f"  {name} stopped while sampling: {reason}")
        lines.append(f"  the sampler's own thread used {window['sampler_cpu_percent']:.2f}% of one core")
    if found.fixable:
        lines.append("To measure what is estimated or missing now:")
        lines += [f"  {name}: {reason}" for name, reason in found.fixable]
    return "\n".join(lines)
