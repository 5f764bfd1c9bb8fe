"""Pull the final number out of a model's answer, the way GSM8K is scored.

Models state answers many ways: "#### 18", "\\boxed{18}", "The answer is $18.", "= 18 dollars",
"1,234.50". The most explicit form wins; the last number in the text is the fallback.
"""

from __future__ import annotations

import re
from fractions import Fraction

_NUMBER = r"-?\$?\s?\d[\d,]*(?:\.\d+)?(?:\s?/\s?\d+)?"
# Most explicit first: the first of these that matches decides.
_EXPLICIT = (
    re.compile(rf"####\s*({_NUMBER})"),
    re.compile(rf"\\boxed\{{\s*({_NUMBER})"),
    re.compile(rf"(?:final answer|the answer|answer)\s*(?:is|:|=)?\s*[:\-]?\s*\**\s*({_NUMBER})", re.IGNORECASE),
)
_ANY_NUMBER = re.compile(_NUMBER)
_LIST_MARKER = re.compile(r"(?m)^\s*\d+[.)]\s+")  # "2. Done." numbers a step, it is no answer


# What a benchmark appends to each question (eval, scale): the answer then ends in a number to read.
INSTRUCTION = "\n\nSolve it step by step, then end with: The answer is <number>."


def normalise_number(text: str) -> str | None:
    """"$1,234.50" -> "1234.5", "3/4" -> "0.75", "7." -> "7"; None if it is not a number."""
    cleaned = text.replace("$", "").replace(",", "").replace(" ", "").strip().rstrip(".")
    if not cleaned:
        return None
    try:
        value = Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6f}".rstrip("0").rstrip(".")


def extract_answer(text: str) -> str | None:
    """The final numeric answer in `text`, normalised, or None when there is none."""
    if not text:
        return None
    for pattern in _EXPLICIT:
        matches = pattern.findall(text)
        if matches:
            answer = normalise_number(matches[-1])
            if answer is not None:
                return answer
    for candidate in reversed(_ANY_NUMBER.findall(_LIST_MARKER.sub("", text))):
        answer = normalise_number(candidate)
        if answer is not None:
            return answer
    return None


def is_correct(predicted: str | None, reference: str) -> bool:
    """Numeric equality of two normalised answers (1e-6 relative, so "0.333333" matches 1/3)."""
    if predicted is None:
        return False
    try:
        a, b = float(predicted), float(reference)
    except ValueError:
        return predicted == reference
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def check_answer(text: str, known: str) -> bool:
    """Whether a model's text gives the known answer: numbers compared as numbers (the extracted
    final answer), anything else as a case-insensitive phrase in the text."""
    reference = normalise_number(known)
    if reference is not None:
        return is_correct(extract_answer(text), reference)
    return known.strip().casefold() in text.casefold() if known.strip() else False
