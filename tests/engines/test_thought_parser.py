"""The thinking/answer split on streams cut the way real tokenizers cut them."""

import pytest

from app.engines.thought_parser import ANSWER, THINKING, ReasoningParser
from app.thinking_styles import detect_style


def split(style, pieces, starts_in_thinking=False):
    parser = ReasoningParser(style, starts_in_thinking)
    out = [p for text in pieces for p in parser.feed(text)] + parser.flush()
    thinking = "".join(p.text for p in out if p.channel == THINKING)
    answer = "".join(p.text for p in out if p.channel == ANSWER)
    return thinking, answer, parser


def every_split(text):
    """The same text cut at every possible point, and character by character."""
    yield [text]
    for i in range(1, len(text)):
        yield [text[:i], text[i:]]
    yield list(text)


QWEN = "<think>\nTwo apples plus three.\n</think>\n\nThe answer is 5."


@pytest.mark.parametrize("pieces", list(every_split(QWEN)))
def test_think_tags_split_anywhere_give_the_same_result(pieces):
    thinking, answer, parser = split("think-tags", pieces)
    assert thinking == "\nTwo apples plus three.\n"
    assert answer == "The answer is 5."
    assert parser.saw_thinking and parser.closed_thinking and not parser.unclosed


def test_no_half_tag_is_ever_shown():
    parser = ReasoningParser("think-tags")
    shown = []
    for piece in ["<thi", "nk>plan", " more</th", "ink>", "done"]:
        shown += [p.text for p in parser.feed(piece)]
    shown += [p.text for p in parser.flush()]
    assert not any("<" in text or ">" in text for text in shown)
    assert "".join(shown) == "plan moredone"


def test_template_that_opens_think_in_the_prompt_starts_mid_thought():
    # DeepSeek-R1 distills' newer template ends the prompt with "<think>\n".
    thinking, answer, _ = split("think-tags", ["Let me see", "...</think>", "42"], starts_in_thinking=True)
    assert (thinking, answer) == ("Let me see...", "42")


def test_empty_think_block_of_a_switched_off_qwen3():
    thinking, answer, parser = split("think-tags-switch", ["<think>\n\n</think>\n\n", "Paris."])
    assert thinking.strip() == "" and answer == "Paris."
    assert parser.closed_thinking


def test_a_model_that_does_not_think_is_all_answer_even_with_leading_space():
    thinking, answer, parser = split("think-tags", ["  The", " sky is blue."])
    assert thinking == "" and answer == "  The sky is blue."
    assert not parser.saw_thinking


def test_never_closed_thinking_is_all_thinking_and_flagged():
    thinking, answer, parser = split("think-tags", ["<think>", "hmm, and then", " </thin"])
    assert thinking == "hmm, and then </thin" and answer == ""
    assert parser.unclosed


def test_think_in_the_middle_of_an_answer_is_just_text():
    _, answer, _ = split("think-tags", ["I like the <think> tag."])
    assert answer == "I like the <think> tag."


HARMONY = (
    "<|channel|>analysis<|message|>User asks 2+2. Easy.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>4<|return|>"
)


@pytest.mark.parametrize("pieces", list(every_split(HARMONY)))
def test_harmony_channels(pieces):
    thinking, answer, parser = split("harmony", pieces)
    assert (thinking, answer) == ("User asks 2+2. Easy.", "4")
    assert parser.closed_thinking


def test_none_style_passes_everything_as_answer():
    thinking, answer, _ = split("none", ["<think>x</think>", "y"])
    assert (thinking, answer) == ("", "<think>x</think>y")


def test_unknown_style_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="think-tags"):
        ReasoningParser("cot")


@pytest.mark.parametrize(
    "template, style",
    [
        (None, "none"),
        ("{{ '<|im_start|>' }}", "none"),
        ("{% if enable_thinking %}<think>{% endif %}", "think-tags-switch"),
        ("{{ '<think>\\n' }}", "think-tags"),
        ("<|start|>{{ role }}<|channel|>", "harmony"),
    ],
)
def test_style_detected_from_the_chat_template(template, style):
    assert detect_style(template) == style


SCAFFOLD = "First 3 + 4 = 7. Then 7 * 2 = 14.\nThe answer is 14."


@pytest.mark.parametrize("pieces", list(every_split(SCAFFOLD)))
def test_scaffolded_reasoning_until_the_answer_sentence(pieces):
    thinking, answer, parser = split("scaffold", pieces)
    assert thinking == "First 3 + 4 = 7. Then 7 * 2 = 14.\n"
    assert answer == "The answer is 14."
    assert parser.closed_thinking


def test_scaffold_that_never_states_an_answer_is_all_thinking():
    thinking, answer, parser = split("scaffold", ["Let me think", " about it"])
    assert (thinking, answer) == ("Let me think about it", "") and parser.unclosed
