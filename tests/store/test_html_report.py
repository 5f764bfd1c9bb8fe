"""The HTML report says what the app says: each prompt headed by the verdict, its runs named by model
and mode, marked right or wrong against the known answer, and a run with no answer says why."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from store_helpers import INFO

from app.engines.types import GenerationRequest
from app.runs import RunResult
from app.store.export import export
from app.store.report import answer_words, column_names, kind_name, run_name

PROMPT = "A train leaves at 3:40 pm and takes 2 h 35 min. When does it arrive?"
VERDICT = ("Thinking took 2.8× the time (6.1 s vs 2.2 s) and 2.7× the energy (61 J vs 23 J, estimated); "
           "the answers differ: 360 vs 6:15 pm; Thinking is right, Direct wrong (known answer: 6:15 pm)")
NO_ANSWER = "max tokens (24) ran out before the answer: raise max tokens"


def direct(**changes) -> RunResult:
    """SmolLM2 answering at once: fast, and wrong."""
    values = dict(pane=0, model="smollm2-135m", mode="fair", status="ok", finish_reason="stop", text="360",
                  n_generated=3, n_answer_tokens=3, total_s=2.2, energy_j=23.0, energy_source="estimated:tdp",
                  token_times_s=[0.1, 0.2, 0.3], correct=False)
    return RunResult.of(**{**values, **changes})


def scaffolded(**changes) -> RunResult:
    """The same model asked to reason first (it cannot think natively): slower, and right."""
    values = dict(pane=1, model="smollm2-135m", mode="fair", status="ok", finish_reason="stop",
                  text="The answer is 6:15 pm.", thinking="3:40 plus 2 h is 5:40, plus 35 min is 6:15.",
                  strategy="scaffold", n_generated=30, n_thinking_tokens=24, n_answer_tokens=6, total_s=6.1,
                  energy_j=61.0, energy_source="estimated:tdp", token_times_s=[0.1 * i for i in range(1, 31)],
                  correct=True)
    return RunResult.of(**{**values, **changes})


def record(log, session_id: int, results: list[RunResult], known_answer: str | None = "6:15 pm",
           prompt: str = PROMPT, decision=None) -> list[int]:
    """One prompt and its runs, written as the app writes them."""
    request = GenerationRequest.from_prompt(prompt, max_tokens=24)
    prompt_id = log.add_prompt(session_id, request, known_answer=known_answer)
    ids = []
    for result in results:
        run_id = log.start_run(prompt_id, pane=result.pane, info=INFO, request=request, mode=result.mode,
                               decision=decision)
        log.finish_run(run_id, result, channels=["answer"] * len(result.token_times_s))
        ids.append(run_id)
    return ids


@pytest.fixture
def report(tmp_path, log):
    """Write one session (a fresh database) and return its HTML report."""
    def write(*prompts: list[RunResult], known_answer: str | None = "6:15 pm") -> str:
        session_id = log.start_session(mode="fair")
        for results in prompts:
            record(log, session_id, results, known_answer=known_answer)
        out = tmp_path / "report.html"
        export(log, "html", out, session_id=session_id)
        return out.read_text(encoding="utf-8")
    return write


def test_each_prompt_is_headed_by_the_verdict_the_app_shows(report):
    page = report([direct(), scaffolded()])
    assert f'<p class="verdict">{VERDICT}</p>' in page
    assert page.index("<h2>Prompt") < page.index(VERDICT) < page.index(PROMPT)  # above the prompt


def test_a_prompt_with_one_run_has_no_verdict(report):
    page = report([direct()])
    assert 'class="verdict"' not in page


def test_runs_are_named_by_model_and_mode_not_by_pane_number(report):
    page = report([direct(), scaffolded()])
    for name in ("smollm2-135m · direct", "smollm2-135m · thinking (scaffolded)"):
        assert f"<h3>{name}</h3>" in page and f"<th>{name}</th>" in page  # the pane and its table column
    assert "1. smollm2-135m" not in page and "2. smollm2-135m" not in page


def test_the_same_model_and_mode_twice_are_numbered():
    twice = [scaffolded(pane=0), scaffolded(pane=1)]
    assert column_names(twice) == ["smollm2-135m · thinking (scaffolded) #1",
                                   "smollm2-135m · thinking (scaffolded) #2"]


def test_a_run_of_a_model_that_thinks_natively_is_plain_thinking():
    native = scaffolded(strategy="native", thinking_style="think-tags")
    assert (kind_name(native), run_name(direct())) == ("thinking", "smollm2-135m · direct")


def test_each_run_is_marked_against_the_known_answer_given_once(report):
    page = report([direct(), scaffolded()])
    assert '<p class="wrong">✗ wrong</p>' in page and '<p class="right">✓ right</p>' in page
    assert page.count("Known answer: <strong>6:15 pm</strong>") == 1


def test_without_a_known_answer_nothing_is_marked(report):
    page = report([direct(correct=None), scaffolded(correct=None)], known_answer=None)
    assert "✓" not in page and "✗" not in page and "Known answer" not in page


def test_a_run_with_no_answer_says_why_instead_of_an_empty_box(report):
    ran_out = scaffolded(text="", finish_reason="length", n_answer_tokens=0, thinking_unclosed=True,
                         correct=False, no_answer=NO_ANSWER)
    page = report([direct(), ran_out])
    assert f'<p class="no-answer">No answer: {NO_ANSWER}.</p>' in page
    assert '<div class="text"></div>' not in page
    assert "Direct gave no answer" not in page and "Thinking gave no answer" in page  # the verdict says so too


def test_the_finish_reason_is_in_the_metrics_table(report):
    page = report([direct(), scaffolded(finish_reason="length")])
    assert "<tr><th>finish reason</th><td>stop</td><td>length</td></tr>" in page


def test_the_route_the_router_chose_is_shown(tmp_path, log):
    session_id = log.start_session()
    think = SimpleNamespace(route="think", budget=256, confidence=0.8, reasons=("several steps of arithmetic",))
    record(log, session_id, [scaffolded()], decision=think)
    export(log, "html", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "fair mode, route think (budget 256)</p>" in page and "<li>several steps of arithmetic</li>" in page


def test_every_new_text_is_escaped(report):
    tricky = "<b>6:15</b> & more"
    page = report([direct(model="<i>m</i>", no_answer="<script>x</script>", text=""),
                   scaffolded(text=f"The answer is {tricky}")], known_answer=tricky)
    assert "<b>" not in page and "<i>" not in page and "<script>" not in page
    assert "Known answer: <strong>&lt;b&gt;6:15&lt;/b&gt; &amp; more</strong>" in page
    assert "<th>&lt;i&gt;m&lt;/i&gt; · direct</th>" in page


def test_the_new_texts_write_the_home_folder_as_tilde_too(report):
    home = str(Path.home())
    page = report([direct(text="", no_answer=f"cannot read {home}/models/m.gguf"),
                   scaffolded(text=f"The answer is {home}/x")], known_answer=f"{home}/x")
    assert home not in page
    assert "No answer: cannot read ~/models/m.gguf." in page and "Known answer: <strong>~/x</strong>" in page


@pytest.mark.parametrize("correct, no_answer, words", [
    (True, "", "✓ right"), (False, "", "✗ wrong"), (None, "", "—"),
    (False, NO_ANSWER, "✗ no answer"), (None, NO_ANSWER, "no answer"),
])
def test_a_runs_answer_in_a_word_or_two(correct, no_answer, words):
    assert answer_words(correct, no_answer) == words
