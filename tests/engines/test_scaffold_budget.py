"""A thinking budget on a scaffolded model (one that cannot think natively), with the real bundled
SmolLM2 on both engines: its thought is closed at the budget with "The answer is", which it completes.

The engines run in their own worker processes, as the app runs them; sampling is greedy.
"""

from __future__ import annotations

import dataclasses

import pytest

from app.engines.client import EngineClient
from app.engines.thinking_budget import SCAFFOLD
from app.engines.types import Failed, Finished, GenerationRequest, Sampling, Token
from app.reasoning.modes import thinking_request
from app.thinking_styles import SCAFFOLD_MIN_UNSUPPORTED
from app.runs import RunRecorder

GREEDY = Sampling(temperature=0.0)


@pytest.fixture(scope="module", params=["llama.cpp", "mlx"])
def engine(request, smollm2_spec):
    if request.param == "mlx":
        spec = dataclasses.replace(smollm2_spec, path=request.getfixturevalue("smollm2_mlx_path"), engine="mlx")
    else:
        spec = smollm2_spec
    client = EngineClient()
    info = client.load(spec)
    yield client, info
    client.close()


def scaffolded(question: str, **kwargs) -> GenerationRequest:
    """Asked to think, as the session asks a model whose thinking style is "none"."""
    request = GenerationRequest.from_prompt(question, thinking=True, sampling=GREEDY, **kwargs)
    return thinking_request(request, "none")


def run(client, info, request):
    events = list(client.generate(request))
    recorder = RunRecorder(0, info, "fair", 0.0, "scaffold")
    for event in events:
        recorder.feed(event)
    return events, recorder.result


@pytest.mark.parametrize("budget", [0, 8])
def test_a_scaffolded_thought_is_closed_at_the_budget_and_the_model_answers(engine, budget):
    client, info = engine
    events, result = run(client, info, scaffolded("What is 6 times 7?", max_tokens=40, thinking_budget=budget))
    tokens = [e for e in events if isinstance(e, Token)]
    first_injected = next(i for i, t in enumerate(tokens) if t.injected)
    assert first_injected <= budget  # generated before the close: the thought, at most the budget
    injected = [t for t in tokens if t.injected]
    assert "".join(t.text for t in injected) == SCAFFOLD.close_message  # put in once, in one piece
    assert all(not t.injected for t in tokens[first_injected + len(injected):])
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.thinking_budget_hit and finished.thinking_extended == 0
    assert result.status == "ok" and result.thinking_budget_hit
    assert result.n_thinking_tokens <= budget and result.n_thinking_tokens == first_injected
    assert result.text.startswith("The answer is") and result.n_answer_tokens > 0
    assert result.text[len("The answer is"):].strip()  # it completed the sentence
    assert "Considering the limited time" in result.thinking and not result.thinking_unclosed
    assert result.n_generated == result.n_thinking_tokens + result.n_answer_tokens  # the message is not generated


def test_without_a_budget_a_scaffold_is_bounded_by_max_tokens_alone(engine):
    client, info = engine
    events, result = run(client, info, scaffolded("What is 6 times 7?", max_tokens=12))
    assert not any(isinstance(e, Token) and e.injected for e in events)
    assert not result.thinking_budget_hit and result.n_generated <= 12


def test_a_scaffolded_request_with_a_minimum_fails_clearly_rather_than_pretend(engine):
    client, _ = engine
    request = dataclasses.replace(scaffolded("What is 6 times 7?", max_tokens=8, thinking_budget=8), thinking_min=4)
    events = list(client.generate(request))
    assert isinstance(events[-1], Failed) and events[-1].kind == "bad_request"
    assert events[-1].message == SCAFFOLD_MIN_UNSUPPORTED
    assert not any(isinstance(e, Token) for e in events)


def test_the_issue_hi_on_the_thinking_pane_holds_its_budget(smollm2_spec):
    """The report: "Hi", Thinking pane, budget 256 of 512 thought all 512 tokens; scaled down."""
    from app.session import Session

    with Session([smollm2_spec]) as session:
        session.load()
        request = GenerationRequest.from_prompt("Hi", max_tokens=48, thinking=True, thinking_budget=16,
                                                thinking_min=8, sampling=GREEDY)
        [result] = session.compare(request)
    assert result.status == "ok" and result.strategy == "scaffold" and result.thinking_budget == 16
    assert result.thinking_min is None  # dropped for the scaffold, not pretended
    assert result.thinking_budget_hit and result.n_thinking_tokens <= 16
    assert result.n_answer_tokens > 0 and result.text.startswith("The answer is")
