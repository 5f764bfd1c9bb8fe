"""Self-consistency: several sampled answers, one vote."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Vote:
    answer: str | None  # the most common readable answer; None when no sample had one
    count: int  # how many samples gave it
    k: int  # how many samples there were
    tally: dict[str, int]  # every readable answer and its count

    @property
    def agreement(self) -> float:
        return self.count / self.k if self.k else 0.0


def majority_vote(answers: list[str | None]) -> Vote:
    """The most common readable answer; ties go to the one seen first (sample order is seed order)."""
    if not answers:
        raise ValueError("a vote needs at least one sample (k >= 1)")
    tally = Counter(a for a in answers if a is not None)
    if not tally:
        return Vote(None, 0, len(answers), {})
    first_seen = {a: i for i, a in reversed(list(enumerate(answers))) if a is not None}
    answer = max(tally, key=lambda a: (tally[a], -first_seen[a]))
    return Vote(answer, tally[answer], len(answers), dict(tally))
