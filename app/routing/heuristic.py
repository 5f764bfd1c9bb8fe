"""The heuristic router: cheap text features decide direct answer or thinking, with reasons.

The features are the prompt's kind (routing/concepts.py: a proof, code, small talk…) and a few
cues of arithmetic and length. Each feature adds evidence for or against thinking (a log-odds
weight); the sum becomes a probability, the route comes from a threshold that can be calibrated to
a target share of thinking (as RouteLLM calibrates its routers), and the features that weighed most
become the reasons shown to the user. No model is run: a decision costs about 2 ms on a long
question, the kinds' patterns most of it (tests/perf/test_router_cost.py; goal under 5 ms).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from app.routing import concepts
from app.routing.concepts import DIRECT, THINK

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_ARITHMETIC = re.compile(
    r"\d\s*[-+*/×÷^%]\s*\d|\b(?:sum|product|percent|percentage|average|ratio|remainder)\b|"
    r"\d\s*(?:times|multiplied by|divided by|plus|minus)\s*\d",
    re.I,
)
# Two operands of two digits or more: past what a small model does reliably in one step.
_MULTI_DIGIT = re.compile(r"\d{2,}\s*(?:[-+*/×÷^]|times|multiplied by|divided by)\s*\d{2,}", re.I)
_MULTI_STEP = re.compile(
    r"\b(?:then|after|each|every|per|total|altogether|remaining|left|more than|less than|twice|half|"
    r"how many|how much|how long|in all)\b",
    re.I,
)
# Log-odds of needing to think, per feature. Hand-set, then checked against GSM8K vs plain questions
# in tests; the trained classifier replaces guesswork with data.
_BIAS = -1.0
_WEIGHTS = {
    "numbers": 0.45,  # per number beyond the first, up to 4
    "arithmetic": 1.0,
    "multi_step": 0.5,  # per cue, up to 3
    "multi_digit": 1.2,
    "long": 0.8,  # over 40 words
    "short": -0.8,  # under 8 words
    # The prompt's kinds (routing/concepts.py): each pulls the way that kind usually goes.
    "proof": 3.0,
    "code": 2.5,
    "date": 2.5,
    "puzzle": 2.5,
    "math": 2.5,
    "multi_step_arithmetic": 2.0,
    "one_step_arithmetic": -3.5,
    "translation": -3.5,
    "summary": -3.5,
    "creative": -3.5,
    "factual": -3.0,
    "small_talk": -4.0,
}


@dataclass(frozen=True)
class Decision:
    route: str  # DIRECT or THINK
    budget: int | None  # thinking tokens to allow; None for a direct answer
    confidence: float  # probability of the chosen route, 0.5..1
    reasons: tuple[str, ...]  # what weighed most, in words, strongest first
    p_think: float  # the raw probability that thinking is worth it


def features(prompt: str) -> dict[str, float]:
    """How much of each kind of evidence the prompt holds (0 when none)."""
    words = len(prompt.split())
    numbers = len(_NUMBER.findall(prompt))
    kind = concepts.kind_of(prompt)  # one concept a prompt: the first kind found
    return {
        "numbers": float(min(max(numbers - 1, 0), 4)),
        "arithmetic": float(bool(_ARITHMETIC.search(prompt))),
        "multi_step": float(min(len(_MULTI_STEP.findall(prompt)), 3)),
        "multi_digit": float(bool(_MULTI_DIGIT.search(prompt))),
        "long": float(words > 40),
        "short": float(words < 8),
        **{k.name: float(k.name == kind) for k in concepts.KINDS},
    }


def score(prompt: str) -> float:
    """The probability that thinking is worth it for this prompt."""
    return _probability(features(prompt))


def _probability(feats: dict[str, float]) -> float:
    logit = _BIAS + sum(_WEIGHTS[name] * value for name, value in feats.items())
    return 1.0 / (1.0 + math.exp(-logit))


_REASONS = {
    "numbers": "{n:.0f} more numbers to combine",
    "arithmetic": "arithmetic",
    "multi_digit": "multi-digit arithmetic",
    "multi_step": "multi-step wording",
    "long": "a long question",
    "short": "a short question",
    **{kind.name: kind.words for kind in concepts.KINDS},
}


def decide(prompt: str, threshold: float = 0.5, budgets: tuple[int, int] = (256, 1024)) -> Decision:
    """Route one prompt; the budget grows with how sure the router is that thinking pays."""
    feats = features(prompt)
    contributions = [(_REASONS[n].format(n=feats[n]), _WEIGHTS[n] * v) for n, v in feats.items() if v]
    return make_decision(_probability(feats), contributions, threshold, budgets)


def make_decision(
    p: float, contributions: list[tuple[str, float]], threshold: float = 0.5, budgets: tuple[int, int] = (256, 1024)
) -> Decision:
    """A Decision from a probability and the (reason, log-odds) that made it: the reasons shown are
    the strongest that pushed toward the chosen route. Shared by every router."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
    route = THINK if p >= threshold else DIRECT
    toward = sorted(((r, c) for r, c in contributions if c and (c > 0) == (route == THINK)), key=lambda rc: -abs(rc[1]))
    reasons = tuple(dict.fromkeys(r for r, _ in toward))[:3] or ("nothing stood out",)
    low, high = budgets
    budget = round(low + (high - low) * (p - threshold) / (1 - threshold)) if route == THINK else None
    confidence = p if route == THINK else 1.0 - p
    return Decision(route, budget, round(confidence, 3), reasons, p)


def calibrate_threshold(prompts: list[str], think_share: float, score_fn=None) -> float:
    """The threshold that sends `think_share` of these prompts to thinking (under score_fn, the
    router's probability; the heuristic's by default)."""
    if not prompts:
        raise ValueError("calibration needs at least one prompt")
    if not 0.0 <= think_share <= 1.0:
        raise ValueError(f"the share of thinking must be between 0 and 1, not {think_share}")
    scores = sorted(((score_fn or score)(p) for p in prompts), reverse=True)
    n_think = round(think_share * len(scores))
    if n_think == 0:
        return min(0.999999, scores[0] + 1e-6)
    if n_think >= len(scores):
        return max(1e-6, scores[-1])
    # Halfway between the last prompt that thinks and the first that does not.
    return max(1e-6, min(0.999999, (scores[n_think - 1] + scores[n_think]) / 2))
