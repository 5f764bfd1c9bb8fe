"""A served model's GPU power, where its operator publishes it: a Prometheus metrics endpoint.

NVIDIA's dcgm-exporter (port 9400) publishes each GPU's energy counter and power; the community's
nvidia_gpu_exporter (port 9835) its power. Either, next to a llama-server or vLLM, lets a served
run's energy include the server's GPUs, labelled `measured:remote-nvml` (NVML is what both read).
The endpoint is FASTSLOW_SERVER_METRICS when set, else those two ports on the server's host and the
server's own /metrics are tried, briefly, when the session's telemetry starts.

The endpoint is read by a thread of this source's own (every POLL_S), never inside the sampler's
tick: a slow network must not hold the local readings up. The sampler takes the latest reading.
"""

from __future__ import annotations

import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from app.record import server_domain
from app.telemetry.sources import Reading, SourceInfo, SourceUnavailable

METRICS_ENV = "FASTSLOW_SERVER_METRICS"  # the metrics endpoint of the server's GPUs, when not found alone
PROBE_S = 0.4  # how long a candidate endpoint may take to answer at the start
READ_TIMEOUT_S = 2.0
POLL_S = 0.25
FAILURES_TO_DROP = 4  # consecutive failed reads (about a second) before the source is given up
EXPORTER_PORTS = (9400, 9835)  # dcgm-exporter, nvidia_gpu_exporter
# (metric, unit, counter?) in order of preference: an energy counter beats sampled power.
METRICS = (
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "mJ", True),
    ("DCGM_FI_DEV_POWER_USAGE", "W", False),
    ("nvidia_smi_power_draw_watts", "W", False),
)
_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Each metric's value summed over its label sets (every GPU of the box); NaN and junk skipped."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        if value == value and abs(value) != float("inf"):
            sums[match.group(1)] = sums.get(match.group(1), 0.0) + value
    return sums


def _fetch(url: str, timeout: float) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 — http(s) URLs only, checked
        return parse_metrics(answer.read(4_000_000).decode("utf-8", "replace"))


def _power_metric(values: dict[str, float]) -> tuple[str, str, bool] | None:
    return next((m for m in METRICS if m[0] in values), None)


class ServerGpuSource:
    """The GPUs behind one served model, from their metrics endpoint."""

    def __init__(self, metrics_url: str, where: str, values: dict[str, float]) -> None:
        metric, unit, counter = _power_metric(values)
        self.url, self._metric, self._counter = metrics_url, metric, counter
        self.info = SourceInfo(
            name=f"remote-nvml:{where}",
            label="measured:remote-nvml",
            domain=server_domain(where),
            measures=(f"the GPUs of the server at {where}, {'energy counter' if counter else 'power'} "
                      f"{metric} from {metrics_url}; every request that server ran meanwhile is in it"),
            unit=unit,
            update_s=1.0,  # dcgm-exporter collects every second at best (its -c; 30 s by default)
            detail={"metrics_url": metrics_url, "metric": metric},
        )
        self._start = values[metric] if counter else 0.0
        self._lock = threading.Lock()
        self._latest = self._reading(time.perf_counter(), values[metric])
        self._failures, self._why = 0, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="fastslow-server-power", daemon=True)
        self._thread.start()

    def _reading(self, t: float, value: float) -> Reading:
        if self._counter:
            return Reading(self.info, t, joules=max(value - self._start, 0.0) / 1e3)
        return Reading(self.info, t, watts=value)

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            t0 = time.perf_counter()
            try:
                values = _fetch(self.url, READ_TIMEOUT_S)
                value = values[self._metric]
            except (OSError, urllib.error.URLError, KeyError, ValueError) as exc:
                with self._lock:
                    self._failures += 1
                    self._why = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
                continue
            t = (t0 + time.perf_counter()) / 2  # the exporter answered somewhere in the round trip
            with self._lock:
                self._latest, self._failures = self._reading(t, value), 0

    def read(self) -> Reading:
        with self._lock:
            if self._failures >= FAILURES_TO_DROP:
                raise SourceUnavailable(f"{self.info.name} stopped answering at {self.url}: {self._why}")
            return self._latest  # the same reading until a newer one comes (energy.py reads it once)

    def close(self) -> None:
        self._stop.set()


def candidates(server_url: str) -> list[str]:
    """Where the GPUs' metrics may be for a server at `server_url` ("http://gpu-box:8000/v1")."""
    chosen = os.environ.get(METRICS_ENV, "").strip()
    if chosen:
        return [chosen]
    parts = urlsplit(server_url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return [f"http://{host}:{port}/metrics" for port in EXPORTER_PORTS] + [
        f"{parts.scheme}://{parts.netloc}/metrics"]


def server_power_sources(servers: Iterable[tuple[str, str]]) -> tuple[list[ServerGpuSource], list[tuple[str, str]]]:
    """A source for each (base URL, where) whose GPU metrics answer, or the reason there is none."""
    servers = list(dict.fromkeys(servers))
    if not servers:
        return [], []

    def probe(server: tuple[str, str]):
        url, where = server
        tried: list[str] = []
        for candidate in candidates(url):
            if urlsplit(candidate).scheme not in ("http", "https"):
                tried.append(f"{candidate} (not an http URL)")
                continue
            try:
                values = _fetch(candidate, PROBE_S)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                tried.append(f"{candidate} ({getattr(exc, 'reason', None) or exc})")
                continue
            if _power_metric(values) is not None:
                return ServerGpuSource(candidate, where, values), None
            tried.append(f"{candidate} (no GPU power metric)")
        return None, (f"remote-nvml:{where}", f"no GPU power metrics for the server at {where}: tried "
                      f"{'; '.join(tried)} — run NVIDIA's dcgm-exporter there, or set {METRICS_ENV}")

    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        found = list(pool.map(probe, servers))
    return [s for s, _ in found if s is not None], [why for _, why in found if why is not None]

