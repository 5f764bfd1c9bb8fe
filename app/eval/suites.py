"""Benchmark suites as JSONL in GSM8K's format: one {"question", "answer"} object a line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app.engines.types import EngineError
from app.reasoning.answers import extract_answer

# GSM8K (MIT, OpenAI 2021), vendored with its LICENSE: 1,000 test problems.
GSM8K_PATH = Path(__file__).resolve().parent.parent.parent / "data" / "gsm8k" / "test_dev.jsonl"
SUITES = {"gsm8k": GSM8K_PATH}


class SuiteError(EngineError):
    def __init__(self, message: str) -> None:
        super().__init__(message, kind="bad_suite")


@dataclass(frozen=True)
class Problem:
    id: str  # "<suite file stem>:<line number>"
    question: str
    answer: str  # the reference answer, normalised
    solution: str  # the reference text as given


def suite_path(name: str) -> Path:
    if name not in SUITES:
        raise SuiteError(f"unknown suite {name!r}: known suites are {', '.join(SUITES)}; or pass --suite-file PATH")
    return SUITES[name]


def load_suite(path: str | Path, limit: int | None = None) -> list[Problem]:
    """Read a suite file; every bad line is refused with its line number and what is wrong."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SuiteError(f"suite file {path} does not exist") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as exc:
        raise SuiteError(f"cannot read suite file {path}: {exc.__class__.__name__}") from None
    problems: list[Problem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        problems.append(_problem(path, number, line))
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise SuiteError(f"suite file {path} has no problems: expected one JSON object a line")
    return problems


def _problem(path: Path, number: int, line: str) -> Problem:
    where = f"{path.name}, line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{where} is not valid JSON ({exc.msg}): fix or remove that line") from None
    if not isinstance(record, dict) or not isinstance(record.get("question"), str):
        raise SuiteError(f'{where} needs a "question" string and an "answer" string')
    solution = record.get("answer")
    if not isinstance(solution, str) and not isinstance(solution, (int, float)):
        raise SuiteError(f'{where} needs an "answer" (GSM8K style: the working, then "#### 42")')
    reference = extract_answer(str(solution))
    if reference is None:
        raise SuiteError(f"{where}: its answer has no number to score against")
    return Problem(f"{path.stem}:{number}", record["question"], reference, str(solution))
