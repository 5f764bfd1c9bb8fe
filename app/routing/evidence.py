"""A model's record, and a router's decision that knows it.

Every checked run of a model (an `eval` or `scale` sample, a run with a known answer typed in the
app, a run a person marked right or wrong) is evidence for that model. Runs of one prompt answered
both directly and thinking make a pair: thinking *helped* where the direct answer was wrong and the
thought one right, and *hurt* the other way round. Pairs are counted per kind of prompt
(routing/concepts.py), so arithmetic evidence speaks for arithmetic, not for a greeting.

The decision (`knowing`): the prompt router's probability p0 is where a model with no record
starts; each checked pair of the prompt's kind moves it toward the share thinking turned right,
net of what it broke: p = (PRIOR_WEIGHT * p0 + max(helped - hurt, 0)) / (PRIOR_WEIGHT + pairs), the
prompt counting as PRIOR_WEIGHT checked questions. Thinking is chosen when the extra right answers
it is expected to give pay for what it costs: p >= (cost ratio - 1) / worth, `worth` being how many
direct answers' energy (or time) one more right answer is worth to the user (Settings); with no
pair of that kind yet, the prompt router's own threshold (the prompt alone decides).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from typing import Iterable

from app.routing.concepts import BY_NAME, kind_of, words_for
from app.routing.heuristic import Decision, make_decision
from app.settings import THINK_WORTH

# The prompt router's judgement counts as one checked question: a model's own record soon outweighs
# it, since a prompt's kind says nothing of what thinking does for this model.
PRIOR_WEIGHT = 1
WORTH = THINK_WORTH  # one more right answer is worth up to this many direct answers' energy (the default setting)
# However cheap thinking is, it must be expected to turn at least a tenth of such answers right; however
# dear, a model whose thinking nearly always helps still thinks.
MIN_BAR, MAX_BAR = 0.10, 0.95


@dataclass(frozen=True)
class Checked:
    """One checked run of a model."""

    prompt: str
    thinking: bool
    right: bool
    total_s: float | None = None
    energy_j: float | None = None


@dataclass(frozen=True)
class KindRecord:
    """A model's record on one kind of prompt."""

    kind: str
    pairs: int = 0  # prompts answered both ways and checked both ways
    helped: int = 0  # of them, the direct answer wrong and the thought one right
    hurt: int = 0  # the direct answer right and the thought one wrong
    cost_ratio: float | None = None  # thinking's median cost over a direct answer's, on this kind's runs
    cost_of: str = ""  # "energy" or "time": what the ratio compares

    def words(self, model: str) -> str:
        """'on smollm2-135m thinking helped 0 of 40 checked multi-step arithmetic questions here'."""
        questions = f"checked {bare_words(self.kind)} question{'s' if self.pairs != 1 else ''}"
        hurt = f" and hurt {self.hurt}" if self.hurt else ""
        return f"on {model} thinking helped {self.helped}{hurt} of {self.pairs} {questions} here"


@dataclass(frozen=True)
class ModelRecord:
    model: str
    kinds: dict[str, KindRecord]
    checked: int = 0  # checked runs in all

    def of(self, kind: str) -> KindRecord:
        return self.kinds.get(kind) or KindRecord(kind)


def bare_words(kind: str) -> str:
    """A kind's words to go before "question": 'factual lookup', not 'a factual lookup'."""
    if kind not in BY_NAME:
        return "unclassified"  # OTHER: no kind was found in it
    words = words_for(kind)
    return words.split(" ", 1)[1] if words.startswith(("a ", "an ")) else words


def model_record(model: str, runs: Iterable[Checked], strip: str = "") -> ModelRecord:
    """The record of a model from its checked runs, newest first (a prompt's newest run each way
    counts); `strip`: text a harness appended to each question (eval's instruction), left out when
    the kind is read."""
    runs = list(runs)
    latest: dict[tuple[str, bool], Checked] = {}
    for run in runs:
        latest.setdefault((run.prompt, run.thinking), run)
    by_kind: dict[str, list[tuple[Checked | None, Checked | None]]] = {}
    for prompt in dict.fromkeys(run.prompt for run in runs):
        question = prompt[:-len(strip)] if strip and prompt.endswith(strip) else prompt
        by_kind.setdefault(kind_of(question), []).append((latest.get((prompt, False)), latest.get((prompt, True))))
    kinds = {}
    for kind, pairs in by_kind.items():
        both = [(d, t) for d, t in pairs if d is not None and t is not None]
        ratio, of = _cost(pairs)
        kinds[kind] = KindRecord(kind, pairs=len(both), helped=sum(not d.right and t.right for d, t in both),
                                 hurt=sum(d.right and not t.right for d, t in both), cost_ratio=ratio, cost_of=of)
    return ModelRecord(model, kinds, len(runs))


def _cost(pairs) -> tuple[float | None, str]:
    """Thinking's median cost over a direct answer's, in energy where both sides have it, else time."""
    for field, name in (("energy_j", "energy"), ("total_s", "time")):
        direct = [getattr(d, field) for d, _ in pairs if d is not None and getattr(d, field)]
        thought = [getattr(t, field) for _, t in pairs if t is not None and getattr(t, field)]
        if direct and thought:
            return statistics.median(thought) / statistics.median(direct), name
    return None, ""


def knowing(decision: Decision, prompt: str, record: ModelRecord | None, worth: float = WORTH,
            threshold: float = 0.5, budgets: tuple[int, int] = (256, 1024)) -> Decision:
    """The prompt router's decision moved by the model's record on this kind of prompt and weighed
    against what thinking costs it; the reasons say the record, the cost and how far it moved."""
    if record is None:
        return decision
    if worth <= 0:
        raise ValueError(f"what a right answer is worth must be more than 0, not {worth}")
    kind = kind_of(prompt)
    mine = record.of(kind)
    prompt_reasons = [r for r in decision.reasons if r != "nothing stood out"][:2]
    if not mine.pairs:  # no record of this kind: the prompt router's decision, as without a record
        said = (f"no checked {bare_words(kind)} question of {record.model} answered both ways yet: "
                "the prompt alone decides")
        return replace(decision, reasons=(said, *prompt_reasons))
    p0 = decision.p_think
    p = (PRIOR_WEIGHT * p0 + max(mine.helped - mine.hurt, 0)) / (PRIOR_WEIGHT + mine.pairs)
    known_cost = mine.cost_ratio is not None
    bar = min(MAX_BAR, max(MIN_BAR, (mine.cost_ratio - 1.0) / worth)) if known_cost else threshold
    toward = 1 if decision.route == "think" else -1
    moved = make_decision(p, [(reason, toward) for reason in prompt_reasons], bar, budgets)
    # How sure, against the bar (0.5 at the bar, 1 at either end), not against an even chance.
    sure = 0.5 + ((p - bar) / (1 - bar) if p >= bar else (bar - p) / bar) / 2
    cost = (f"it would cost ~{mine.cost_ratio:.1f}× the {mine.cost_of}, worth it from an expected gain of {bar:.0%} "
            f"(one more right answer worth {worth:g}× a direct answer)" if known_cost
            else "its cost here not known yet")
    weight = (f"thinking expected to turn {p:.0%} of such questions right: the prompt alone said {p0:.0%}, "
              f"moved by {mine.pairs} checked question{'s' if mine.pairs != 1 else ''} (the prompt counts as "
              f"{PRIOR_WEIGHT})")
    still = [r for r in moved.reasons if r != "nothing stood out"][:1]  # the prompt's reason, if it still holds
    return replace(moved, confidence=round(min(1.0, sure), 3),
                   reasons=(mine.words(record.model), cost, weight, *still))
