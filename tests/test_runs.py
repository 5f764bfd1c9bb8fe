"""RunRecorder: figures from events, and the thinking/answer split counted per token."""

import dataclasses

from app.engines.thought_parser import StreamSplit
from app.engines.types import GenerationRequest, PromptDone, Started
from app.record import RunResult
from app.runs import RunRecorder
from app.session import Session


def test_each_token_keeps_its_channel_for_the_log():
    recorder = RunRecorder(0, None, "fair", 0.0, thinking_style="think-tags")
    worker = StreamSplit("think-tags")  # the events as a worker sends them: split once, there
    for i, text in enumerate(["<think>", "a", "</think>", "b"]):
        recorder.feed(worker.token(0.1 * (i + 1), text, 1))
    assert recorder.channels == ["thinking", "thinking", "thinking", "answer"]
    assert len(recorder.channels) == len(recorder.result.token_times_s)


def record(tokens, style="think-tags", opens_thinking=False, t0=100.0):
    recorder = RunRecorder(0, None, "fair", t0, thinking_style=style)
    worker = StreamSplit(style, starts_in_thinking=opens_thinking)
    recorder.feed(Started(t0 + 0.01, 20, 2, opens_thinking))
    recorder.feed(PromptDone(t0 + 0.20, 20, 20, 0.19))
    t = t0 + 0.20
    for text in tokens:
        recorder.feed(worker.token(t, text, 1))
        t += 0.05
    recorder.feed(worker.finished(t, "stop", len(tokens), 0.0))
    return recorder.result


def test_thinking_and_answer_tokens_are_counted_and_timed_apart():
    r = record(["<think>", "\n", "2+3", "=5", "</think>", "\n\n", "The", " answer", " is 5."])
    assert r.thinking == "\n2+3=5" and r.text == "The answer is 5."
    assert r.n_thinking_tokens == 5 and r.n_answer_tokens == 4  # "\n\n" after the tag counts as answer
    assert abs(r.ttft_s - 0.20) < 1e-9
    assert abs(r.ttfat_s - (0.20 + 6 * 0.05)) < 1e-9  # "The", the first visible answer
    assert not r.thinking_unclosed


def test_output_that_starts_mid_thought():
    r = record(["hmm", "...", "</think>", "42"], opens_thinking=True)
    assert (r.thinking, r.text) == ("hmm...", "42")
    assert (r.n_thinking_tokens, r.n_answer_tokens) == (3, 1)


def test_never_closed_thought_has_no_answer_and_is_flagged():
    r = record(["<think>", "still", " going"])
    assert r.text == "" and r.ttfat_s is None and r.thinking_unclosed


def test_a_model_that_does_not_think():
    r = record(["Hello", " there"], style="none")
    assert r.text == "Hello there" and r.n_answer_tokens == 2 and r.n_thinking_tokens == 0
    assert abs(r.ttfat_s - r.ttft_s) < 1e-9


def test_a_real_model_whose_template_opens_think_streams_thinking(smollm2_spec):
    # SmolLM2 with a template that ends the prompt inside <think>, as DeepSeek-R1's newer one does.
    template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "<|im_start|>assistant\n<think>\n"
    )
    spec = dataclasses.replace(smollm2_spec, chat_template=template, thinking="think-tags")
    with Session([spec]) as session:
        session.load()
        [result] = session.compare(GenerationRequest.from_prompt("Is 7 prime?", max_tokens=12))
    assert result.status == "ok" and result.thinking_style == "think-tags"
    assert result.n_thinking_tokens + result.n_answer_tokens == result.n_generated > 0
    # Everything up to a </think> (if the tiny model writes one at all) is thinking, not answer.
    assert result.thinking.strip() and result.n_thinking_tokens > 0
    assert result.text == "" or result.n_answer_tokens > 0


def test_the_answers_mean_logprob_counts_answer_tokens_only_and_is_logged(tmp_path):
    import math

    from app.store import SessionLog

    recorder = RunRecorder(0, None, "fair", 0.0, thinking_style="think-tags")
    worker = StreamSplit("think-tags")
    recorder.feed(Started(0.01, 5, 1))
    for n, (text, logprob) in enumerate([("<think>", -5.0), ("hmm", -4.0), ("</think>", -3.0),
                                         ("Paris", math.log(0.5)), (".", math.log(0.8))]):
        recorder.feed(worker.token(0.1 * (n + 1), text, n, logprob=logprob))
    recorder.feed(worker.finished(0.7, "stop", 5, 0.5))
    r = recorder.result
    assert r.answer_logprob_mean == (math.log(0.5) + math.log(0.8)) / 2  # the thought's tokens left out
    with SessionLog.open(tmp_path / "log.db") as log:
        run_id = log.start_run(log.add_prompt(log.start_session(), GenerationRequest.from_prompt("q")), pane=0)
        log.finish_run(run_id, r, recorder.channels)
        assert log.get_run(run_id).answer_logprob_mean == r.answer_logprob_mean


def test_a_scaffolds_answer_marker_counts_as_answer_not_thought():
    # "The answer is" is held back until it settles; its tokens are the answer's, as their text is
    # (" The" gave out the thought's last space as it started the marker: it counts with the thought).
    r = record(["Let", " me", " add", ".", " The", " answer", " is", " 5", "."], style="scaffold")
    assert (r.thinking, r.text) == ("Let me add. ", "The answer is 5.")
    assert (r.n_thinking_tokens, r.n_answer_tokens) == (5, 4)


def test_a_scaffold_that_answers_at_once_has_no_thought_at_all():
    r = record(["The", " answer", " is", ":", " Red"], style="scaffold")
    assert (r.thinking, r.n_thinking_tokens, r.n_answer_tokens) == ("", 0, 5)


def test_a_scaffold_cut_off_mid_marker_counts_its_held_tokens_as_thought():
    r = record(["Hmm", ".", " The", " answer"], style="scaffold")
    assert r.thinking == "Hmm. The answer" and r.text == ""
    assert (r.n_thinking_tokens, r.n_answer_tokens) == (4, 0)
    assert r.no_answer.startswith("it stopped without writing")


def test_the_samples_line_says_what_the_batch_made_and_whose_figures_a_pane_shows():
    from app.verdict import samples_line

    def sample(n: int, total_s: float) -> RunResult:
        return RunResult.of(0, n_generated=n, total_s=total_s)

    line = samples_line([sample(80, 4.0), sample(100, 4.9), sample(60, 3.1)])
    assert line == ("The 3 samples: 240 tokens in 4.9 s together (49 tok/s); the figures below are sample 1's, "
                    "its energy its share of the batch's by tokens")
