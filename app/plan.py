"""A pane's plan: its mode (Direct, Thinking with a budget, Auto) and sampling, turned into a request.

prompt + PanePlan -> (GenerationRequest, router Decision or None). The app makes one per pane; the
session then adapts it to the pane's model (a model that cannot think is scaffolded).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.engines.types import GenerationRequest, Message, Sampling
from app.routing import classifier
from app.routing.evidence import WORTH, ModelRecord, knowing
from app.routing.heuristic import DIRECT, THINK, Decision, decide
from app.thinking_styles import minimum_problem

DIRECT_MODE, THINKING_MODE, AUTO_MODE = "direct", "thinking", "auto"
MAX_SAMPLES = 16  # a pane's k samples: decoded together, shown as a vote
PLAN_MODES = (DIRECT_MODE, THINKING_MODE, AUTO_MODE)


def answer_room(max_tokens: int) -> int:
    """Tokens kept for the answer after a budgeted thought: a quarter of max tokens, at most 64."""
    return max(1, min(64, max_tokens // 4))


def budget_limit(max_tokens: int) -> int:
    """The largest thinking budget a request of max_tokens can hold and still answer."""
    return max(0, max_tokens - answer_room(max_tokens))


def budget_problem(budget: int | None, max_tokens: int) -> str | None:
    """Why a thinking budget cannot be held within max tokens, in words; None when it can."""
    if budget is None or budget <= budget_limit(max_tokens):
        return None
    return (f"the thinking budget ({budget} tokens) leaves no room for the answer within max tokens "
            f"({max_tokens}): lower the budget to {budget_limit(max_tokens)} or less, or raise max tokens")


@dataclass(frozen=True)
class PanePlan:
    mode: str = DIRECT_MODE
    thinking_budget: int | None = None  # Thinking: close the thought after this many tokens; None: no limit
    thinking_min: int | None = None  # Thinking: refuse an earlier end of the thought with "Wait" (s1)
    temperature: float = 0.7
    max_tokens: int = 512
    seed: int = 0
    override: str | None = None  # Auto only: DIRECT or THINK overrides the router's route
    n_samples: int = 1  # k samples, majority: the model answers k times at once and the pane shows the vote

    def __post_init__(self) -> None:
        if self.mode not in PLAN_MODES:
            raise ValueError(f"mode must be one of {', '.join(PLAN_MODES)}, not {self.mode!r}")
        if self.thinking_budget is not None and self.thinking_budget < 0:
            raise ValueError(f"the thinking budget must be 0 or more, not {self.thinking_budget}")
        if self.thinking_min is not None and self.thinking_min < 0:
            raise ValueError(f"the minimum thought must be 0 or more, not {self.thinking_min}")
        if problem := minimum_problem(self.thinking_min, self.thinking_budget):
            raise ValueError(problem)
        if self.max_tokens < 1:
            raise ValueError(f"max tokens must be 1 or more, not {self.max_tokens}")
        if self.mode == THINKING_MODE and (problem := budget_problem(self.thinking_budget, self.max_tokens)):
            raise ValueError(problem)
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"the temperature must be between 0 and 5, not {self.temperature}")
        if not 1 <= self.n_samples <= MAX_SAMPLES:
            raise ValueError(f"samples must be from 1 to {MAX_SAMPLES}, not {self.n_samples}")
        if self.override not in (None, DIRECT, THINK):
            raise ValueError(f"override must be {DIRECT!r} or {THINK!r}, not {self.override!r}")


def route(prompt: str, router: str = "heuristic", max_tokens: int | None = None,
          record: ModelRecord | None = None, worth: float = WORTH) -> Decision:
    """Ask the chosen router: "heuristic" (hand-set features) or "classifier" (trained weights).

    record: the model's own record (model_record.record_for): the prompt's decision moved by what
    thinking gained that model on such prompts, weighed against its cost (`worth`: how many direct
    answers' energy one more right answer is worth). None: the prompt alone decides.
    max_tokens: the request's; a budget it could not hold is lowered to one it can, and the
    decision says so, so the router never proposes a thought that would leave no room to answer.
    """
    if router == "classifier":
        decision = classifier.decide(prompt)
    elif router == "heuristic":
        decision = decide(prompt)
    else:
        raise ValueError(f"router must be heuristic or classifier, not {router!r}")
    decision = knowing(decision, prompt, record, worth)
    if max_tokens is not None and decision.budget is not None and decision.budget > budget_limit(max_tokens):
        held = budget_limit(max_tokens)
        decision = replace(decision, budget=held, reasons=(*decision.reasons, (
            f"budget lowered from {decision.budget} to {held} tokens to leave room for the answer within "
            f"max tokens {max_tokens}")))
    return decision


def plan_request(
    prompt: str, plan: PanePlan, system: str | None = None, router: str = "heuristic",
    record: ModelRecord | None = None, worth: float = WORTH,
) -> tuple[GenerationRequest, Decision | None]:
    """The request for one pane, and the router's decision when the pane is on Auto (`record`: the
    pane's model's record, which the decision then knows)."""
    if not prompt.strip():
        raise ValueError("the prompt is empty: type a question first")
    decision = route(prompt, router, plan.max_tokens, record, worth) if plan.mode == AUTO_MODE else None
    if plan.mode == THINKING_MODE:
        thinking, budget = True, plan.thinking_budget
    elif plan.mode == DIRECT_MODE:
        thinking, budget = False, None
    else:
        chosen = plan.override or decision.route
        thinking = chosen == THINK
        budget = (plan.thinking_budget if plan.thinking_budget is not None else decision.budget) if thinking else None
        if thinking and (problem := budget_problem(budget, plan.max_tokens)):
            raise ValueError(problem)
    request = build_request(prompt, system, plan.max_tokens, plan.temperature, plan.seed, thinking, budget,
                            plan.thinking_min if thinking else None, n_samples=plan.n_samples)
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
    n_samples: int = 1,
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
        n_samples=n_samples,
    )


def describe_decision(decision: Decision, override: str | None = None) -> str:
    """One line for the router banner: 'Thinking: arithmetic, multi-step wording · confidence 0.82'."""
    route = "Thinking" if decision.route == THINK else "Direct"
    budget = f" (budget {decision.budget} tokens)" if decision.budget is not None else ""
    line = f"{route}{budget}: {'; '.join(decision.reasons)} · confidence {decision.confidence:.2f}"
    if override and override != decision.route:
        line += f" — overridden: {'Thinking' if override == THINK else 'Direct'}"
    return line


__all__ = ["AUTO_MODE", "DIRECT", "DIRECT_MODE", "PLAN_MODES", "PanePlan", "THINK", "THINKING_MODE",
           "answer_room", "budget_limit", "budget_problem", "build_request", "describe_decision", "plan_request",
           "route"]
