"""Suite files: GSM8K as vendored, and every kind of bad file refused with where and why."""

import pytest

from app.eval.suites import GSM8K_PATH, SuiteError, load_suite, suite_path


def test_vendored_gsm8k_loads_with_its_license():
    problems = load_suite(suite_path("gsm8k"))
    assert len(problems) == 1000
    assert problems[0].answer == "18" and "Janet" in problems[0].question
    assert problems[0].id == "test_dev:1"
    assert (GSM8K_PATH.parent / "LICENSE").read_text().startswith("MIT License")


def test_limit_takes_the_first_n():
    assert [p.id for p in load_suite(GSM8K_PATH, limit=3)] == ["test_dev:1", "test_dev:2", "test_dev:3"]


@pytest.mark.parametrize(
    "content, words",
    [
        ("", "has no problems"),
        ("\n\n", "has no problems"),
        ('{"question": "1+1?", "answer": "#### 2"}\n{not json\n', "line 2 is not valid JSON"),
        ('{"answer": "#### 2"}\n', 'needs a "question"'),
        ('{"question": "1+1?"}\n', 'needs an "answer"'),
        ('{"question": "Why?", "answer": "because"}\n', "no number to score against"),
        ('["question", "answer"]\n', 'needs a "question"'),
    ],
)
def test_bad_suite_files_are_refused_clearly(tmp_path, content, words):
    path = tmp_path / "mine.jsonl"
    path.write_text(content)
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert words in str(caught.value) and caught.value.kind == "bad_suite"


def test_missing_file_directory_and_unknown_suite(tmp_path):
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite(tmp_path / "nope.jsonl")
    with pytest.raises(SuiteError, match="cannot read"):
        load_suite(tmp_path)
    with pytest.raises(SuiteError, match="known suites are gsm8k"):
        suite_path("mmlu")


def test_numeric_answers_are_accepted(tmp_path):
    path = tmp_path / "plain.jsonl"
    path.write_text('{"question": "2*21?", "answer": 42}\n')
    assert load_suite(path)[0].answer == "42"
