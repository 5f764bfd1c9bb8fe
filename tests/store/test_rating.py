"""A person's mark on an answer (the pane's right/wrong buttons): evidence for the model's record."""

from __future__ import annotations

import pytest
from store_helpers import INFO, make_result


def test_a_persons_mark_is_stored_wins_over_the_known_answer_and_can_be_taken_back(log, prompt_id, request_):
    run = log.start_run(prompt_id, pane=0, info=INFO, request=request_, mode="fair")
    log.finish_run(run, make_result())
    assert log.list_runs(checked=True) == []  # neither a known answer nor a mark: not evidence
    log.rate_run(run, -1)
    [summary] = log.list_runs(checked=True)
    assert summary.rating == -1 and summary.right is False
    assert log.run_record(run)["run"]["rating"] == -1  # exported with the run
    log.rate_run(run, None)
    assert log.list_runs(checked=True) == []
    with pytest.raises(ValueError, match="1 .right., -1 .wrong. or None"):
        log.rate_run(run, 5)
