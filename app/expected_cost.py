"""What a model's answer is expected to cost where it runs, from its own runs in the session log.

The router between two panes (plan.route_between) shows this for each side before it sends the
prompt to one: the medians of the model's latest finished runs of the same kind (answering
directly, or thinking), as this machine or that server actually took them; never a guess from
the model's size. A model with no such run says so.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from app.engines.openai_stream import endpoint
from app.engines.types import EngineError, ModelSpec
from app.record import EnergyReport
from app.store import SessionLog, StoreError
from app.store.log import RunSummary

RECENT = 50  # the latest runs of a kind that count: the machine and the model as they are now


@dataclass(frozen=True)
class Expected:
    """A model's expected time and energy for one kind of answer, and what it is based on."""

    model: str
    where: str  # "here", or "at gpu-box:8000" for a served model
    thinking: bool
    n_runs: int = 0
    time_s: float | None = None
    energy_j: float | None = None
    server_measured: bool = True  # False: a served model whose server's energy is not in energy_j
    energy_kind: str = ""  # "measured", "estimated" or "mixed": what the runs' figures were

    @property
    def kind(self) -> str:
        return "thinking" if self.thinking else "direct"

    def words(self) -> str:
        """"~6.2 s, ~2.1 J (median of 4 thinking runs)", or why there is no figure."""
        if not self.n_runs or self.time_s is None:
            return f"not known: no {self.kind} run of it in the log yet"
        t = self.time_s
        parts = [f"~{t:.1f} s" if t >= 1 else f"~{t * 1000:.0f} ms"]
        if self.energy_j is not None:
            kind = f" {self.energy_kind}" if self.energy_kind else ""
            parts.append(f"~{self.energy_j:.1f} J{kind}" + ("" if self.server_measured else
                                                              " here (the server's energy not measured)"))
        return f"{', '.join(parts)} (median of {self.n_runs} {self.kind} run{'s' if self.n_runs != 1 else ''})"


def model_key(spec: ModelSpec) -> tuple[str, str]:
    """(name, path) as the log stores a model's runs: a served model's path is its normalised URL."""
    if spec.engine == "remote":
        try:
            return spec.name, endpoint(spec.path).url
        except EngineError:
            return spec.name, spec.path
    return spec.label, spec.path


def where(spec: ModelSpec) -> str:
    if spec.engine == "remote":
        try:
            return f"at {endpoint(spec.path).where}"
        except EngineError:
            return f"at {spec.path}"
    return "here"


def expected_cost(log: SessionLog | None, spec: ModelSpec, thinking: bool) -> Expected:
    """The medians of the model's latest finished runs that thought (or did not), from the log."""
    name, _ = key = model_key(spec)
    runs: list[RunSummary] = []
    if log is not None:
        try:
            runs = log.list_runs(limit=RECENT * 4, model=key)
        except StoreError:  # a log that cannot be read gives no figure, never a failure
            runs = []
    mine = [r for r in runs if r.status == "ok" and r.total_s is not None
            and (r.n_thinking_tokens > 0) == thinking][:RECENT]
    expected = Expected(spec.label, where(spec), thinking, n_runs=len(mine))
    if not mine:
        return expected
    energies = [r.energy_j for r in mine if r.energy_j is not None]
    kinds = {EnergyReport(energy_source=r.energy_source or "").kind for r in mine if r.energy_j is not None} - {""}
    served = spec.engine == "remote"
    return Expected(
        spec.label, expected.where, thinking, len(mine),
        time_s=statistics.median(r.total_s for r in mine),
        energy_j=statistics.median(energies) if energies else None,
        server_measured=not served or all("remote-nvml" in (r.energy_source or "") for r in mine),
        energy_kind=kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "",
    )
