"""A pane's plan: its mode (Direct, Thinking with a budget, Auto) and sampling, turned into a request.

prompt + PanePlan -> (GenerationRequest, router Decision or None). The app makes one per pane; the
session then adapts it to the pane's model (a model that cannot think is scaffolded).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engines.types import GenerationRequest, Message, Sampling
from app.routing import classifier
from app.routing.heuristic import DIRECT, THINK, Decision, decide

DIRECT_MODE, THINKING_MODE, AUTO_MODE = "direct", "thinking", "auto"
PLAN_MODES = (DIRECT_MODE, THINKING_MODE, AUTO_MODE)


@dataclass(frozen=True)
class PanePlan:
    mode: str = DIRECT_MODE
    thinking_budget: int | None = None  # Thinking: close the thought after this many tokens; None: no limit
    thinking_min: int | None = None  # Thinking: refuse an earlier end of the thought with "Wait" (s1)
    temperature: float = 0.7
    max_tokens: int = 512
    seed: int = 0
    override: str | None = None  # Auto only: DIRECT or THINK overrides the router's route

    def __post_init__(self) -> None:
        if self.mode not in PLAN_MODES:
            raise ValueError(f"mode must be one of {', '.join(PLAN_MODES)}, not {self.mode!r}")
        if self.thinking_budget is not None and self.thinking_budget < 0:
            raise ValueError(f"the thinking budget must be 0 or more, not {self.thinking_budget}")
        if self.thinking_min is not None and self.thinking_min < 0:
            raise ValueError(f"the minimum thought must be 0 or more, not {self.thinking_min}")
        if None not in (self.thinking_min, self.thinking_budget) and self.thinking_min > self.thinking_budget:
            raise ValueError(f"the minimum thought ({self.thinking_min}) is longer than the budget "
                             f"({self.thinking_budget})")
        if self.max_tokens < 1:
            raise ValueError(f"max tokens must be 1 or more, not {self.max_tokens}")
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"the temperature must be between 0 and 5, not {self.temperature}")
        if self.override not in (None, DIRECT, THINK):
            raise ValueError(f"override must be {DIRECT!r} or {THINK!r}, not {self.override!r}")


def route(prompt: str, router: str = "heuristic") -> Decision:
    """Ask the chosen router: "heuristic" (hand-set features) or "classifier" (trained weights)."""
    if router == "classifier":
        return classifier.decide(prompt)
    if router != "heuristic":
        raise ValueError(f"router must be heuristic or classifier, not {router!r}")
    return decide(prompt)


def plan_request(
    prompt: str, plan: PanePlan, system: str | None = None, router: str = "heuristic"
) -> tuple[GenerationRequest, Decision | None]:
    """The request for one pane, and the router's decision when the pane is on Auto."""
    if not prompt.strip():
        raise ValueError("the prompt is empty: type a question first")
    decision = route(prompt, router) if plan.mode == AUTO_MODE else None
    if plan.mode == THINKING_MODE:
        thinking, budget = True, plan.thinking_budget
    elif plan.mode == DIRECT_MODE:
        thinking, budget = False, None
    else:
        chosen = plan.override or decision.route
        thinking = chosen == THINK
        budget = (plan.thinking_budget if plan.thinking_budget is not None else decision.budget) if thinking else None
    request = build_request(prompt, system, plan.max_tokens, plan.temperature, plan.seed, thinking, budget,
                            plan.thinking_min if thinking else None)
    return request, decision


def build_request(
    prompt: str,
    system: str | None,
    max_tokens: int,
    temperature: float,
    seed: int,
    thinking: bool | None,
    thinking_budget: int | None,
    thinking_min: int | None = None,
) -> GenerationRequest:
    """The one place a prompt and its settings become a request (the app's panes, `fastslow compare`)."""
    messages = ((Message("system", system),) if system else ()) + (Message("user", prompt),)
    return GenerationRequest(
        messages=messages,
        max_tokens=max_tokens,
        sampling=Sampling(temperature=temperature),
        seed=seed,
        thinking=thinking,
        thinking_budget=thinking_budget,
        thinking_min=thinking_min,
    )


def describe_decision(decision: Decision, override: str | None = None) -> str:
    """One line for the router banner: 'Thinking: arithmetic, multi-step wording · confidence 0.82'."""
    route = "Thinking" if decision.route == THINK else "Direct"
    budget = f" (budget {decision.budget} tokens)" if decision.budget is not None else ""
    line = f"{route}{budget}: {', '.join(decision.reasons)} · confidence {decision.confidence:.2f}"
    if override and override != decision.route:
        line += f" — overridden: {'Thinking' if override == THINK else 'Direct'}"
    return line


__all__ = ["AUTO_MODE", "DIRECT", "DIRECT_MODE", "PLAN_MODES", "PanePlan", "THINK", "THINKING_MODE",
           "build_request", "describe_decision", "plan_request", "route"]
