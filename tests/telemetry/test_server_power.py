"""A served model's GPU energy, read from its server's metrics endpoint (`measured:remote-nvml`).

The exporter is a stand-in on 127.0.0.1 speaking dcgm-exporter's text format, its counters running
at a known power, since no GPU box is reachable here; the model server is the real llama-cpp-python
server serving the bundled SmolLM2."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time

import pytest

from app.record import server_domain
from app.telemetry import energy_for_window
from app.telemetry.sampler import Sampler
from app.telemetry.server_power import (
    FAILURES_TO_DROP, METRICS_ENV, POLL_S, candidates, parse_metrics, server_power_sources,
)
from app.telemetry.sources import SourceUnavailable

DCGM_TEXT = """\
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a",modelName="NVIDIA H100"} 151.5
DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-b",modelName="NVIDIA H100"} 148.5
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0",UUID="GPU-a"} {e0}
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="1",UUID="GPU-b"} {e1}
DCGM_FI_DEV_GPU_TEMP{gpu="0"} NaN
junk line here
"""


class Exporter:
    """dcgm-exporter's /metrics, two GPUs drawing `watts` between them from the moment it starts."""

    def __init__(self, watts: float = 300.0, power_only: bool = False) -> None:
        self.watts, self.power_only, self.t0 = watts, power_only, time.monotonic()
        self.alive = True
        self.text: str | None = None  # another exporter's whole answer
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not exporter.alive:
                    self.send_error(503)
                    return
                mj = 1e9 + exporter.watts * (time.monotonic() - exporter.t0) * 1000 / 2  # each GPU, since boot
                text = DCGM_TEXT.replace("{e0}", f"{mj:.0f}").replace("{e1}", f"{mj:.0f}")
                if exporter.text is not None:
                    text = exporter.text
                elif exporter.power_only:
                    text = "\n".join(line for line in text.splitlines() if "ENERGY" not in line)
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def exporter(**kwargs):
    served = Exporter(**kwargs)
    try:
        yield served
    finally:
        served.close()


def test_the_metrics_text_is_summed_over_the_gpus_and_junk_is_skipped():
    values = parse_metrics(DCGM_TEXT.replace("{e0}", "1000").replace("{e1}", "2500"))
    assert values["DCGM_FI_DEV_POWER_USAGE"] == 300.0
    assert values["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] == 3500.0
    assert "DCGM_FI_DEV_GPU_TEMP" not in values and "junk" not in values


def test_where_the_metrics_are_looked_for(monkeypatch):
    monkeypatch.delenv(METRICS_ENV, raising=False)
    assert candidates("http://gpu-box:8000/v1") == [
        "http://gpu-box:9400/metrics", "http://gpu-box:9835/metrics", "http://gpu-box:8000/metrics"]
    monkeypatch.setenv(METRICS_ENV, "http://dcgm.internal:9400/metrics")
    assert candidates("http://gpu-box:8000/v1") == ["http://dcgm.internal:9400/metrics"]


@pytest.mark.parametrize("power_only", [False, True])
def test_the_servers_gpus_are_a_measured_source_of_their_own_domain(power_only, monkeypatch):
    with exporter(watts=300.0, power_only=power_only) as served:
        monkeypatch.setenv(METRICS_ENV, served.url)
        [source], failed = server_power_sources([("http://gpu-box:8000/v1", "gpu-box:8000")])
        try:
            assert failed == []
            assert (source.info.name, source.info.label) == ("remote-nvml:gpu-box:8000", "measured:remote-nvml")
            assert source.info.domain == server_domain("gpu-box:8000")
            assert "every request that server ran meanwhile is in it" in source.info.measures
            with Sampler([source], 0.05) as sampler:
                with sampler.active():
                    sampler.sample_now()
                    t0 = time.perf_counter()
                    time.sleep(1.5)
                    t1 = time.perf_counter()
                    sampler.sample_now()
                time.sleep(0.3)  # a reading past the window's end
                sampler.sample_now()
            figure = energy_for_window(sampler.samples, t0, t1, domains=[server_domain("gpu-box:8000")])
        finally:
            source.close()
    assert figure.source_label == "measured:remote-nvml"
    assert figure.covers == ("server:gpu-box:8000",)
    assert figure.joules == pytest.approx(300.0 * (t1 - t0), rel=0.2)  # polled every 0.25 s: within a poll


def test_no_metrics_for_a_server_is_one_sentence_with_the_fix(monkeypatch):
    monkeypatch.delenv(METRICS_ENV, raising=False)
    sources, [(name, why)] = server_power_sources([("http://127.0.0.1:9/v1", "127.0.0.1:9")])
    assert sources == [] and name == "remote-nvml:127.0.0.1:9"
    assert why.startswith("no GPU power metrics for the server at 127.0.0.1:9: tried http://127.0.0.1:9400/metrics")
    assert why.endswith(f"run NVIDIA's dcgm-exporter there, or set {METRICS_ENV}")


def test_an_exporter_without_a_power_metric_is_said_so(monkeypatch):
    with exporter() as served:
        monkeypatch.setenv(METRICS_ENV, served.url)
        served.text = "# a vLLM's own metrics, no GPU power\nvllm:num_requests_running 2\nprocess_cpu_seconds_total 12.5\n"
        sources, [(_, why)] = server_power_sources([("http://x:1/v1", "x:1")])
    assert sources == [] and f"{served.url} (no GPU power metric)" in why


def test_an_exporter_that_stops_answering_is_given_up_with_its_reason(monkeypatch):
    with exporter() as served:
        monkeypatch.setenv(METRICS_ENV, served.url)
        [source], _ = server_power_sources([("http://gpu-box:8000/v1", "gpu-box:8000")])
        try:
            first = source.read()
            served.alive = False
            time.sleep(POLL_S * (FAILURES_TO_DROP + 2))
            with pytest.raises(SourceUnavailable, match="remote-nvml:gpu-box:8000 stopped answering at"):
                source.read()
        finally:
            source.close()
    assert first.joules is not None and first.joules >= 0


def test_a_servers_gpus_are_shared_only_with_runs_on_that_server(monkeypatch):
    # Two workers beside each other: the CPU's energy is shared by CPU time, the server's GPUs not
    # at all when the other run was local (it used none of them).
    from app.telemetry.sampler import ProcSample, Sample
    from app.telemetry.sources import Reading, SourceInfo

    cpu = SourceInfo("rapl:0", "measured:rapl", "cpu", "CPU", "uJ", 0.001)
    gpus = SourceInfo("remote-nvml:box:1", "measured:remote-nvml", "server:box:1", "GPUs", "mJ", 0.001)
    samples = [Sample(t=float(t), cpu_percent=50.0, mem_total=1, mem_available=1, battery_percent=None,
                      on_mains=None, procs={1: ProcSample(0.1 * t, 10.0, 1, 1), 2: ProcSample(0.9 * t, 90.0, 1, 1)},
                      power={"rapl:0": Reading(cpu, float(t), joules=10.0 * t),
                             "remote-nvml:box:1": Reading(gpus, float(t), joules=300.0 * t)})
               for t in range(0, 5)]
    domains = ["cpu", "server:box:1"]
    local_beside = energy_for_window(samples, 1.0, 3.0, pid=1, share_with=[2], domains=domains, server_share_with=[])
    assert local_beside.breakdown["rapl:0"] == pytest.approx(20.0 * 0.1)
    assert local_beside.breakdown["remote-nvml:box:1"] == pytest.approx(600.0)
    same_server = energy_for_window(samples, 1.0, 3.0, pid=1, share_with=[2], domains=domains, server_share_with=[2])
    assert same_server.breakdown["remote-nvml:box:1"] == pytest.approx(60.0)
    assert any("the server's GPUs shared by CPU time with this app's other requests there: this run's share is 10%"
               in note for note in same_server.notes)


# -- a served pane, end to end ----------------------------------------------------------------


@pytest.mark.model
def test_a_served_run_is_charged_its_servers_gpus_and_a_local_run_beside_it_is_not(
        smollm2_path, smollm2_spec, tmp_path, monkeypatch):
    from llama_server import LlamaServer

    from app.catalog import resolve
    from app.engines.types import GenerationRequest, Sampling
    from app.session import Session

    server = LlamaServer(smollm2_path, "smollm2", tmp_path / "server.log")
    try:
        with exporter(watts=400.0) as served:
            monkeypatch.setenv(METRICS_ENV, served.url)
            request = GenerationRequest.from_prompt("Name three rivers.", max_tokens=48, sampling=Sampling(temperature=0))
            with Session([smollm2_spec, resolve(server.spec_name)], mode="live") as session:
                session.load()
                local, remote = session.compare(request)
    finally:
        server.kill()
    where = f"127.0.0.1:{server.port}"
    assert remote.status == "ok" and local.status == "ok"
    assert "measured:remote-nvml" in remote.energy_source
    assert server_domain(where) in remote.energy_detail["covers"]
    # The server's 400 W over the run, unshared (the local pane used none of it), plus this machine's share.
    assert remote.energy_detail["details"][f"remote-nvml:{where}"]["label"] == "measured:remote-nvml"
    assert remote.energy_j >= 400.0 * remote.total_s * 0.8
    assert any(note.startswith(f"measured:remote-nvml — the server ({where}) generated this reply")
               for note in remote.energy.notes)
    assert server_domain(where) not in local.energy_detail["covers"]
    assert any(note.startswith(f"not charged: remote-nvml:{where} (the server's GPUs ({where})) drew")
               for note in local.energy.notes)
