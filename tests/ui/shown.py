"""What a pane shows, read off its widgets, and what it should show, worked out from the stored run.

The GUI tests compare the two character for character: the answer as the answer view renders it,
the thought as the thought view holds it, every figure label, the thought's header and the
verdict line. The expected side is formatted here from the log's record, independently of the
pane's own code, so a pane that shows a stale, borrowed or recomputed figure fails.
"""

from __future__ import annotations

from PySide6.QtGui import QTextDocument

from app.runs import power_supply
from app.store.log import result_from_record
from app.ui.pane import markdown_source
from app.verdict import verdict


def shown(pane) -> dict:
    """Everything a person reads in one pane once its run has ended."""
    pane.repaint_text()
    toggle = pane.thinking_toggle
    return {
        "answer": pane.answer_view.toPlainText(),
        "thinking": pane.thinking_view.toPlainText() if not toggle.isHidden() else "",
        "thought header": toggle.text() if not toggle.isHidden() else "",
        **{name: label.text() for name, label in pane.stats.items()},
    }


def status_text(pane) -> str:
    """The pane's status lines as a person reads them (its label holds HTML)."""
    doc = QTextDocument()
    doc.setHtml(pane.status.text())
    return doc.toPlainText() if not pane.status.isHidden() else ""


def _rendered(markdown_text: str) -> str:
    """The answer as the answer view shows it: the same Markdown rendering, from the stored text."""
    doc = QTextDocument()
    doc.setMarkdown(markdown_source(markdown_text))
    return doc.toPlainText()


def _s(value, digits: int = 2, unit: str = "s") -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}".rstrip()


def expected(record: dict) -> dict:
    """What the pane of this stored run must show, from the record alone."""
    run = record["run"]
    thinking_s = None
    if run["n_thinking_tokens"] and run["ttft_s"] is not None:
        closed = run["ttfat_s"] if run["ttfat_s"] is not None else (run["total_s"] or 0.0)
        thinking_s = max(closed - run["ttft_s"], 0.0)
    limits = []
    if run["thinking_extended"]:
        limits.append(f"held open {run['thinking_extended']}× with Wait")
    if run["thinking_budget_hit"]:
        limits.append("closed by its budget")
    header = ""
    if run["n_thinking_tokens"]:
        header = f"Thought for {thinking_s or 0:.1f} s · {run['n_thinking_tokens']} tokens"
        header += f" · {' · '.join(limits)}" if limits else ""
    elif run["thinking"]:  # only the text a budget of 0 put in
        header = " · ".join(["No thought", *limits])
    kind = run["energy_source"].split(":", 1)[0] if run["energy_source"] else ""
    energy = _s(run["energy_j"], 1, "J") + ("*" if run["energy_approximate"] else "") + (f" <i>{kind}</i>" if kind else "")
    supply = power_supply(run["on_mains"], run["battery_percent"])
    # Where it ran, from the stored columns: these machines have no GPU, so the CPU and its threads.
    assert run["backend"] == "CPU" and run["n_gpu_layers"] == 0 and run["device"] == ""
    where = f"CPU · {run['n_threads']} thread" + ("s" if run["n_threads"] != 1 else "")
    return {
        "answer": _rendered(run["text"]),
        "thinking": run["thinking"],
        "thought header": header,
        "TTFT": _s(run["ttft_s"]),
        "First answer": _s(run["ttfat_s"]),
        "Tokens/s now": "—",
        "Tokens/s avg": _s(run["decode_tps"], 1, ""),
        "Thinking": f"{run['n_thinking_tokens']} tok",
        "Answer": f"{run['n_answer_tokens']} tok",
        "Elapsed": _s(run["total_s"], 1),
        "Watts": _s(run["avg_w"], 1, "W"),
        "Energy": energy,
        "Numbers": " · ".join([f"{run['mode']} mode", where, *([supply] if supply else [])]),
    }


def latest_prompt_records(log) -> dict[int, dict]:
    """The stored records of the latest prompt, by pane."""
    records = list(log.records())
    latest = records[-1]["prompt"]["id"]
    return {r["run"]["pane"]: r for r in records if r["prompt"]["id"] == latest}


def expected_verdict(records: dict[int, dict], names: list[str]) -> str:
    """The verdict line the window must show for these stored runs (names: the panes' names)."""
    panes = sorted(records)
    results = [result_from_record(records[p]) for p in panes]
    known = records[panes[0]]["prompt"]["known_answer"]
    return verdict(results, known, [names[p] for p in panes])


def assert_window_shows_the_log(window, log) -> dict[int, dict]:
    """Every pane of the latest prompt shows exactly its stored run; the verdict line matches them."""
    from html import escape

    records = latest_prompt_records(log)
    for pane, record in records.items():
        got, want = shown(window.panes[pane]), expected(record)
        assert got == want, f"pane {pane} shows {got}\nstored run says {want}"
    names = [window._pane_label(i) for i in range(len(window.panes))]
    line = expected_verdict(records, names)
    assert window.verdict.text() == escape(line)
    assert window.verdict.isHidden() == (not line)
    return records
