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


def describe_vote(answers: list[str | None]) -> str:
    """The vote of k samples in one line, each sample's answer after it (— where none was readable):
    "Majority of 4 samples: 36 (3 of 4 agree) · each: 36, 36, 12, 36"."""
    vote = majority_vote(answers)
    each = ", ".join(a if a is not None else "—" for a in answers)
    if vote.answer is None:
        return f"No majority: none of the {len(answers)} samples gave a readable answer · each: {each}"
    if vote.count < 2 and len(answers) > 1:
        return f"No majority: no two of the {len(answers)} samples agree · each: {each}"
    return (f"Majority of {len(answers)} samples: {vote.answer} ({vote.count} of {len(answers)} agree) · "
            f"each: {each}")
