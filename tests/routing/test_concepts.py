"""A prompt's kind, in words a person uses: what the router weighs, shows, and keeps a model's record by."""

import pytest

from app.routing.concepts import KINDS, OTHER, kind_of, words_for


@pytest.mark.parametrize("prompt, kind", [
    ("A shop sells pens at $3 each and gives 10% off orders over 20 pens. How much do 25 pens cost in total?",
     "multi_step_arithmetic"),
    ("What is 7 times 8?", "one_step_arithmetic"),
    ("Prove that the sum of two even numbers is even.", "proof"),
    ("Why does this loop never end? i = 0; while i < 10: print(i)", "code"),
    ("Ann, Bo and Cy finished a race. Bo was not last and Cy finished before Ann. Who won?", "puzzle"),
    ("If today is Tuesday, what day of the week will it be 45 days from now?", "date"),
    ("How many ways can 6 people sit around a round table?", "math"),
    ("What is the capital of Peru?", "factual"),
    ("Translate 'good morning' into Italian.", "translation"),
    ("Summarise in one line: The meeting ran long and nothing was decided.", "summary"),
    ("Write a haiku about autumn rain.", "creative"),
    ("hi there, how are you?", "small_talk"),
    ("Tell me about the history of jazz in detail", OTHER),
])
def test_each_kind_is_found_and_named_in_words(prompt, kind):
    assert kind_of(prompt) == kind
    assert words_for(kind) and "_" not in words_for(kind)


def test_every_kind_has_training_and_held_out_prompts_that_lean_its_way():
    from app.eval.train_router import DATA, templated

    for kind in KINDS:
        for part in ("train", "heldout"):
            lines = (DATA / part / f"{kind.name}.txt").read_text(encoding="utf-8").splitlines()
            assert lines[0].startswith("#") and kind.leans in lines[0], (part, kind.name)
            assert len(templated(DATA / part / f"{kind.name}.txt")) >= 25
