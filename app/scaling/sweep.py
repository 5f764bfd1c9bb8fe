"""A sweep: every problem at every thinking budget, and K sampled answers shared by every k <= K.

Generations are stored one JSON line each as they finish (samples.jsonl), keyed by what produced
them; a sweep that is stopped and started again skips every key already in the file. The points
(accuracy with its interval, tokens, time, energy) are computed from the file, never kept only in
memory.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from app.reasoning.answers import extract_answer, is_correct
from app.eval.harness import energy_sources, make_request, total_energy
from app.eval.suites import Problem
from app.engines.types import GenerationRequest, ModelSpec, SampleLimits
from app.lanes import lanes_refused, run_lanes
from app.run_energy import batch_time_s
from app.runs import RunResult
from app.scaling import verifiers as v
from app.session import Pane, Session

SAMPLED_TEMPERATURE = 0.7
BATCH_SAMPLES = True  # a problem's K samples as one batch (False: one by one, as before batching; a benchmark)


@dataclass(frozen=True)
class SweepConfig:
    budgets: tuple[int, ...] = (0, 64, 128, 256)  # thinking tokens; 0 = answer directly
    ks: tuple[int, ...] = (1, 2, 4, 8)  # self-consistency / best-of-N sizes, sharing one set of samples
    k_budget: int | None = None  # the budget of the sampled answers; None: the largest budget
    verifiers: tuple[str, ...] = ("oracle", "majority", "program")
    max_answer_tokens: int = 96  # room for the answer after the thought
    seed: int = 0
    # Budget forcing (s1's sequential scaling): each thought is held to exactly its budget, an earlier
    # end refused with "Wait", so the x axis is the thinking the model was made to do.
    force_budget: bool = False

    def __post_init__(self) -> None:
        if not self.budgets and not self.ks:
            raise ValueError("nothing to sweep: give budgets, k values or both")
        if any(b < 0 for b in self.budgets):
            raise ValueError(f"budgets must be 0 or more, not {', '.join(map(str, self.budgets))}")
        if any(k < 1 for k in self.ks):
            raise ValueError(f"k must be 1 or more (k samples per question), not {', '.join(map(str, self.ks))}")
        unknown = [name for name in self.verifiers if name not in v.VERIFIERS]
        if unknown:
            raise ValueError(f"unknown verifier {', '.join(unknown)}: choose from {', '.join(v.VERIFIERS)}")
        if self.k_budget is not None and self.k_budget < 0:
            raise ValueError(f"the samples' budget must be 0 or more, not {self.k_budget}")

    @property
    def sample_budget(self) -> int:
        return self.k_budget if self.k_budget is not None else max(self.budgets, default=0)


@dataclass
class Generation:
    """One stored generation: a greedy answer at a budget, a sampled answer, or a judge's pick."""

    kind: str  # "budget", "sample" or "judge"
    model: str
    problem_id: str
    budget: int
    seed: int
    k: int = 0  # judges: how many samples were judged
    predicted: str | None = None
    correct: bool = False
    solution: str = ""  # thinking and answer: what the program verifier re-checks
    n_thinking_tokens: int = 0
    n_answer_tokens: int = 0
    latency_s: float = 0.0
    energy_j: float | None = None
    energy_source: str = ""
    status: str = "ok"
    strategy: str = "native"
    forced: bool = False  # the thought was held to its budget (budget forcing)
    thinking_extended: int = 0  # how often "Wait" was put in to hold it there

    @property
    def key(self) -> tuple:
        return generation_key(self.kind, self.model, self.problem_id, self.budget, self.seed, self.k, self.forced)


def generation_key(kind: str, model: str, problem_id: str, budget: int, seed: int, k: int, forced: bool) -> tuple:
    """What makes a generation the same one on resume: a forced thought is another experiment."""
    return (kind, model, problem_id, budget, seed, k, forced)


@dataclass
class SampleStore:
    """samples.jsonl: appended and flushed per generation, read back on resume."""

    path: Path
    done: dict[tuple, Generation] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> SampleStore:
        store = cls(path)
        if not path.exists():
            return store
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                generation = Generation(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # the line a stopped sweep was writing: that generation is redone
            store.done[generation.key] = generation
            kept.append(line)
        # Rewrite without the broken line, so the next append starts on a line of its own.
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        return store

    def add(self, generation: Generation) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(generation), ensure_ascii=False) + "\n")
            f.flush()
        self.done[generation.key] = generation


def run_sweep(
    session: Session,
    model: str,
    problems: Sequence[Problem],
    config: SweepConfig,
    store: SampleStore,
    on_generation: Callable[[Generation, bool], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    parallel: int = 1,
) -> int:
    """Generate what the store does not hold yet, `parallel` at a time (each of the session's panes
    the same served model); returns how many generations ran now. The greedy answers at each budget
    and the shared samples go first, then the judges that read those samples. A problem's K samples,
    when none is stored yet, are one request of K samples (decoded together, the prompt once), and
    so are its greedy answers at the thinking budgets (each sample its own budget); a resumed sweep
    asks for the missing ones one by one."""
    ran = 0
    stopped = threading.Event()  # a stop came mid-batch: the batch was cancelled

    def job(generations: list[Generation], request: GenerationRequest, score: Callable[[Generation], None],
            known: str | None):
        def run(ask) -> list[Generation]:
            if should_stop():
                raise SweepStopped()
            with _cancelled_on(should_stop, session):
                # An answer's run is marked against the known answer in the log: the model's record.
                results = ask.samples(request, known_answer=known)
            for generation, result in zip(generations, results):
                _fill(generation, result, batch_time_s(result, results) if len(results) > 1 else None)
                score(generation)  # before it is stored: the file holds each generation's verdict
            if should_stop():  # what the cancel cut short is not a generation; what finished is kept
                stopped.set()
                return [g for g, r in zip(generations, results) if r.status == "ok"]
            return generations
        return run

    def kept(generations: list[Generation]) -> None:  # one job at a time, as each finishes
        nonlocal ran
        for generation in generations:
            store.add(generation)
            ran += 1
            if on_generation:
                on_generation(generation, True)

    def missing(tasks) -> list:
        jobs = []
        for generations, request, score, known in tasks:
            stored = [store.done.get(g.key) for g in generations]
            if on_generation:
                for g in stored:
                    if g is not None:
                        on_generation(g, False)
            if all(g is None for g in stored) and (BATCH_SAMPLES or len(generations) == 1):
                jobs.append(job(generations, request, score, known))
            else:  # some are stored: the rest one by one, each as its own request (seed, limits)
                jobs += [job([g], request.for_sample(i) if len(generations) > 1 else request, score, known)
                         for i, (g, done) in enumerate(zip(generations, stored)) if done is None]
        return jobs

    def answered(problem: Problem) -> Callable[[Generation], None]:
        def score(g: Generation) -> None:
            g.correct = is_correct(g.predicted, problem.answer)
        return score

    k_max = max(config.ks, default=0)
    first = []
    for problem in problems:
        if 0 in config.budgets:  # a direct answer: another prompt than the thoughts'
            g = Generation("budget", model, problem.id, 0, config.seed, forced=config.force_budget)
            first.append(([g], _request(problem.question, 0, config, seed=None), answered(problem), problem.answer))
        # The K samples (first: sample i is seeded seed + i) and the greedy answers at each thinking
        # budget share one prompt, so they are one batch, each sample with its own budget and temperature.
        thoughts = [b for b in config.budgets if b > 0]
        samples = [Generation("sample", model, problem.id, config.sample_budget, seed, forced=config.force_budget)
                   for seed in range(config.seed, config.seed + k_max)] if config.sample_budget > 0 else []
        gens = samples + [Generation("budget", model, problem.id, b, config.seed, forced=config.force_budget)
                          for b in thoughts]
        if gens:
            first.append((gens, _batch_request(problem.question, len(samples), thoughts, config), answered(problem),
                          problem.answer))
        if k_max and not samples:  # samples that answer directly: their own prompt, their own batch
            direct = [Generation("sample", model, problem.id, 0, seed, forced=config.force_budget)
                      for seed in range(config.seed, config.seed + k_max)]
            first.append((direct, replace(_request(problem.question, 0, config, config.seed), n_samples=k_max),
                          answered(problem), problem.answer))
    run_lanes(session, missing(first), kept, lanes=parallel)
    if stopped.is_set():
        raise SweepStopped()
    if "self" in config.verifiers:
        run_lanes(session, missing(_judges(model, problems, config, store)), kept, lanes=parallel)
        if stopped.is_set():
            raise SweepStopped()
    return ran


@contextlib.contextmanager
def _cancelled_on(should_stop: Callable[[], bool], session: Session):
    """While a request runs: a stop asked meanwhile cancels it (a batch of K takes a while)."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            if should_stop():
                session.cancel()
                return

    watcher = threading.Thread(target=watch, name="fastslow-sweep-stop", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _judges(model: str, problems: Sequence[Problem], config: SweepConfig, store: SampleStore) -> list:
    """A judge for each problem and k whose k samples gave more than one answer (else nothing to choose)."""
    tasks = []
    for problem in problems:
        keys = [generation_key("sample", model, problem.id, config.sample_budget, seed, 0, config.force_budget)
                for seed in range(config.seed, config.seed + max(config.ks, default=0))]
        samples = [store.done[key] for key in keys if key in store.done]
        for k in config.ks:
            answers = v.distinct_answers(_candidates(samples[:k]))
            if len(answers) < 2:
                continue

            def judged(g: Generation, answers=answers, problem=problem) -> None:
                g.predicted = v.read_judgement(g.solution, answers)
                g.correct = is_correct(g.predicted, problem.answer)

            g = Generation("judge", model, problem.id, config.sample_budget, config.seed, k=k,
                           forced=config.force_budget)
            request = make_request(v.judge_prompt(problem.question, answers), 16, False, None, instruction="")
            tasks.append(([g], request, judged, None))  # a judgement, not an answer: no mark
    return tasks


def _batch_request(question: str, n_sampled: int, budgets: list[int], config: SweepConfig) -> GenerationRequest:
    """A question's thinking generations as one request: first n_sampled samples at the samples'
    budget (sampled, seeds seed + i), then a greedy answer at each budget; each sample has the max
    tokens, minimum and temperature _request gives it alone (for_sample(i) is that request)."""
    def limits(budget: int, temperature: float) -> SampleLimits:
        return SampleLimits(budget + config.max_answer_tokens, budget, budget if config.force_budget else None,
                            temperature)

    sampled = _request(question, config.sample_budget, config, config.seed).sampling.temperature
    every = ([limits(config.sample_budget, sampled)] * n_sampled) + [limits(b, 0.0) for b in budgets]
    base = _request(question, max(b for b in [config.sample_budget, *budgets] if b > 0), config, config.seed)
    return replace(base, n_samples=len(every), sample_limits=tuple(every))


def _request(question: str, budget: int, config: SweepConfig, seed: int | None):
    # Budget 0 answers directly; a budget b thinks for at most b tokens, then answers.
    thinking = budget > 0
    return make_request(question, budget + config.max_answer_tokens, thinking, budget if thinking else None, seed,
                        minimum=budget if config.force_budget else None)


def _fill(generation: Generation, result: RunResult, time_share_s: float | None = None) -> None:
    """The generation from its run; `time_share_s`: its share of a batch's wall time, where it was one
    of K samples decoded together (the shares add up to the batch's time)."""
    g = generation
    g.solution = (result.thinking + "\n" + result.text).strip()
    # A thought cut by the budget may hold the only number: the answer's first, the thought's next.
    g.predicted = (extract_answer(result.text) or extract_answer(result.thinking)) if result.status == "ok" else None
    g.n_thinking_tokens, g.n_answer_tokens = result.n_thinking_tokens, result.n_answer_tokens
    g.latency_s = time_share_s if time_share_s is not None else result.total_s or 0.0
    g.energy_j, g.energy_source = result.energy_j, result.energy.base_source
    g.status, g.strategy = result.status, result.strategy
    g.thinking_extended = result.thinking_extended


def _candidates(samples: Iterable[Generation]) -> list[v.Candidate]:
    return [v.Candidate(s.predicted, s.solution) for s in samples]


class SweepStopped(Exception):
    """Raised between generations when the user stops a sweep; what finished is in the store."""


def sweep_model(
    spec: ModelSpec,
    problems: Sequence[Problem],
    config: SweepConfig,
    store: SampleStore,
    log=None,
    tdp_w: float | None = None,
    cores: int | None = None,
    on_loaded: Callable[[Pane], None] | None = None,
    on_generation: Callable[[Generation, bool], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    parallel: int = 1,
) -> "ModelSweep":
    """Load one model in its own worker (`parallel` > 1: a served model, in that many), sweep it,
    and say what came of it."""
    refused = lanes_refused(spec, parallel)
    if refused:
        raise ValueError(refused)
    with Session([spec] * parallel, mode="fair", cores=cores, tdp_w=tdp_w, log=log) as session:
        pane = session.load_lanes() if parallel > 1 else session.load_single()
        if on_loaded is not None:
            on_loaded(pane)
        ran = run_sweep(session, pane.label, problems, config, store, on_generation, should_stop, parallel)
    return ModelSweep(pane.label, ran, points(store, pane.label, problems, config), session.log_error)


@dataclass(frozen=True)
class ModelSweep:
    label: str
    ran: int  # generations run now (the rest came from the store)
    points: list["Point"]
    log_error: Exception | None  # the session log failed: these runs were kept in memory only


# -- points -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    model: str
    axis: str  # "budget" or "k"
    x: int  # the budget, or k
    verifier: str  # "greedy" on the budget axis; oracle / majority / program / self on the k axis
    n: int
    accuracy: float
    ci_low: float
    ci_high: float
    mean_thinking_tokens: float
    mean_answer_tokens: float
    mean_time_s: float
    mean_energy_j: float | None
    energy_source: str
    tokens_per_j: float | None


def points(store: SampleStore, model: str, problems: Sequence[Problem], config: SweepConfig) -> list[Point]:
    """Every point of the sweep from what the store holds (problems with a missing generation are left out)."""
    forced = config.force_budget

    def stored(kind: str, problem: Problem, budget: int, seed: int, k: int = 0) -> Generation | None:
        return store.done.get(generation_key(kind, model, problem.id, budget, seed, k, forced))

    out: list[Point] = []
    for budget in config.budgets:
        gens = [stored("budget", p, budget, config.seed) for p in problems]
        paired = [(g, p) for g, p in zip(gens, problems) if g is not None]
        out.append(_point(model, "budget", budget, "greedy", [g for g, _ in paired],
                          [is_correct(g.predicted, p.answer) for g, p in paired]))
    k_max = max(config.ks, default=0)
    for k in config.ks:
        for verifier in config.verifiers:
            costs, right = [], []
            for p in problems:
                samples = [stored("sample", p, config.sample_budget, seed)
                           for seed in range(config.seed, config.seed + k_max)]
                if any(s is None for s in samples[:k]):
                    continue
                chosen = samples[:k]
                candidates = _candidates(chosen)
                extra: list[Generation] = []
                if verifier == "oracle":
                    ok = v.oracle(candidates, p.answer)
                elif verifier == "majority":
                    ok = is_correct(v.majority(candidates), p.answer)
                elif verifier == "program":
                    ok = is_correct(v.program(candidates), p.answer)
                else:
                    answers = v.distinct_answers(candidates)
                    judge = stored("judge", p, config.sample_budget, config.seed, k)
                    if len(answers) < 2:
                        ok = is_correct(answers[0] if answers else None, p.answer)
                    elif judge is None:
                        continue
                    else:
                        ok = is_correct(v.read_judgement(judge.solution, answers), p.answer)
                        extra = [judge]
                costs.append(_combined(chosen + extra))
                right.append(ok)
            out.append(_point(model, "k", k, verifier, costs, right))
    return out


def _combined(gens: list[Generation]) -> Generation:
    """What answering one question cost: all its generations together."""
    return Generation(
        "combined", gens[0].model, gens[0].problem_id, gens[0].budget, 0,
        n_thinking_tokens=sum(g.n_thinking_tokens for g in gens),
        n_answer_tokens=sum(g.n_answer_tokens for g in gens),
        latency_s=sum(g.latency_s for g in gens),
        energy_j=total_energy(gens),
        energy_source=energy_sources(g.energy_source for g in gens),
    )


def _point(model: str, axis: str, x: int, verifier: str, gens: list[Generation], right: list[bool]) -> Point:
    n = len(gens)
    low, high = v.wilson_interval(sum(right), n)
    energies = [g.energy_j for g in gens if g.energy_j is not None]
    mean_energy = sum(energies) / len(energies) if energies and len(energies) == n else None
    tokens = sum(g.n_thinking_tokens + g.n_answer_tokens for g in gens)
    return Point(
        model=model, axis=axis, x=x, verifier=verifier, n=n,
        accuracy=sum(right) / n if n else 0.0, ci_low=low, ci_high=high,
        mean_thinking_tokens=sum(g.n_thinking_tokens for g in gens) / n if n else 0.0,
        mean_answer_tokens=sum(g.n_answer_tokens for g in gens) / n if n else 0.0,
        mean_time_s=sum(g.latency_s for g in gens) / n if n else 0.0,
        mean_energy_j=mean_energy,
        energy_source=energy_sources(g.energy_source for g in gens),
        tokens_per_j=tokens / sum(energies) if mean_energy and sum(energies) > 0 else None,
    )
