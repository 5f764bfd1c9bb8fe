import pytest

from app.reasoning.consistency import describe_vote, majority_vote


def test_majority_wins_and_unreadable_answers_do_not_vote():
    vote = majority_vote(["12", None, "15", "12", None])
    assert (vote.answer, vote.count, vote.k, vote.tally) == ("12", 2, 5, {"12": 2, "15": 1})
    assert vote.agreement == 0.4


def test_tie_goes_to_the_answer_seen_first():
    assert majority_vote(["7", "9", "9", "7"]).answer == "7"


def test_k_equal_1_is_a_single_sample():
    vote = majority_vote(["3"])
    assert (vote.answer, vote.agreement) == ("3", 1.0)


def test_no_readable_answer_at_all():
    vote = majority_vote([None, None])
    assert vote.answer is None and vote.agreement == 0.0


def test_no_samples_is_refused():
    with pytest.raises(ValueError, match="k >= 1"):
        majority_vote([])
# The line a pane shows under k samples: the majority and each sample's answer.


def test_the_vote_names_the_majority_and_every_answer_in_sample_order():
    assert describe_vote(["36", "36", "12", "36"]) == "Majority of 4 samples: 36 (3 of 4 agree) · each: 36, 36, 12, 36"


def test_a_sample_without_an_answer_is_a_dash_and_none_readable_is_said():
    assert describe_vote(["7", None]) == "No majority: no two of the 2 samples agree · each: 7, —"
    assert describe_vote([None, None]) == "No majority: none of the 2 samples gave a readable answer · each: —, —"
