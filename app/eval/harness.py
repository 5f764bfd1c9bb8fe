"""Run a suite through routing policies and measure what each buys and costs.

A policy turns a question into a request: "direct" never thinks, "think" always does (with the
budget), "heuristic" asks the router. Every sample is kept; the summary per policy is accuracy,
share routed to thinking, tokens, latency and TTFT.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

from app.engines.types import GenerationRequest, Message, Sampling
from app.eval.answers import extract_answer, is_correct
from app.eval.suites import Problem
from app.routing.heuristic import THINK, decide
from app.session import Session

POLICIES = ("direct", "think", "heuristic")
INSTRUCTION = "\n\nSolve it step by step, then end with: The answer is <number>."


@dataclass
class Sample:
    problem_id: str
    policy: str
    model: str
    route: str  # "direct" or "think"
    strategy: str  # "native" thinking, or "scaffold" for a model that cannot think
    reasons: list[str]
    reference: str
    predicted: str | None  # None: no number could be read from the answer
    correct: bool
    status: str
    error: str | None
    thinking_style: str
    n_thinking_tokens: int
    n_answer_tokens: int
    thinking_unclosed: bool
    latency_s: float | None
    ttft_s: float | None
    answer: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PolicySummary:
    policy: str
    n: int
    accuracy: float
    think_share: float
    mean_thinking_tokens: float
    mean_answer_tokens: float
    mean_latency_s: float | None
    mean_ttft_s: float | None
    failed: int
    unparsed: int  # answers with no number in them (e.g. a thought that never closed)


def parse_policies(text: str) -> list[str]:
    policies = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or not policies:
        raise ValueError(f"unknown policy {', '.join(unknown) or '(none given)'}: choose from {', '.join(POLICIES)}")
    return policies


def plan(
    policy: str, question: str, max_tokens: int, budget: int | None = None
) -> tuple[str, list[str], GenerationRequest]:
    """The route, its reasons, and the request one policy makes of one question."""
    if policy == "heuristic":
        decision = decide(question)
        route, reasons = decision.route, list(decision.reasons)
        budget = decision.budget if budget is None else budget
    else:
        route, reasons = (THINK if policy == "think" else "direct"), [f"policy {policy}"]
    thinking = route == THINK
    request = GenerationRequest(
        messages=(Message("user", question + INSTRUCTION),),
        max_tokens=max_tokens,
        sampling=Sampling(temperature=0.0),  # greedy: the comparison is between policies, not luck
        thinking=thinking,
        thinking_budget=budget if thinking else None,
        cache_prompt=False,  # each sample pays its full prompt, whatever ran before it
    )
    return route, reasons, request


def run_eval(
    session: Session,
    problems: Iterable[Problem],
    policies: list[str],
    max_tokens: int,
    budget: int | None = None,
    on_sample: Callable[[Sample], None] | None = None,
) -> list[Sample]:
    """Every problem through every policy on the session's first model."""
    samples = []
    for problem in problems:
        for policy in policies:
            route, reasons, request = plan(policy, problem.question, max_tokens, budget)
            result = session.compare(request)[0]
            predicted = extract_answer(result.text) if result.status == "ok" else None
            sample = Sample(
                problem_id=problem.id,
                policy=policy,
                model=result.model,
                route=route,
                strategy=result.strategy,
                reasons=reasons,
                reference=problem.answer,
                predicted=predicted,
                correct=is_correct(predicted, problem.answer),
                status=result.status,
                error=result.error,
                thinking_style=result.thinking_style,
                n_thinking_tokens=result.n_thinking_tokens,
                n_answer_tokens=result.n_answer_tokens,
                thinking_unclosed=result.thinking_unclosed,
                latency_s=result.total_s,
                ttft_s=result.ttft_s,
                answer=result.text,
            )
            samples.append(sample)
            if on_sample is not None:
                on_sample(sample)
    return samples


def summarise(samples: list[Sample]) -> list[PolicySummary]:
    summaries = []
    for policy in dict.fromkeys(s.policy for s in samples):
        mine = [s for s in samples if s.policy == policy]
        ok = [s for s in mine if s.status == "ok"]
        summaries.append(
            PolicySummary(
                policy=policy,
                n=len(mine),
                accuracy=sum(s.correct for s in mine) / len(mine),
                think_share=sum(s.route == THINK for s in mine) / len(mine),
                mean_thinking_tokens=statistics.fmean(s.n_thinking_tokens for s in mine),
                mean_answer_tokens=statistics.fmean(s.n_answer_tokens for s in mine),
                mean_latency_s=_mean(s.latency_s for s in ok),
                mean_ttft_s=_mean(s.ttft_s for s in ok),
                failed=len(mine) - len(ok),
                unparsed=sum(s.predicted is None for s in ok),
            )
        )
    return summaries


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None
