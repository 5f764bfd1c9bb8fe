"""Picking one answer from N candidates: how good the picker is bends the scaling curve.

- oracle: right if any candidate is right (pass@k) — the ceiling, since it knows the answer;
- majority: the most common answer (self-consistency);
- program: re-computes the arithmetic each solution states ("12 * 3 = 36") and votes among the
  solutions whose arithmetic all checks out;
- self: the model itself is asked which candidate is right (needs generations: see sweep.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from app.reasoning.answers import is_correct
from app.reasoning.consistency import majority_vote

VERIFIERS = ("oracle", "majority", "program", "self")

_OPERAND = r"-?\$?\d[\d,]*(?:\.\d+)?"
# "a op b = c", with the usual ways models write the operators; chained steps are checked pairwise.
_EQUATION = re.compile(rf"({_OPERAND})\s*([-+*/×x÷])\s*({_OPERAND})\s*=\s*({_OPERAND})")


@dataclass(frozen=True)
class Candidate:
    answer: str | None  # the extracted final answer
    solution: str  # the full text (thinking and answer) it came from


def oracle(candidates: Sequence[Candidate], reference: str) -> bool:
    return any(is_correct(c.answer, reference) for c in candidates)


def majority(candidates: Sequence[Candidate]) -> str | None:
    return majority_vote([c.answer for c in candidates]).answer


def arithmetic_checks(solution: str) -> tuple[int, int]:
    """(equations stated, equations that are right) in a solution's text."""
    stated = right = 0
    for a, op, b, c in _EQUATION.findall(solution):
        try:
            x, y, z = (_number(v) for v in (a, b, c))
        except (ValueError, ZeroDivisionError):
            continue
        if op in "÷/" and y == 0:
            continue
        value = {"+": x + y, "-": x - y, "*": x * y, "×": x * y, "x": x * y, "/": x / y if y else None,
                 "÷": x / y if y else None}[op]
        stated += 1
        right += math.isclose(float(value), float(z), rel_tol=1e-6, abs_tol=1e-9)
    return stated, right


def program(candidates: Sequence[Candidate]) -> str | None:
    """The majority among solutions whose stated arithmetic is all right (and that state some);
    when none qualifies, the plain majority."""
    checked = []
    for c in candidates:
        stated, right = arithmetic_checks(c.solution)
        if stated and right == stated:
            checked.append(c)
    return majority(checked) if checked and majority(checked) is not None else majority(candidates)


def distinct_answers(candidates: Sequence[Candidate]) -> list[str]:
    """The readable answers, each once, in the order first seen: what a judge is shown."""
    return list(dict.fromkeys(c.answer for c in candidates if c.answer is not None))


def judge_prompt(question: str, answers: Sequence[str]) -> str:
    options = "\n".join(f"({n}) {a}" for n, a in enumerate(answers, start=1))
    return (f"Question: {question}\n\nCandidate answers:\n{options}\n\n"
            f"Which candidate answer is correct? Reply with its number in brackets, e.g. (1).")


def read_judgement(text: str, answers: Sequence[str]) -> str | None:
    """The candidate the judge picked: "(2)" or a bare "2"; None when it picked none we offered."""
    match = re.search(r"\((\d+)\)", text) or re.search(r"\b(\d+)\b", text)
    if match is None:
        return None
    n = int(match.group(1))
    return answers[n - 1] if 1 <= n <= len(answers) else None


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of a proportion (Wilson score): honest at small n and near 0 or 1."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _number(text: str) -> Fraction:
    return Fraction(text.replace("$", "").replace(",", ""))
