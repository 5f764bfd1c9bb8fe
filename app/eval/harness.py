"""Run a suite through routing policies and measure what each buys and costs.

A policy turns a question into requests: "direct" never thinks, "think" always does (with the
budget), "heuristic" and "classifier" ask a router (hand-set features; trained weights), "auto"
asks the heuristic knowing the model's record of the *other* questions in the log (leave-one-out:
a question's own checked runs never route it),
"cascade" answers directly twice (sampled) and thinks only when the two disagree,
"cascade-logprob" answers directly once and thinks only when that answer's own token
probabilities are low,
"self-consistency" thinks k times (sampled) and takes the majority. Every sample is kept; the
summary per policy is accuracy, share routed to thinking, tokens, latency, TTFT and energy.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

from app.engines.types import GenerationRequest, Message, Sampling
from app.reasoning.answers import INSTRUCTION, extract_answer, is_correct
from app.eval.suites import Problem
from app.reasoning.consistency import majority_vote
from app.plan import route as ask_router
from app.routing.heuristic import DIRECT, THINK
from app.lanes import Ask, run_lanes
from app.model_record import record_for
from app.routing.evidence import ModelRecord
from app.session import Session

POLICIES = ("direct", "think", "heuristic", "classifier", "auto", "cascade", "cascade-logprob", "self-consistency")
# cascade-logprob escalates when the direct answer's mean token probability is below this: a
# model unsure of its own answer is worth a thought. Calibrate it per model (--cascade-threshold).
CASCADE_CONFIDENCE = 0.6
SAMPLED_TEMPERATURE = 0.7


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
    n_generations: int = 1  # self-consistency and cascade run the model more than once
    energy_j: float | None = None  # all its generations; None when any had no energy figure
    energy_source: str = ""  # where the figure came from: "measured:rapl", "estimated:tdp"…
    thinking_extended: int = 0  # "Wait" put in by budget forcing, over all its generations

    def to_dict(self) -> dict:
        return asdict(self)


class SampleFile:
    """samples.jsonl, written as the samples come: each one a line, appended and flushed as soon as
    it is made, so an eval that crashes or is stopped keeps every sample that ran."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = open(path, "w", encoding="utf-8")  # OSError: the caller says why, before any generation

    def write(self, sample: Sample) -> None:
        self._handle.write(json.dumps(sample.to_dict(), ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "SampleFile":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


@dataclass(frozen=True)
class Routed:
    """A policy's route for the session log (read like the router's Decision: route, budget, reasons)."""

    route: str
    budget: int | None
    confidence: float | None
    reasons: tuple[str, ...]


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
    mean_energy_j: float | None = None  # per question, over the questions with a figure
    energy_source: str = ""


def parse_policies(text: str) -> list[str]:
    policies = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or not policies:
        raise ValueError(f"unknown policy {', '.join(unknown) or '(none given)'}: choose from {', '.join(POLICIES)}")
    return policies


def plan(
    policy: str, question: str, max_tokens: int, budget: int | None = None, minimum: int | None = None,
    record: ModelRecord | None = None,
) -> tuple[str, list[str], GenerationRequest]:
    """The route, its reasons, and the request one policy makes of one question (`record`: the
    model's, for "auto")."""
    if policy in ("heuristic", "classifier", "auto"):
        decision = ask_router(question, "heuristic" if policy == "auto" else policy, max_tokens, record)
        route, reasons = decision.route, list(decision.reasons)
        budget = decision.budget if budget is None else budget
    else:
        route, reasons = (DIRECT if policy in ("direct", "cascade", "cascade-logprob") else THINK), [f"policy {policy}"]
    return route, reasons, make_request(question, max_tokens, route == THINK, budget, minimum=minimum)


def make_request(
    question: str, max_tokens: int, thinking: bool, budget: int | None, seed: int | None = None,
    instruction: str = INSTRUCTION, minimum: int | None = None,
) -> GenerationRequest:
    """One benchmark generation: greedy without a seed, sampled with one; the full prompt paid each time.

    `minimum` (budget forcing) applies to thinking requests, and never exceeds their budget: a router
    that chose a smaller budget than the minimum gets its budget thought out in full."""
    if minimum is not None and budget is not None:
        minimum = min(minimum, budget)
    return GenerationRequest(
        messages=(Message("user", question + instruction),),
        max_tokens=max_tokens,
        # Greedy, so policies differ by what they ask, not by luck; sampled where votes need variety.
        sampling=Sampling(temperature=0.0 if seed is None else SAMPLED_TEMPERATURE),
        seed=seed or 0,
        thinking=thinking,
        thinking_budget=budget if thinking else None,
        thinking_min=minimum if thinking else None,
        cache_prompt=False,  # each sample pays its full prompt, whatever ran before it
    )


def run_eval(
    session: Session,
    problems: Iterable[Problem],
    policies: list[str],
    max_tokens: int,
    budget: int | None = None,
    on_sample: Callable[[Sample], None] | None = None,
    k: int = 4,
    cascade_confidence: float = CASCADE_CONFIDENCE,
    minimum: int | None = None,
    parallel: int = 1,
) -> list[Sample]:
    """Every problem through every policy on the session's model; `minimum`: every thinking
    request's minimum thought (budget forcing). `parallel`: how many of the session's panes (each
    the same served model) answer at once; the samples come back in problem and policy order."""
    if k < 1:
        raise ValueError(f"self-consistency needs k >= 1 samples, not {k}")
    jobs = [
        (lambda ask, problem=problem, policy=policy: solve(
            ask, problem, policy, max_tokens, budget, k, cascade_confidence, minimum))
        for problem in problems for policy in policies
    ]
    return run_lanes(session, jobs, on_sample, lanes=parallel)


def solve(
    lane: Ask, problem: Problem, policy: str, max_tokens: int, budget: int | None, k: int,
    cascade_confidence: float, minimum: int | None,
) -> Sample:
    """One policy's answer to one problem, through one lane (its requests one after another; k
    samples of one prompt as one request, decoded together)."""
    spent = [0.0]  # wall time: a batch of samples costs its time once, not once per sample

    def ask_k(request: GenerationRequest, route: str, reasons: list[str], k: int = 1) -> list:
        # The route and its reasons go into the session log with the run.
        # The known answer marks each run in the log: the model's record (routing/evidence.py).
        results = lane.samples(replace(request, n_samples=k), Routed(route, request.thinking_budget, None,
                                                                     tuple(reasons)), known_answer=problem.answer)
        spent[0] += max((r.total_s or 0.0 for r in results), default=0.0)
        return results

    def ask(request: GenerationRequest, route: str, reasons: list[str]):
        return ask_k(request, route, reasons)[0]

    def think(seed: int | None = None) -> GenerationRequest:
        return make_request(problem.question, max_tokens, True, budget, seed, minimum=minimum)

    record = None
    if policy == "auto":  # the model's record without this question's own runs
        session = lane.session
        record = record_for(session.log, session.panes[lane.pane].spec, without=problem.question + INSTRUCTION)
    route, reasons, request = plan(policy, problem.question, max_tokens, budget, minimum, record)
    if policy == "self-consistency":
        results = ask_k(think(0), route, reasons, k)  # seeds 0 … k-1
        vote = majority_vote([_answer(r) for r in results])
        predicted = vote.answer
        reasons = [f"{vote.count} of {k} samples agree" if vote.answer else f"no readable answer in {k} samples"]
    elif policy == "cascade":
        # Two cheap direct samples; if they disagree, the direct answer is not to be trusted.
        results = ask_k(make_request(problem.question, max_tokens, False, None, 1), DIRECT, reasons, 2)  # seeds 1, 2
        first, second = (_answer(r) for r in results)
        if first is not None and first == second:
            predicted, reasons = first, [f"two direct samples agree on {first}"]
        else:
            reasons = [f"two direct samples disagree ({first} vs {second}): escalated to thinking"]
            results.append(ask(think(), THINK, reasons))
            route, predicted = THINK, _answer(results[-1])
    elif policy == "cascade-logprob":
        direct = replace(make_request(problem.question, max_tokens, False, None), logprobs=True)
        results = [ask(direct, DIRECT, reasons)]
        mean = results[0].answer_logprob_mean
        confidence = math.exp(mean) if mean is not None else 0.0
        if confidence >= cascade_confidence:
            predicted = _answer(results[0])
            reasons = [f"the direct answer's mean token probability is {confidence:.2f} "
                       f"(>= {cascade_confidence:.2f})"]
        else:
            reasons = [f"the direct answer's mean token probability is {confidence:.2f} "
                       f"(< {cascade_confidence:.2f}): escalated to thinking"]
            results.append(ask(think(), THINK, reasons))
            route, predicted = THINK, _answer(results[-1])
    else:
        results = [ask(request, route, reasons)]
        predicted = _answer(results[0])
    return _sample(problem, policy, route, reasons, predicted, results, spent[0])


def _answer(result) -> str | None:
    return extract_answer(result.text) if result.status == "ok" else None


def _sample(problem: Problem, policy: str, route: str, reasons: list[str], predicted, results,
            latency_s: float) -> Sample:
    """One policy's answer to one problem; tokens and time add up over all its generations (a batch
    of samples counted once, in `latency_s`)."""
    last = results[-1]
    failed = [r for r in results if r.status != "ok"]
    return Sample(
        problem_id=problem.id,
        policy=policy,
        model=last.model,
        route=route,
        strategy=last.strategy,
        reasons=reasons,
        reference=problem.answer,
        predicted=predicted,
        correct=is_correct(predicted, problem.answer),
        status=failed[0].status if failed else "ok",
        error=failed[0].error if failed else None,
        thinking_style=last.thinking_style,
        n_thinking_tokens=sum(r.n_thinking_tokens for r in results),
        n_answer_tokens=sum(r.n_answer_tokens for r in results),
        thinking_unclosed=any(r.thinking_unclosed for r in results),
        latency_s=latency_s,
        ttft_s=results[0].ttft_s,
        answer=last.text,
        n_generations=len(results),
        energy_j=total_energy(results),
        energy_source=energy_sources(r.energy.base_source for r in results),
        thinking_extended=sum(r.thinking_extended for r in results),
    )


def total_energy(items) -> float | None:
    """The energy of several generations together; None when any of them has no figure."""
    energies = [item.energy_j for item in items]
    return sum(energies) if all(e is not None for e in energies) else None


def energy_sources(sources: Iterable[str]) -> str:
    """Where several energy figures came from, each source once ("estimated:tdp + measured:rapl")
    from their base sources (EnergyReport.base_source: how a figure was shared left out)."""
    return " + ".join(sorted({part for source in sources if source for part in source.split(" + ")}))


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
                mean_energy_j=_mean(s.energy_j for s in mine),
                energy_source=energy_sources(s.energy_source for s in mine),
            )
        )
    return summaries


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None
