"""The HTML report of one session: each prompt headed by the verdict the app shows, its answers side
by side (each named by model and mode, marked right or wrong against the known answer, or saying why
it has none), a metrics table and a tokens/s chart drawn as inline SVG from the stored token
timelines (no plotting dependency). Also the words for a run's kind, route and mark that
`fastslow log list` and the History tab share.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from app.record import RunResult, no_answer_reason, power_supply
from app.store.log import result_from_record
from app.verdict import labels_for, run_kind, verdict

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
CHART_W, CHART_H, MARGIN = 640, 220, 40
MAX_POINTS = 300  # per line: enough to see the shape, small enough for a long run

METRICS = [  # (label, run field, format)
    ("status", "status", "{}"),
    ("finish reason", "finish_reason", "{}"),
    ("backend", "backend", "{}"),
    ("quantization", "quantization", "{}"),
    ("threads", "n_threads", "{}"),
    ("prompt tokens", "n_prompt_tokens", "{}"),
    ("generated", "n_generated", "{}"),
    ("thinking tokens", "n_thinking_tokens", "{}"),
    ("answer tokens", "n_answer_tokens", "{}"),
    ("TTFT (ms)", "ttft_s", "ms"),
    ("first answer (ms)", "ttfat_s", "ms"),
    ("prompt tok/s", "prompt_tps", "{:.1f}"),
    ("decode tok/s", "decode_tps", "{:.1f}"),
    ("total (s)", "total_s", "{:.2f}"),
    ("energy (J)", "energy_j", "{:.1f}"),
    ("energy source", "energy_source", "{}"),
    ("model file", "model_path", "{}"),
]

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
.answers { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 1em; }
.pane { border: 1px solid #ccc; border-radius: 6px; padding: .6em .9em; overflow-wrap: anywhere; }
.text { white-space: pre-wrap; }
.verdict { background: #eef4ff; padding: .6em .9em; border-radius: 6px; font-weight: 600; }
.known { margin: .4em 0; }
.right { color: #1a7f37; } .wrong { color: #c62828; } .no-answer { color: #9a6700; }
.prompt { white-space: pre-wrap; background: #f4f4f4; padding: .6em .9em; border-radius: 6px; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ddd; padding: .2em .6em; }
td { text-align: right; } th { text-align: left; }
"""


def tokens_per_second(times: list[float], window: int = 8) -> list[tuple[float, float]]:
    """(time, tokens/s over the last `window` tokens) for each token after the first."""
    points = []
    for i in range(1, len(times)):
        j = max(0, i - window)
        span = times[i] - times[j]
        if span > 0:
            points.append((times[i], (i - j) / span))
    step = max(1, len(points) // MAX_POINTS)
    return points[::step]


def svg_chart(series: list[tuple[str, list[tuple[float, float]]]], unit: str = "tok/s",
              what: str = "tokens per second") -> str:
    """A line per run: a figure (tokens/s, watts) against seconds from submit."""
    all_points = [p for _, points in series for p in points]
    if not all_points:
        return f"<p>No {escape(what)} to chart.</p>"
    t_max = max(t for t, _ in all_points) or 1.0
    r_max = max(r for _, r in all_points) * 1.1 or 1.0
    w, h = CHART_W - 2 * MARGIN, CHART_H - 2 * MARGIN

    def xy(t: float, r: float) -> str:
        return f"{MARGIN + t / t_max * w:.1f},{MARGIN + h - r / r_max * h:.1f}"

    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}" '
         f'role="img" aria-label="{escape(what)} over time">'),
        f'<line x1="{MARGIN}" y1="{MARGIN + h}" x2="{MARGIN + w}" y2="{MARGIN + h}" stroke="#888"/>',
        f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{MARGIN + h}" stroke="#888"/>',
        f'<text x="{MARGIN}" y="{MARGIN - 8}" font-size="11">{r_max:.0f} {escape(unit)}</text>',
        f'<text x="{MARGIN + w}" y="{CHART_H - 10}" font-size="11" text-anchor="end">{t_max:.2f} s</text>',
    ]
    for k, (label, points) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        line = " ".join(xy(t, r) for t, r in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{line}"/>')
        parts.append(f'<text x="{MARGIN + w - 4}" y="{MARGIN + 14 * (k + 1)}" font-size="11" '
                     f'text-anchor="end" fill="{colour}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _cell(value: object, fmt: str) -> str:
    if value is None or value == "":
        return "—"
    if fmt == "ms":
        return f"{value * 1000:.0f}"  # type: ignore[operator]
    return fmt.format(value)


def kind_name(r: RunResult) -> str:
    """What kind of run it was, in words: "direct", "thinking", or "thinking (scaffolded)" for a
    model that cannot think, asked to reason first. Reads only n_thinking_tokens, strategy and
    thinking_style, so a RunSummary serves as well as a RunResult."""
    kind = run_kind(r)
    return f"{kind} (scaffolded)" if "scaffold" in (r.strategy, r.thinking_style) else kind


def run_name(r: RunResult) -> str:
    """A run named by its model and mode: "smollm2-135m · thinking (scaffolded)"."""
    return f"{r.model or '?'} · {kind_name(r)}"


def route_words(route: str | None, budget: int | None = None) -> str:
    """The router's decision for a run ("think (budget 256)", "direct"); "" where none was made."""
    if not route:
        return ""
    return route + (f" (budget {budget})" if budget is not None else "")


def mark(correct: bool | None) -> str:
    """A run's mark against the prompt's known answer; "" when there was none to mark against."""
    return "" if correct is None else "✓ right" if correct else "✗ wrong"


def answer_words(correct: bool | None, no_answer: str = "") -> str:
    """A run's answer in a word or two for a list: "✓ right", "✗ wrong", "no answer" (marked "✗"
    when there was a known answer to give), or "—" when it answered and nothing was known."""
    if no_answer:
        return "✗ no answer" if correct is False else "no answer"
    return mark(correct) or "—"


def column_names(results: list[RunResult]) -> list[str]:
    """Each run of one prompt by model and mode; the same model and mode twice are numbered."""
    names = [run_name(r) for r in results]
    seen: dict[str, int] = {}
    numbered = []
    for name in names:
        if names.count(name) > 1:
            seen[name] = seen.get(name, 0) + 1
            name = f"{name} #{seen[name]}"
        numbered.append(name)
    return numbered


def verdict_line(results: list[RunResult], known_answer: str | None) -> str:
    """The line the app shows across the panes, for the runs of one prompt ("" for a single run).
    Where labels_for cannot tell two runs apart (the same model and mode twice), the runs are called
    by their column names, as the app calls them by their panes'."""
    labels = labels_for(results)
    if len(set(labels)) < len(labels) or any("#" in label for label in labels):
        labels = column_names(results)
    return verdict(results, known_answer, labels)


def _no_answer(run: dict, result: RunResult) -> str:
    """Why a run that did not fail has no answer ("" when it has one)."""
    if result.text.strip() or run.get("error"):
        return ""
    if run.get("no_answer"):
        return run["no_answer"]
    if result.status == "ok":  # a record from before runs said why
        return no_answer_reason(result)
    return _UNFINISHED.get(result.status, f"it ended as {result.status}")


_UNFINISHED = {"failed": "it failed", "cancelled": "it was cancelled", "interrupted": "it was interrupted",
               "running": "it was still running when this report was written"}


def _prompt_section(records: list[dict], scrub: Callable[[str], str]) -> str:
    prompt = records[0]["prompt"]
    known = (prompt.get("known_answer") or "").strip() or None
    runs = [r["run"] for r in records]
    results = [result_from_record(r) for r in records]
    names = column_names(results)
    out = [f'<h2>Prompt {prompt["id"]}</h2>']
    if line := verdict_line(results, known):
        out.append(f'<p class="verdict">{escape(scrub(line))}</p>')
    out.append(f'<div class="prompt">{escape(scrub(prompt["text"]))}</div>')
    if known:
        out.append(f'<p class="known">Known answer: <strong>{escape(scrub(known))}</strong></p>')
    out.append('<div class="answers">')
    for name, run, result in zip(names, runs, results):
        reasons = "".join(f"<li>{escape(scrub(r))}</li>" for r in run.get("route_reasons") or [])
        route = route_words(run.get("route"), run.get("route_budget"))
        supply = power_supply(run.get("on_mains"), run.get("battery_percent"))
        where = result.placement
        out.append(f'<div class="pane"><h3>{escape(scrub(name))}</h3>'
                   f'<p>{escape(run["mode"])} mode{", " + escape(where) if where else ""}'
                   f'{", route " + escape(route) if route else ""}{", " + escape(supply) if supply else ""}</p>')
        if result.thought_note:
            out.append(f'<p class="no-answer">Thinking budget not held: {escape(scrub(result.thought_note))}.</p>')
        if result.conditions.samples_note:
            out.append(f'<p class="no-answer">Samples: {escape(scrub(result.conditions.samples_note))}.</p>')
        if result.load_note:
            out.append(f'<p class="no-answer">Busy machine: {escape(scrub(result.load_note))}.</p>')
        if said := mark(result.correct):
            out.append(f'<p class="{"right" if result.correct else "wrong"}">{escape(said)}</p>')
        if reasons:
            out.append(f"<ul>{reasons}</ul>")
        if run["thinking"]:
            out.append(f'<details><summary>thinking</summary><div class="text">'
                       f'{escape(scrub(run["thinking"]))}</div></details>')
        if why := _no_answer(run, result):
            out.append(f'<p class="no-answer">No answer: {escape(scrub(why))}.</p></div>')
            continue
        body = run["text"] or (f'error: {run["error"]}' if run.get("error") else "")
        out.append(f'<div class="text">{escape(scrub(body))}</div></div>')
    out.append("</div>")
    header = "".join(f"<th>{escape(scrub(name))}</th>" for name in names)
    rows = "".join(
        f"<tr><th>{escape(label)}</th>" + "".join(f"<td>{escape(scrub(_cell(run.get(key), fmt)))}</td>" for run in runs)
        + "</tr>" for label, key, fmt in METRICS)
    out.append(f"<table><tr><th></th>{header}</tr>{rows}</table>")
    series = [(scrub(name), tokens_per_second(r["timeline"]["t"])) for name, r in zip(names, records)]
    out.append(svg_chart(series))
    power = [(scrub(name), [(s["t_s"], s["value"]) for s in r.get("telemetry", []) if s["name"] == "power_w"])
             for name, r in zip(names, records)]
    if any(points for _, points in power):
        sources = sorted({s["source"] for r in records for s in r.get("telemetry", []) if s["name"] == "power_w"})
        out.append(f"<p>Power during each run ({escape(', '.join(sources))}):</p>")
        out.append(svg_chart(power, unit="W", what="power"))
    return "\n".join(out)


def render_session(session_id: int, records: list[dict], scrub: Callable[[str], str]) -> str:
    """The whole page, every dynamic string escaped."""
    by_prompt: dict[str, list[dict]] = {}
    for record in records:
        by_prompt.setdefault(record["prompt"]["uid"], []).append(record)
    started = records[0]["session"]["started_at"] if records else ""
    sections = [_prompt_section(group, scrub) for group in by_prompt.values()] or ["<p>No runs yet.</p>"]
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>FastSlow session {session_id}</title><style>{STYLE}</style></head><body>"
            f"<h1>FastSlow session {session_id}</h1><p>{escape(started)}</p>\n"
            + "\n".join(sections) + "\n</body></html>\n")
