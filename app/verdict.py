"""The verdict: one line that says what thinking cost and whether it changed the answer.

"Thinking took 2.8× the time (6.1 s vs 2.2 s) and 2.7× the energy (61 J vs 23 J, estimated);
the answers differ: 360 vs 6:15 pm". With more than two runs, each is put against the fastest.
The app shows it across the panes, `fastslow compare` ends its summary with it and the HTML report
heads each prompt with it, all from this one function.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from app.reasoning.answers import check_answer, extract_answer
from app.thinking_styles import SCAFFOLD_MARKERS
from app.record import RunResult

SHORT = 40  # characters of an answer quoted in the verdict


def run_kind(r: RunResult) -> str:
    """"thinking" for a run that thought (natively or scaffolded), else "direct"."""
    return "thinking" if r.n_thinking_tokens or r.strategy == "scaffold" or r.thinking_style == "scaffold" else "direct"


def labels_for(results: Sequence[RunResult], names: Sequence[str] | None = None) -> list[str]:
    """A name for each run that tells it from the others: its kind when the models are the same,
    its model when the kinds are, both otherwise ("Thinking", "qwen3-1.7b", "qwen3-1.7b thinking").
    The same model and kind twice: `names` where given (the app's pane names), else numbered."""
    kinds = [run_kind(r) for r in results]
    models = [r.model or "?" for r in results]
    if len(set(models)) == 1 and len(set(kinds)) == len(kinds):
        return [k.capitalize() for k in kinds]
    if len(set(models)) == len(models):
        return models if len(set(kinds)) == 1 else [f"{m} {k}" for m, k in zip(models, kinds)]
    labels = [f"{m} {k}" for m, k in zip(models, kinds)]
    if len(set(labels)) < len(labels):
        labels = list(names) if names is not None else [f"{label} #{n + 1}" for n, label in enumerate(labels)]
    return labels


def short_answer(text: str) -> str:
    """The gist of an answer for one line: what follows "The answer is", else its last sentence
    (where an answer written out in full comes to its point), cut to SHORT characters."""
    text = text.strip()
    for marker in SCAFFOLD_MARKERS:
        at = text.find(marker)
        if at >= 0:
            rest = text[at + len(marker):].lstrip(" :")
            text = re.split(r"(?<=[^\d])\.(\s|$)|\n", rest, maxsplit=1)[0].strip() or rest
            break
    else:
        sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
        text = sentences[-1] if sentences else ""
    line = text.splitlines()[0].strip() if text else ""
    if line.endswith(".") and not line.endswith(".."):  # a sentence's full stop is not the answer's
        line = line[:-1]
    return line if len(line) <= SHORT else line[: SHORT - 1].rstrip() + "…"


def same_answer(a: str, b: str) -> bool:
    """Two answers agree: as numbers when both give one, else as words (case and spacing aside)."""
    x, y = extract_answer(a), extract_answer(b)
    if x is not None and y is not None:
        return x == y
    words = lambda s: " ".join(short_answer(s).casefold().rstrip(".!").split())  # noqa: E731
    return words(a) == words(b)


def _figure(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def _joules(j: float | None) -> str:
    return "—" if j is None else f"{j:.0f} J" if j >= 10 else f"{j:.1f} J"


def _energy_kind(runs: Sequence[RunResult]) -> str:
    kinds = frozenset().union(*(r.energy.kinds for r in runs))
    return next(iter(kinds)) if len(kinds) == 1 else "mixed sources"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}×" if b > 0 else "—×"


def _not_answered(label: str, r: RunResult) -> str | None:
    if r.status == "failed":
        return f"{label} failed"
    if r.status == "cancelled":
        return f"{label} was cancelled" + (" before it started" if r.total_s is None else "")
    if r.status != "ok":
        return f"{label} did not finish"
    if not r.text.strip():
        return f"{label} gave no answer"
    return None


def verdict(results: Sequence[RunResult], known_answer: str | None = None,
            labels: Sequence[str] | None = None) -> str:
    """One line across the runs of one prompt; "" for fewer than two."""
    if len(results) < 2:
        return ""
    labels = list(labels) if labels is not None else labels_for(results)
    finished = [(label, r) for label, r in zip(labels, results) if r.status == "ok" and r.total_s]
    parts = [_cost(finished)] if len(finished) >= 2 else []
    parts.append(_answers(list(zip(labels, results))))
    if known_answer and known_answer.strip():
        parts.append(_marks(list(zip(labels, results)), known_answer.strip()))
    return "; ".join(p for p in parts if p)


def _cost(finished: list[tuple[str, RunResult]]) -> str:
    fastest_label, fastest = min(finished, key=lambda lr: lr[1].total_s)
    others = [(label, r) for label, r in finished if r is not fastest]
    with_energy = all(r.energy_j is not None for _l, r in finished)
    kind = _energy_kind([r for _l, r in finished])
    if len(finished) == 2:
        label, r = others[0]
        line = f"{label} took {_ratio(r.total_s, fastest.total_s)} the time ({_figure(r.total_s)} vs {_figure(fastest.total_s)})"
        if with_energy:
            line += (f" and {_ratio(r.energy_j, fastest.energy_j)} the energy ({_joules(r.energy_j)} vs "
                     f"{_joules(fastest.energy_j)}, {kind})")
        return line
    each = [f"{label} {_ratio(r.total_s, fastest.total_s)} the time"
            + (f", {_ratio(r.energy_j, fastest.energy_j)} the energy" if with_energy else "") for label, r in others]
    base = f"{_figure(fastest.total_s)}" + (f", {_joules(fastest.energy_j)} {kind}" if with_energy else "")
    return f"against the fastest, {fastest_label} ({base}): " + ", ".join(each)


def _answers(runs: list[tuple[str, RunResult]]) -> str:
    missing = [said for label, r in runs if (said := _not_answered(label, r))]
    answered = [(label, r) for label, r in runs if _not_answered(label, r) is None]
    said = ""
    if len(answered) >= 2:
        first = answered[0][1].text
        if all(same_answer(first, r.text) for _l, r in answered[1:]):
            said = f"the answers agree: {short_answer(first)}"
        elif len(answered) == 2:
            said = f"the answers differ: {short_answer(answered[0][1].text)} vs {short_answer(answered[1][1].text)}"
        else:
            said = "the answers differ: " + ", ".join(f"{label} {short_answer(r.text)}" for label, r in answered)
    return "; ".join(missing + ([said] if said else []))


def _marks(runs: list[tuple[str, RunResult]], known: str) -> str:
    def right(r: RunResult) -> bool:
        return r.correct if r.correct is not None else bool(r.text.strip()) and check_answer(r.text, known)

    judged = [(label, right(r)) for label, r in runs if r.status == "ok"]
    rights = [label for label, ok in judged if ok]
    wrongs = [label for label, ok in judged if not ok]
    if not judged:
        return ""
    if not rights:
        said = "both are wrong" if len(judged) == 2 else "none is right"
    elif not wrongs:
        said = "both are right" if len(judged) == 2 else "all are right"
    else:
        said = f"{', '.join(rights)} {'is' if len(rights) == 1 else 'are'} right, {', '.join(wrongs)} wrong"
    return f"{said} (known answer: {known})"


__all__ = ["labels_for", "run_kind", "same_answer", "short_answer", "verdict"]


def samples_line(results: Sequence[RunResult]) -> str:
    """What k samples decoded together made, and whose figures a pane shows: "The 4 samples: 301
    tokens in 4.9 s together (61 tok/s); the figures below are sample 1's, …" (the pane's note)."""
    tokens = sum(r.n_generated for r in results)
    wall = max((r.total_s for r in results if r.total_s), default=None)
    rate = f" ({tokens / wall:.0f} tok/s)" if wall else ""
    took = f" in {wall:.1f} s together{rate}" if wall else ""
    return (f"The {len(results)} samples: {tokens} tokens{took}; the figures below are sample 1's, its energy its "
            "share of the batch's by tokens")
