"""One run's record: frozen parts composed into a RunResult, built once when the run ends.

Each part groups what belongs together, so a new fact lands in one part (and one column) instead
of a dozen files: what ran (Conditions), how its thought was held (ThoughtControl), what it
generated (Tokens), how long it took (Timings), what it cost (EnergyReport, Memory) and how it
ended (Ending, with the Status enum). Readers may use the flat names (`r.ttft_s`), which are views
of the parts; the store's codec (app/store/codec.py) maps a record to its columns and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any, Mapping

from app.engines.offload import placement
from app.engines.types import ModelInfo
from app.thinking_styles import SCAFFOLD_MARKERS


class Status(str, Enum):
    """How a run ended (RUNNING until it does). A str, so `r.status == "ok"` reads as it always did."""

    RUNNING = "running"
    OK = "ok"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the app died while it ran: the log marks its row so at the next start

    __str__ = str.__str__
    __format__ = str.__format__


def rate(count: int, seconds: float | None) -> float | None:
    """count per second; None when there is nothing to divide."""
    if not count or not seconds or seconds <= 0:
        return None
    return count / seconds


def decode_rate(token_times: "list[float] | tuple[float, ...]") -> float | None:
    """Decode tokens/s: the tokens after the first over the time after the first. The first token's
    time is the prompt's (TTFT), so counting it would mix prefill into decode. One home for the
    figure: the recorder's finished record and a pane's live average both use it."""
    if len(token_times) < 2 or token_times[-1] <= token_times[0]:
        return None
    return (len(token_times) - 1) / (token_times[-1] - token_times[0])


@dataclass(frozen=True)
class Conditions:
    """What ran, and where: a figure is never read without these."""

    model: str = ""
    mode: str = "fair"  # "fair" (panes one after another, all cores each) or "live" (at once, cores split)
    model_path: str = ""
    engine: str = ""
    backend: str = ""
    quantization: str = ""
    n_threads: int = 0
    n_gpu_layers: int = 0
    started_at: str = ""  # wall clock, ISO 8601
    on_mains: bool | None = None  # at the run's end: False on battery; None without a battery (or unknown)
    battery_percent: float | None = None  # laptops slow down and draw less on battery: numbers differ
    device: str = ""  # the GPU(s) its offloaded layers ran on; "" on the CPU
    n_layers: int = 0  # the model's layers, so "20/28 layers offloaded" can be said of a stored run
    # Logical CPUs kept busy by other processes over the run (app/telemetry/load.py); None: not measured.
    background_cores: float | None = None
    load_note: str = ""  # why that load distorted its figures, said when the run ended; "": it did not
    # One of k samples of one prompt decoded together (its time and energy are shares of the batch's).
    sample: int = 0
    n_samples: int = 1
    samples_note: str = ""  # how the samples were run where it matters (fewer fit; one after another)

    @property
    def energy_domains(self) -> tuple[str, ...]:
        """The hardware the run used, which its energy is charged for: energy_domains()."""
        return energy_domains(self.engine, self.n_gpu_layers, self.device)

    @property
    def placement(self) -> str:
        """Where it ran, in a few words: "CPU · 2 threads", "CUDA · RTX 4070 · 20/28 layers"."""
        if not self.engine:  # never loaded: nothing ran anywhere
            return ""
        return placement(self.backend, self.device, self.n_gpu_layers, self.n_layers, self.n_threads)


SERVER_DOMAIN = "server:"  # the GPUs behind a served model: "server:gpu-box:8000"


def server_domain(where: str) -> str:
    """The energy domain of the GPUs behind the server at `where` ("gpu-box:8000")."""
    return SERVER_DOMAIN + where


def energy_domains(engine: str, n_gpu_layers: int, device: str = "") -> tuple[str, ...]:
    """The hardware a model's runs use, which their energy is charged for: the CPU and memory always,
    the GPU where layers were offloaded to it or the engine runs on it (MLX on Metal), a served
    model's server (its device is where it is) where its GPUs' power is published."""
    if engine == "remote":
        return ("cpu", "dram", server_domain(device))
    on_gpu = n_gpu_layers != 0 or engine == "mlx"
    return ("cpu", "dram", "gpu") if on_gpu else ("cpu", "dram")


def remote_energy_note(conditions: "Conditions", covers: tuple[str, ...] = ()) -> str:
    """What a served model's energy figure holds of the server, in its notes; "" for a model run here.
    This machine's share (waiting, receiving) is measured as any run's; the server's GPUs where their
    power is published (`covers` has its domain), else said to be missing."""
    if conditions.engine != "remote":
        return ""
    where = f" ({conditions.device})" if conditions.device else ""
    if server_domain(conditions.device) in covers:
        return (f"measured:remote-nvml — the server{where} generated this reply: its GPUs' energy is read from "
                "their metrics endpoint and holds whatever else that server ran meanwhile")
    return (f"not measured: remote — the server{where} generated this reply; its energy is not in this figure, "
            "which covers this machine only (waiting and receiving); where dcgm-exporter runs beside the server "
            "(port 9400, found alone) or FASTSLOW_SERVER_METRICS names its metrics, the server's GPUs are measured")


def model_conditions(info: ModelInfo) -> dict[str, Any]:
    """What a loaded model fixes of a run's conditions, by their flat names (the recorder's and the log's)."""
    return dict(model_path=info.path, engine=info.engine, backend=info.backend_used, quantization=info.quantization,
                n_threads=info.n_threads, n_gpu_layers=info.n_gpu_layers_offloaded, device=info.device,
                n_layers=info.n_layers)


@dataclass(frozen=True)
class ThoughtControl:
    """How the thought was asked for and held: the request's limits, and what they did."""

    thinking_style: str = "none"
    strategy: str = "native"  # "native" thinking, or "scaffold" for a model that cannot think
    thinking_budget: int | None = None
    thinking_min: int | None = None  # budget forcing: the request's minimum thought
    thinking_budget_hit: bool = False  # the budget, not the model, closed the thought
    thinking_extended: int = 0  # times the model's early close was refused with "Wait"
    thinking_unclosed: bool = False  # the run ended mid-thought (out of tokens, or cancelled)
    thought_note: str = ""  # the engine could not hold the request's limits, and what it did instead (a server)


@dataclass(frozen=True)
class Tokens:
    """Counts by the model's tokenizer, and when each generated token came."""

    n_prompt_tokens: int = 0
    n_prompt_evaluated: int = 0  # the rest came from the reused KV cache prefix
    n_generated: int = 0
    n_thinking_tokens: int = 0  # tag tokens included: they are what thinking costs
    n_answer_tokens: int = 0
    token_times_s: tuple[float, ...] = ()  # each generated token, seconds from submit
    answer_logprob_mean: float | None = None  # mean log-probability of the answer's tokens, when asked


@dataclass(frozen=True)
class Timings:
    """Seconds from the request leaving the parent; rates computed once (rate, decode_rate)."""

    ttft_s: float | None = None
    ttfat_s: float | None = None  # the first visible answer token: what a reader waits for
    prompt_eval_s: float | None = None
    prompt_tps: float | None = None
    decode_tps: float | None = None
    total_s: float | None = None
    engine_decode_tps: float | None = None  # the engine's own timer, to cross-check ours


@dataclass(frozen=True)
class EnergyReport:
    """Energy over the run's window, never a bare number: `energy_source` says where it came from."""

    energy_j: float | None = None
    energy_source: str = ""  # "measured:rapl", "estimated:tdp, shared by CPU time" ...
    energy_approximate: bool = False  # e.g. a run too short for the sensor; the notes say why
    avg_w: float | None = None
    peak_w: float | None = None
    thinking_energy_j: float | None = None
    answer_energy_j: float | None = None
    j_per_token: float | None = None
    j_per_thinking_token: float | None = None
    j_per_answer_token: float | None = None
    energy_detail: Mapping[str, Any] = field(default_factory=dict)  # EnergyFigure.to_dict(): sources, notes

    @property
    def kinds(self) -> frozenset[str]:
        """"measured", "estimated" or both: what kind of figure this is, from each source's own label
        (a record imported without its breakdown: from the joined label)."""
        details = self.energy_detail.get("details") or {}
        labels = [d.get("label", "") for d in details.values()] or self.base_source.split(" + ")
        return frozenset(label.split(":", 1)[0].strip() for label in labels if ":" in label)

    @property
    def kind(self) -> str:
        """The kinds in a word for a figure's label: "measured", "estimated", "mixed", or "" when none."""
        kinds = self.kinds
        return "" if not kinds else next(iter(kinds)) if len(kinds) == 1 else "mixed"

    @property
    def base_source(self) -> str:
        """The sources without how the figure was shared ("estimated:tdp" of "estimated:tdp, shared …")."""
        return self.energy_source.split(",", 1)[0]

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(self.energy_detail.get("notes") or ())


@dataclass(frozen=True)
class Memory:
    peak_rss_bytes: int | None = None  # the worker's high-water mark (its model load included)
    engine_peak_memory_bytes: int | None = None  # the engine's own peak for the request (MLX)


@dataclass(frozen=True)
class Ending:
    """How the run ended, and what that means for a reader."""

    status: Status = Status.RUNNING
    finish_reason: str | None = None  # "stop", "length", "cancelled"
    error_kind: str | None = None
    error: str | None = None
    no_answer: str = ""  # why a finished run has no answer, and what to change ("" when it answered)
    correct: bool | None = None  # against the prompt's known answer; None when there was none


PARTS: dict[str, type] = {
    "conditions": Conditions, "thought": ThoughtControl, "tokens": Tokens, "timings": Timings,
    "energy": EnergyReport, "memory": Memory, "ending": Ending,
}
# Each flat name and the part it lives in: names are unique across parts (the store's columns).
FLAT_PART: dict[str, str] = {f.name: part for part, cls in PARTS.items() for f in fields(cls)}


@dataclass(frozen=True)
class RunResult:
    """One model's answer to one prompt, with the figures that say what it cost."""

    pane: int
    text: str = ""  # the answer
    thinking: str = ""  # the reasoning before it, when the model thinks
    conditions: Conditions = Conditions()
    thought: ThoughtControl = ThoughtControl()
    tokens: Tokens = Tokens()
    timings: Timings = Timings()
    energy: EnergyReport = EnergyReport()
    memory: Memory = Memory()
    ending: Ending = Ending()

    @classmethod
    def of(cls, pane: int, text: str = "", thinking: str = "", **flat: Any) -> "RunResult":
        """A record from flat names (`RunResult.of(pane=0, model="m", status="ok", ttft_s=0.1)`);
        an unknown name is a TypeError, as for any constructor."""
        return cls(pane=pane, text=text, thinking=thinking).updated(**flat)

    def updated(self, **flat: Any) -> "RunResult":
        """A copy with these flat names changed."""
        unknown = sorted(set(flat) - set(FLAT_PART) - {"text", "thinking", "pane"})
        if unknown:
            raise TypeError(f"RunResult has no field {', '.join(map(repr, unknown))}")
        top = {k: flat.pop(k) for k in ("pane", "text", "thinking") if k in flat}
        parts = {}
        for part in {FLAT_PART[k] for k in flat}:
            mine = {k: v for k, v in flat.items() if FLAT_PART[k] == part}
            parts[part] = replace(getattr(self, part), **_normal(mine))
        return replace(self, **top, **parts)

    def to_dict(self) -> dict[str, Any]:
        """Flat and JSON-ready: every name a column of the log's runs table (token_times_s a list)."""
        flat: dict[str, Any] = {"pane": self.pane, "text": self.text, "thinking": self.thinking}
        for part in PARTS:
            value = getattr(self, part)
            for f in fields(value):
                flat[f.name] = getattr(value, f.name)
        flat["status"] = self.ending.status.value
        flat["token_times_s"] = list(self.tokens.token_times_s)
        flat["energy_detail"] = dict(self.energy.energy_detail)
        return flat


def _normal(values: dict[str, Any]) -> dict[str, Any]:
    """Values as the parts keep them: the status an enum, the timeline a tuple."""
    if "status" in values:
        values["status"] = Status(values["status"])
    if "token_times_s" in values:
        values["token_times_s"] = tuple(values["token_times_s"])
    return values


def _flat_view(part: str, name: str) -> property:
    return property(lambda self: getattr(getattr(self, part), name), doc=f"{part}.{name}")


# The flat names as read-only views of the parts: `r.ttft_s` is `r.timings.ttft_s`.
for _name, _part in FLAT_PART.items():
    setattr(RunResult, _name, _flat_view(_part, _name))
RunResult.placement = property(lambda self: self.conditions.placement, doc="conditions.placement")


SCAFFOLD_MARKER_SAID = f"{SCAFFOLD_MARKERS[0]} …"  # how a reply is told to end its thought


def no_answer_reason(r: "RunResult", max_tokens: int | None = None) -> str:
    """Why a finished run has no answer, and what to change; "" when it has one."""
    if r.text.strip():
        return ""
    if r.status == "cancelled":
        return "cancelled before it answered"
    limit = f" ({max_tokens})" if max_tokens else ""
    if r.finish_reason == "length":
        if r.n_thinking_tokens and (r.thinking_unclosed or not r.n_answer_tokens) and not r.thinking_budget_hit:
            fix = ("set a thinking budget below max tokens, so the thought is closed in time"
                   if r.thinking_budget is None else "lower the thinking budget")
            return f"it thought until max tokens{limit} ran out and never answered: raise max tokens, or {fix}"
        return f"max tokens{limit} ran out before the answer: raise max tokens"
    if "scaffold" in (r.strategy, r.thinking_style):
        return (f"it stopped without writing \"{SCAFFOLD_MARKER_SAID}\", so its whole reply is shown as the "
                "thought: try Direct mode, or a model that thinks natively")
    if r.n_thinking_tokens and r.thinking_unclosed:
        return "it ended its turn inside its thought, without answering: try again, or try Direct mode"
    return "it ended its turn without an answer: try again with another seed, or rephrase the prompt"


def power_supply(on_mains: bool | None, battery_percent: float | None) -> str:
    """Whether a run ran on battery, in words; "" where there is no battery to speak of."""
    if on_mains is None:
        return ""
    if on_mains:
        return "on mains power"
    return "on battery" + (f" ({battery_percent:.0f}%)" if battery_percent is not None else "")
