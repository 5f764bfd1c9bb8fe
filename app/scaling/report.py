"""What a sweep shows: a table, three charts, and a paragraph written from the numbers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from app.scaling.sweep import Point


def write_results(folder: Path, points: Sequence[Point]) -> list[Path]:
    """points.json and reading.txt: what the app's Scaling tab opens."""
    (folder / "points.json").write_text(json.dumps([asdict(p) for p in points], indent=2), encoding="utf-8")
    (folder / "reading.txt").write_text(reading(points) + "\n", encoding="utf-8")
    return [folder / "points.json", folder / "reading.txt"]


def table(points: Sequence[Point]) -> list[list[str]]:
    """Rows for the CLI's table, with its headers first."""
    rows = [["model", "axis", "x", "verifier", "n", "accuracy", "95% CI", "thinking tok", "answer tok",
             "time", "energy", "tokens/J"]]
    for p in points:
        rows.append([
            p.model, p.axis, str(p.x), p.verifier, str(p.n), f"{p.accuracy:.1%}",
            f"{p.ci_low:.0%}–{p.ci_high:.0%}", f"{p.mean_thinking_tokens:.0f}", f"{p.mean_answer_tokens:.0f}",
            f"{p.mean_time_s:.2f} s", "—" if p.mean_energy_j is None else f"{p.mean_energy_j:.1f} J",
            "—" if p.tokens_per_j is None else f"{p.tokens_per_j:.1f}",
        ])
    return rows


def reading(points: Sequence[Point]) -> str:
    """One paragraph per model from its budget curve (and its k curve): where it flattens, the
    budget that reaches 95% of the best accuracy, and what that costs against the direct answer."""
    paragraphs = []
    for model in dict.fromkeys(p.model for p in points):
        budget = sorted((p for p in points if p.model == model and p.axis == "budget"), key=lambda p: p.x)
        sampled = [p for p in points if p.model == model and p.axis == "k"]
        parts = []
        if budget:
            best = max(budget, key=lambda p: p.accuracy)
            if best.accuracy == 0:
                parts.append(f"{model} answered none of the {best.n} problems at any thinking budget "
                             f"({', '.join(str(p.x) for p in budget)} tokens), so there is no curve to read: "
                             "try a larger or a thinking model")
            else:
                enough = next(p for p in budget if p.accuracy >= 0.95 * best.accuracy)
                flat = _flattens(budget)
                base = budget[0]
                parts.append(
                    f"{model} reaches {best.accuracy:.0%} at its best (budget {best.x}, 95% CI "
                    f"{best.ci_low:.0%}–{best.ci_high:.0%}, n={best.n}); a budget of {enough.x} tokens already "
                    f"gives {enough.accuracy:.0%}, 95% of that"
                )
                if flat is not None:
                    parts.append(f"the curve flattens after {flat} tokens (less than a point gained per doubling)")
                if enough.x != base.x:
                    parts.append(
                        f"against answering with a budget of {base.x} ({base.accuracy:.0%}), budget {enough.x} costs "
                        f"{_ratio(enough.mean_time_s, base.mean_time_s)} the time"
                        + (f" and {_ratio(enough.mean_energy_j, base.mean_energy_j)} the energy "
                           f"({enough.mean_energy_j:.1f} J vs {base.mean_energy_j:.1f} J, {enough.energy_source})"
                           if enough.mean_energy_j and base.mean_energy_j else "")
                    )
        if sampled:
            k_max = max(p.x for p in sampled)
            at_max = {p.verifier: p for p in sampled if p.x == k_max}
            if at_max:
                ranked = ", ".join(f"{name} {p.accuracy:.0%}" for name, p in
                                   sorted(at_max.items(), key=lambda item: -item[1].accuracy))
                parts.append(f"with {k_max} samples per question the verifiers give {ranked}"
                             + (" — the oracle is the ceiling a perfect verifier would reach" if "oracle" in at_max else ""))
        paragraphs.append("; ".join(parts) + ".")
    return "\n\n".join(paragraphs)


def _flattens(curve: Sequence[Point]) -> int | None:
    """The first budget after which no later budget gains a point (1%) or more."""
    for i, p in enumerate(curve[:-1]):
        if all(q.accuracy - p.accuracy < 0.01 for q in curve[i + 1:]):
            return p.x
    return None


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "?×"
    return f"{a / b:.1f}×"


def plot(points: Sequence[Point], folder: Path, title: str) -> list[Path]:
    """accuracy_vs_tokens.png (thinking tokens, log x), accuracy_vs_energy.png, verifiers.png (matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("the charts need matplotlib: pip install 'fastslow[eval]'") from exc
    written = []
    models = list(dict.fromkeys(p.model for p in points))

    def curve_chart(name: str, xlabel: str, x_of, log: bool) -> None:
        figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        for model in models:
            for label, mine in (("budget", [p for p in points if p.model == model and p.axis == "budget"]),
                                ("majority vote", [p for p in points if p.model == model and p.axis == "k"
                                                   and p.verifier == "majority"])):
                mine = [p for p in mine if x_of(p) is not None]
                if not mine:
                    continue
                mine.sort(key=x_of)
                xs = [max(x_of(p), 1e-3) if log else x_of(p) for p in mine]
                ys = [p.accuracy * 100 for p in mine]
                errors = [[(p.accuracy - p.ci_low) * 100 for p in mine], [(p.ci_high - p.accuracy) * 100 for p in mine]]
                axes.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=f"{model}: {label}")
        if log:
            axes.set_xscale("symlog", linthresh=1)
        axes.set_xlabel(xlabel)
        axes.set_ylabel("accuracy (%)")
        axes.set_ylim(-3, 103)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        axes.set_title(title, fontsize=10)
        figure.tight_layout()
        path = folder / name
        figure.savefig(path)
        plt.close(figure)
        written.append(path)

    curve_chart("accuracy_vs_tokens.png", "thinking tokens per question (log)",
                lambda p: p.mean_thinking_tokens, log=True)
    if any(p.mean_energy_j is not None for p in points):
        source = " + ".join(sorted({p.energy_source for p in points if p.energy_source}))
        curve_chart("accuracy_vs_energy.png", f"energy per question (J, {source})",
                    lambda p: p.mean_energy_j, log=False)
    sampled = [p for p in points if p.axis == "k"]
    if sampled:
        figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        for model in models:
            for verifier in dict.fromkeys(p.verifier for p in sampled):
                mine = sorted((p for p in sampled if p.model == model and p.verifier == verifier), key=lambda p: p.x)
                if mine:
                    axes.plot([p.x for p in mine], [p.accuracy * 100 for p in mine], marker="o",
                              label=f"{model}: {verifier}")
        axes.set_xscale("log", base=2)
        axes.set_xlabel("samples per question (k)")
        axes.set_ylabel("accuracy (%)")
        axes.set_ylim(-3, 103)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        axes.set_title(f"{title}: verifiers on the same samples", fontsize=10)
        figure.tight_layout()
        path = folder / "verifiers.png"
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written
