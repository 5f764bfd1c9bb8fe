"""Answer extraction on the shapes real model outputs take."""

import pytest

from app.reasoning.answers import extract_answer, is_correct, normalise_number


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Janet sells 16 - 3 - 4 = 9 eggs.\nShe makes 9 * 2 = $18.\n#### 18", "18"),
        ("So the total is \\boxed{42}.", "42"),
        ("Step 1: 3 apples. Step 2: 4 more. The answer is 7.", "7"),
        ("Final answer: $1,234.50", "1234.5"),
        ("**Answer:** 15 dollars", "15"),
        ("She pays 20 - 5 = 15 dollars in total.", "15"),  # last number
        ("It drops to -3 degrees.", "-3"),
        ("Each gets 3/4 of a pizza.", "0.75"),
        ("The answer is 12. (I first tried 10, then 11.)", "12"),  # explicit beats last number
        ("1. Add them: 2 + 2 = 4\n2. Done.", "4"),
        ("I cannot answer that.", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


# What the bundled SmolLM2 135M really wrote for the first three GSM8K problems (greedy, 96 tokens,
# cut off mid-sentence): wrong, but each still yields the number a grader would read.
REAL_SMOLLM2_OUTPUTS = [
    (
        "Janet lays 16 eggs per day, so she lays 16 x 3 = 48 eggs per day.\nShe eats three for breakfast "
        "every morning, so she eats 48 x 3 = 184 eggs per day.\nShe bakes muffins for her friends every day "
        "with four, so she bakes 184 x 4 = 720 muffins per day.\nShe sells the remainder at the",
        "720",
    ),
    (
        "To solve this problem, we need to calculate the total amount of fiber required to create the robe."
        "\n\nThe robe is made of 2 bolts of blue fiber and 1 bolt of white fiber. So, the total amount of "
        "fiber required is 2 * 1 = 2 bolts of blue fiber * 2 bolts of white fiber = 4 bolts of blue fiber."
        "\n\nThe robe takes 2 bolts of blue fiber * 2 bolts of white fiber =",
        "2",
    ),
    (
        "To find the profit, we need to calculate the difference between the original price of the house "
        "($80,000) and the new price after the 150% increase.\n\nThe original price of the house was "
        "$80,000.  So, the new price is $80,000 - $50,000 = $15,000.\n\nThe profit is the difference "
        "between the",
        "15000",
    ),
]


@pytest.mark.parametrize("text, expected", REAL_SMOLLM2_OUTPUTS)
def test_real_smollm2_outputs(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "raw, normal",
    [("$1,000", "1000"), ("7.", "7"), ("3.50", "3.5"), ("0.125", "0.125"), ("1/3", "0.333333"), ("abc", None), ("", None)],
)
def test_normalise_number(raw, normal):
    assert normalise_number(raw) == normal


def test_is_correct_compares_numbers_not_strings():
    assert is_correct("18", "18") and is_correct("18.0", "18") and is_correct("0.333333", "0.333333")
    assert not is_correct("17", "18") and not is_correct(None, "18")


def test_check_answer_against_a_known_answer_typed_in_the_app():
    from app.reasoning.answers import check_answer

    assert check_answer("Step 1: 3 * 12 = 36. 36 - 7 = 29. The answer is 29.", "29")
    assert check_answer("So he has 1,250 dollars left.", "$1250")
    assert not check_answer("The answer is 30.", "29")
    assert not check_answer("I am not sure.", "29")
    assert check_answer("The capital of France is Paris.", "paris")
    assert not check_answer("The capital of France is Lyon.", "Paris")
    assert not check_answer("anything", "   ")
