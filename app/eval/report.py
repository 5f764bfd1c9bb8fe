"""The trade-off chart: accuracy against generated tokens (and energy) per policy, with the Pareto front."""

from __future__ import annotations

from pathlib import Path

from app.eval.harness import PolicySummary


def pareto_front(points: list[tuple[str, float, float]]) -> list[str]:
    """Names of the points no other point beats: fewer (or equal) tokens and higher (or equal)
    accuracy, strictly better in one. Points are (name, tokens, accuracy)."""
    front = []
    for name, cost, accuracy in points:
        dominated = any(
            c <= cost and a >= accuracy and (c < cost or a > accuracy) for n, c, a in points if n != name
        )
        if not dominated:
            front.append(name)
    return front


def tokens_per_question(summary: PolicySummary) -> float:
    return summary.mean_thinking_tokens + summary.mean_answer_tokens


def plot_tradeoff(summaries: list[PolicySummary], path: Path, title: str) -> Path:
    """Write the chart as a PNG: accuracy against tokens, and against energy when every policy has
    an energy figure; each with its Pareto front. matplotlib is the optional `eval` extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display, no Qt
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("the chart needs matplotlib: pip install 'fastslow[eval]'") from exc
    panels = [("generated tokens per question (thinking + answer)", [tokens_per_question(s) for s in summaries])]
    if summaries and all(s.mean_energy_j is not None for s in summaries):
        source = " + ".join(sorted({s.energy_source for s in summaries if s.energy_source}))
        panels.append((f"energy per question (J, {source})", [s.mean_energy_j for s in summaries]))
    figure, axes_row = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.2), dpi=120, squeeze=False)
    for axes, (xlabel, costs) in zip(axes_row[0], panels):
        _panel(axes, [(s.policy, c, s.accuracy) for s, c in zip(summaries, costs)], xlabel)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _panel(axes, points: list[tuple[str, float, float]], xlabel: str) -> None:
    front = set(pareto_front(points))
    labels: dict[tuple[float, float], list[str]] = {}  # policies at the same spot share one label
    for name, cost, accuracy in points:
        labels.setdefault((cost, accuracy * 100), []).append(name)
    for (cost, percent), names in labels.items():
        on_front = any(n in front for n in names)
        axes.scatter(cost, percent, s=60, color="#d1495b" if on_front else "#8d99ae", zorder=3)
        axes.annotate(", ".join(names), (cost, percent), textcoords="offset points", xytext=(6, 4), fontsize=9)
    line = sorted((c, a * 100) for n, c, a in points if n in front)
    if len(line) > 1:
        axes.plot(*zip(*line), color="#d1495b", linewidth=1, zorder=2, label="Pareto front")
        axes.legend(loc="best", fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(-3, 103)
    axes.grid(alpha=0.3)
