"""Auto across two panes, RouteLLM's setting: the fast pane answers directly, or the slow pane thinks.

Often the fast pane is a small model here and the slow one a thinking model on a server. The prompt's
router (plan.route) chooses; each side's expected time and energy, from that model's own runs in
the session log (expected_cost.py), are said with the choice, so what thinking would cost is seen
before it is paid. The choice is a Decision like any router's (route, budget, confidence, reasons),
stored with the run, plus the pane it sends the prompt to and both sides' expectations.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.expected_cost import Expected
from app.plan import route
from app.routing.heuristic import THINK


@dataclass(frozen=True)
class Between:
    route: str  # DIRECT: the fast pane answers directly; THINK: the slow pane thinks
    budget: int | None
    confidence: float
    reasons: tuple[str, ...]  # the prompt's reasons, then what each side is expected to cost
    p_think: float
    pane: int  # the pane that answers
    fast: Expected
    slow: Expected
    fast_pane: int = 0
    slow_pane: int = 1

    @property
    def chosen(self) -> Expected:
        return self.slow if self.route == THINK else self.fast

    @property
    def other(self) -> Expected:
        return self.fast if self.route == THINK else self.slow

    def banner(self) -> str:
        """One paragraph for the router banner and `fastslow route --between`."""
        budget = f" (budget {self.budget} tokens)" if self.route == THINK and self.budget is not None else ""
        how = "Thinking" if self.route == THINK else "Directly"
        other = "directly" if self.route == THINK else "thinking"
        return (f"{how} on {self.chosen.model} {self.chosen.where}{budget}: {', '.join(self.reasons[:-1])} · "
                f"confidence {self.confidence:.2f}. Expected: {self.chosen.words()}; {other} on "
                f"{self.other.model} {self.other.where}: {self.other.words()}.")


def route_between(
    prompt: str, fast: Expected, slow: Expected, fast_pane: int = 0, slow_pane: int = 1,
    router: str = "heuristic", max_tokens: int | None = None,
) -> Between:
    """Which pane answers `prompt`: the fast one directly, or the slow one thinking (the router's
    route), with both sides' expected cost. `max_tokens`: the slow pane's, so its budget fits."""
    decision = route(prompt, router, max_tokens)
    thinking = decision.route == THINK
    chosen, other = (slow, fast) if thinking else (fast, slow)
    cost = (f"sent to {chosen.model} {chosen.where} {'to think' if thinking else 'to answer directly'} "
            f"({chosen.words()}); {other.model} {other.where} {'directly' if thinking else 'thinking'}: "
            f"{other.words()}")
    return Between(
        route=decision.route, budget=decision.budget if thinking else None, confidence=decision.confidence,
        reasons=(*decision.reasons, cost), p_think=decision.p_think,
        pane=slow_pane if thinking else fast_pane, fast=fast, slow=slow, fast_pane=fast_pane, slow_pane=slow_pane,
    )
