"""One home for the thinking formats: the catalog, the parser and the worker's budget read the same."""

import pytest

from app import catalog, thinking_styles
from app.engines import thinking_budget
from app.engines import thought_parser as parser
from app.reasoning import modes
from app.thinking_styles import detect_style, resolve_style


def test_every_reader_of_the_styles_reads_the_same_lists():
    assert catalog.THINKING_STYLES == thinking_styles.MODEL_STYLES
    assert thinking_styles.STYLES == thinking_styles.MODEL_STYLES + ("scaffold",)
    for style in thinking_styles.STYLES:  # the parser reads every style there is, and no other
        parser.ReasoningParser(style)
    with pytest.raises(ValueError, match="unknown thinking style"):
        parser.ReasoningParser("made-up")
    assert thinking_budget.SCAFFOLD.closes is thinking_styles.SCAFFOLD_MARKERS
    assert modes.minimum_unheld.__module__ == "app.reasoning.modes"
    assert thinking_budget.SCAFFOLD.no_minimum is thinking_styles.SCAFFOLD_MIN_UNSUPPORTED


def test_the_budgets_close_messages_are_written_in_the_parsers_markers():
    # What the worker puts in must read, to the parser, as the end of the thought.
    for style, markers in (("think-tags", thinking_budget.THINK_TAGS), ("harmony", thinking_budget.HARMONY)):
        reader = parser.ReasoningParser(style, starts_in_thinking=True)
        pieces = reader.feed("hmm" + markers.close_message + "42") + reader.flush()
        assert reader.closed_thinking and pieces[-1] == parser.Piece(parser.ANSWER, "42"), style


@pytest.mark.parametrize("template, style", [
    (None, "none"), ("", "none"), ("{{ messages }}", "none"),
    ("<|start|>assistant<|channel|>analysis<|message|>", "harmony"),
    ("<think>", "think-tags"), ("{% if enable_thinking %}<think>{% endif %}", "think-tags-switch"),
])
def test_a_style_is_detected_from_the_template(template, style):
    assert detect_style(template) == style


def test_a_declared_style_wins_over_the_template():
    assert resolve_style("think-tags", "<|channel|>") == "think-tags"
    assert resolve_style(None, "<|channel|>") == "harmony"
