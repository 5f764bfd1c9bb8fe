"""The HTML report of one session: each prompt, its answers side by side, a metrics table and a
tokens/s chart drawn as inline SVG from the stored token timelines (no plotting dependency).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from app.runs import power_supply

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
CHART_W, CHART_H, MARGIN = 640, 220, 40
MAX_POINTS = 300  # per line: enough to see the shape, small enough for a long run

METRICS = [  # (label, run field, format)
    ("status", "status", "{}"),
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


def _label(run: dict) -> str:
    return f"{run['pane'] + 1}. {run['model'] or '?'}"


def _prompt_section(records: list[dict], scrub: Callable[[str], str]) -> str:
    runs = [r["run"] for r in records]
    out = [f'<h2>Prompt {records[0]["prompt"]["id"]}</h2>',
           f'<div class="prompt">{escape(scrub(records[0]["prompt"]["text"]))}</div>',
           '<div class="answers">']
    for run in runs:
        reasons = "".join(f"<li>{escape(scrub(r))}</li>" for r in run.get("route_reasons") or [])
        out.append(f'<div class="pane"><h3>{escape(_label(run))}</h3>'
                   f'<p>{escape(run["mode"])} mode{", route " + escape(run["route"]) if run.get("route") else ""}'
                   f'{", " + power_supply(run.get("on_mains"), run.get("battery_percent")) if run.get("on_mains") is not None else ""}</p>')
        if reasons:
            out.append(f"<ul>{reasons}</ul>")
        if run["thinking"]:
            out.append(f'<details><summary>thinking</summary><div class="text">'
                       f'{escape(scrub(run["thinking"]))}</div></details>')
        body = run["text"] or (f'error: {run["error"]}' if run.get("error") else "")
        out.append(f'<div class="text">{escape(scrub(body))}</div></div>')
    out.append("</div>")
    header = "".join(f"<th>{escape(_label(run))}</th>" for run in runs)
    rows = "".join(
        f"<tr><th>{escape(label)}</th>" + "".join(f"<td>{escape(scrub(_cell(run.get(key), fmt)))}</td>" for run in runs)
        + "</tr>" for label, key, fmt in METRICS)
    out.append(f"<table><tr><th></th>{header}</tr>{rows}</table>")
    series = [(_label(r["run"]), tokens_per_second(r["timeline"]["t"])) for r in records]
    out.append(svg_chart(series))
    power = [(_label(r["run"]), [(s["t_s"], s["value"]) for s in r.get("telemetry", []) if s["name"] == "power_w"])
             for r in records]
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
