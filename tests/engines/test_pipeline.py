"""The shared request walk (app/engines/pipeline.py) over a scripted stand-in backend: its events,
each way it fails, and the budget, minimum, stop strings, token limit and cancel it holds between
tokens. No model, no library: a backend here is one small class, as a third real one would be."""

from __future__ import annotations

import ctypes
from dataclasses import replace

import pytest

from app.engines import backends
from app.engines.backend import Ending, PassCancelled, Rendered, Step
from app.engines.backends import BACKENDS, BackendKind, Preflight, backend_kind, make_engine, preflight
from app.engines.mlx_engine import MlxBackend
from app.engines.pipeline import PipelineEngine
from app.engines.thinking_budget import DEFAULT_CONTINUE_MESSAGE, THINK_TAGS
from app.engines.types import (
    EngineError,
    Failed,
    Finished,
    GenerationRequest,
    ModelInfo,
    ModelSpec,
    PromptDone,
    Started,
    Token,
)
from app.thinking_styles import resolve_style

END = "<end-of-turn>"


class ScriptedBackend:
    """Tokens are characters of the prompt; each pass says the next line of `script` (a list of
    pieces, END for an end of turn). What the pipeline did to it is kept in `log`."""

    script: list[list[str]] = []

    def __init__(self, cancel_flag) -> None:
        self.cancel_flag, self.log, self.lines = cancel_flag, [], []
        self.spec: ModelSpec | None = None
        self.render_error: Exception | None = None
        self.pass_error: Exception | None = None

    def load(self, spec: ModelSpec, header=None) -> ModelInfo:
        self.spec, self.lines = spec, [list(line) for line in self.script]
        return ModelInfo(spec.label, spec.path, "stand-in", "script", 0, "none", 0, spec.n_ctx, spec.n_ctx, "catalog",
                         ("CPU",), "CPU", 0, 0, 1, 1, 0.0, "1", resolve_style(spec.thinking, spec.chat_template))

    def render(self, request: GenerationRequest) -> Rendered:
        if self.render_error:
            raise self.render_error
        if self.spec.chat_template == "spin":  # a template that never ends
            while True:
                pass
        return Rendered("".join(f"[{m.content}]" for m in request.messages) + (self.spec.chat_template or ""), True)

    def tokenize(self, rendered: Rendered) -> list[int]:
        self.log.append(("prompt", rendered.text))
        return [ord(c) for c in rendered.text]

    def context_size(self) -> int:
        return self.spec.n_ctx

    def begin(self, request: GenerationRequest, prompt: list[int]) -> int:
        self.log.append(("begin", len(prompt)))
        self.prompt_done = False
        return 3

    def decode(self, request: GenerationRequest, limit: int):
        if self.pass_error:
            raise self.pass_error
        self.log.append(("pass", limit))
        line = self.lines.pop(0) if self.lines else []
        for i, piece in enumerate(line):
            if not self.prompt_done:
                self.prompt_done = True
                yield PromptDone(float(i), 0, 0, 0.0)
            yield Step(float(i), i, end_of_turn=piece == END, piece=piece)
        self.log.append(("pass ended",))  # only when the pipeline let the pass run out

    def take(self, step: Step) -> str:
        return step.piece

    def take_back(self, step: Step) -> None:
        self.log.append(("took back", step.piece))

    def put_in(self, text: str) -> list[tuple[int, str]]:
        self.log.append(("put in", text))
        return [(-1, text)]

    def finish(self) -> Ending:
        return Ending("", 0.25)

    def close(self) -> None:
        self.log.append(("closed",))


def loaded(script, cancel_flag=None, **spec) -> PipelineEngine:
    ScriptedBackend.script = script
    engine = PipelineEngine(ScriptedBackend, cancel_flag)
    engine.load(ModelSpec(path="script", name="scripted", **{"n_ctx": 64, **spec}))
    return engine


def run(engine, prompt="hi", **kwargs):
    return list(engine.generate(GenerationRequest.from_prompt(prompt, **kwargs)))


def text(events):
    return "".join(e.text for e in events if isinstance(e, Token))


def test_the_walk_of_a_request_started_prompt_done_tokens_finished():
    engine = loaded([["Par", "is", END]])
    events = run(engine, max_tokens=8)
    assert [type(e) for e in events] == [Started, PromptDone, Token, Token, Finished]
    assert (events[0].n_prompt_tokens, events[0].n_threads, events[0].prompt_opens_thinking) == (4, 3, False)
    assert text(events) == "Paris" and not any(e.injected for e in events if isinstance(e, Token))
    assert (events[-1].finish_reason, events[-1].n_generated, events[-1].engine_decode_s) == ("stop", 2, 0.25)
    assert engine.backend.log[:3] == [("prompt", "[hi]"), ("begin", 4), ("pass", 8)]


@pytest.mark.parametrize("prompt, kind, said", [
    ("  \n", "empty_prompt", "the prompt is empty"),
    ("x" * 80, "prompt_too_long", "the prompt is 82 tokens but scripted was loaded with a 64-token context"),
])
def test_a_prompt_that_cannot_run_fails_before_it_starts(prompt, kind, said):
    events = run(loaded([["never"]]), prompt)
    assert [(type(e), e.kind) for e in events] == [(Failed, kind)] and said in events[0].message


def test_a_failing_template_and_a_nonsense_budget_fail_the_run_clearly():
    engine = loaded([["never"]])
    engine.backend.render_error = KeyError("messages")
    [failed] = run(engine)
    assert (failed.kind, failed.message) == ("template", "scripted's chat template failed: 'messages'")
    engine.backend.render_error = None
    [failed] = run(engine, thinking_min=9, thinking_budget=3)
    assert failed.kind == "bad_request" and "longer than the budget" in failed.message


def test_a_template_that_never_ends_is_stopped_by_a_cancel():
    flag = ctypes.c_byte(1)  # the parent's flag: the engine does not clear it
    events = run(loaded([["never"]], flag, chat_template="spin"))
    assert [(type(e), e.finish_reason) for e in events] == [(Finished, "cancelled")]


def test_an_engine_that_is_not_loaded_or_closed_says_so():
    engine = loaded([["a"]])
    engine.close()
    assert [(type(e), e.kind) for e in run(engine)] == [(Failed, "not_loaded")]
    assert engine.backend.log[-1] == ("closed",)


def test_a_backend_failure_mid_run_fails_it_and_a_cancel_inside_the_library_ends_it_cancelled():
    engine = loaded([["a"]])
    engine.backend.pass_error = EngineError("the library broke", kind="engine")
    events = run(engine)
    assert type(events[0]) is Started and (events[-1].kind, events[-1].message) == ("engine", "the library broke")
    engine.backend.pass_error = PassCancelled()
    events = run(engine)
    assert (events[-1].finish_reason, events[-1].n_generated) == ("cancelled", 0)


def test_a_cancel_between_tokens_ends_the_pass_at_once():
    flag = ctypes.c_byte(0)
    engine = loaded([["a", "b", "c"]], flag)
    events = []
    for event in engine.generate(GenerationRequest.from_prompt("hi")):
        events.append(event)
        if isinstance(event, Token):
            flag.value = 1
    assert text(events) == "a" and (events[-1].finish_reason, events[-1].n_generated) == ("cancelled", 1)
    assert ("pass ended",) not in engine.backend.log  # the pass was closed, not run out


def test_max_tokens_and_stop_strings_end_the_pass():
    engine = loaded([["1", "2", "3", "4"], ["4", ",", "5", ",", "6"]])
    ended = run(engine, max_tokens=2)
    assert (text(ended), ended[-1].finish_reason, ended[-1].n_generated) == ("12", "length", 2)
    stopped = run(engine, stop=("5",))
    assert (text(stopped) + stopped[-1].text_tail, stopped[-1].finish_reason) == ("4,", "stop")


def test_a_spent_budget_puts_in_the_close_and_the_next_pass_answers():
    engine = loaded([["<think>", "a", "b", "c"], ["42", END]], thinking="think-tags")
    events = run(engine, thinking_budget=2)
    injected = [e for e in events if isinstance(e, Token) and e.injected]
    assert [e.text for e in injected] == [THINK_TAGS.close_message]
    assert text(events) == "<think>a" + THINK_TAGS.close_message + "42"
    finished = events[-1]
    assert finished.thinking_budget_hit and finished.n_generated == 3 and finished.finish_reason == "stop"


def test_an_early_end_of_the_thought_is_taken_back_and_answered_with_wait():
    engine = loaded([["x", END], ["y", "</think>", "z", END]], thinking="think-tags", chat_template="<think>")
    events = run(engine, thinking_min=2)
    assert events[0].prompt_opens_thinking
    assert ("took back", END) in engine.backend.log and ("put in", DEFAULT_CONTINUE_MESSAGE) in engine.backend.log
    assert text(events) == "x" + DEFAULT_CONTINUE_MESSAGE + "y</think>z"
    assert events[-1].thinking_extended == 1 and events[-1].n_generated == 4  # "Wait" is not generated


def test_direct_mode_prefills_an_empty_thought_where_the_template_has_no_switch():
    engine = loaded([["ok", END]], thinking="think-tags", chat_template="<think>")
    events = run(engine, thinking=False)
    assert engine.backend.log[0] == ("prompt", "[hi]<think>\n\n</think>\n\n")
    assert not events[0].prompt_opens_thinking


def test_the_style_the_load_reports_is_the_one_the_budget_holds():
    # Detected from the template once, at load: a harmony thought is closed with harmony's markers.
    engine = loaded([["a", "b"], ["c", END]], chat_template="<|channel|>analysis<|message|>")
    assert engine._style == "harmony"
    events = run(engine, thinking_budget=1)
    assert "<|start|>assistant<|channel|>final<|message|>" in text(events)


# -- the registry ---------------------------------------------------------------------------


def test_a_third_backend_is_one_entry_in_the_registry(monkeypatch):
    checked = []

    def check(spec, header):
        checked.append(spec.path)
        return Preflight(None, spec.chat_template, spec.n_ctx)

    monkeypatch.setitem(BACKENDS, "stand-in", BackendKind("stand-in", f"{__name__}:ScriptedBackend", check))
    spec = ModelSpec(path="script", engine="stand-in", chat_template="<think>")
    assert preflight(spec) == Preflight(None, "<think>", 4096) and checked == ["script"]
    ScriptedBackend.script = [["hi", END]]
    engine = make_engine("stand-in")
    assert isinstance(engine.backend, ScriptedBackend)
    assert engine.load(spec).thinking_style == "think-tags"


def test_an_unknown_engine_is_refused_in_the_parent():
    with pytest.raises(EngineError, match="unknown engine 'vllm': this build knows 'llama.cpp' and 'mlx'") as caught:
        preflight(ModelSpec(path="x", engine="vllm"))
    assert caught.value.kind == "load_failed"


def test_the_mlx_backend_is_made_without_mlx_being_imported():
    # Its library is imported at load, in the worker: the registry and the parent never need it.
    assert isinstance(make_engine("mlx").backend, MlxBackend)
    assert backend_kind("mlx").backend == "app.engines.mlx_engine:MlxBackend"


def test_the_gguf_preflight_reads_the_header_once_and_hands_it_on(smollm2_spec, monkeypatch):
    prepared = preflight(smollm2_spec)
    assert prepared.header.architecture == "llama" and prepared.header.context_length == 8192
    assert prepared.n_ctx == 2048 and prepared.chat_template == prepared.header.chat_template
    monkeypatch.setattr(backends, "read_gguf_header", lambda path: pytest.fail("read again"))
    assert preflight(replace(smollm2_spec, chat_template="mine"), prepared.header).chat_template == "mine"


def test_the_mlx_preflight_checks_the_folder(tmp_path):
    with pytest.raises(EngineError, match="not a folder") as caught:
        preflight(ModelSpec(path=str(tmp_path / "nowhere"), engine="mlx"))
    assert caught.value.kind == "missing_model_file"


def _split(events):
    """The thought and the answer, from the pieces the events carry (what every reader takes)."""
    pieces = [p for e in events if isinstance(e, (Token, Finished)) for p in e.pieces]
    return ("".join(p.text for p in pieces if p.channel == "thinking"),
            "".join(p.text for p in pieces if p.channel == "answer"))


def test_the_worker_splits_the_reply_once_and_every_event_carries_its_pieces():
    # The budget's close message is put in, and it splits as a close: thought, then answer.
    engine = loaded([["<think>", "a", "b", "c"], ["42", END]], thinking="think-tags")
    events = run(engine, thinking_budget=2)
    thought, answer = _split(events)
    assert thought == "a" + THINK_TAGS.close_message.split("</think>")[0] and answer.strip() == "42"
    tokens = [e for e in events if isinstance(e, Token)]
    assert tokens[0].channel == "thinking" and tokens[-1].channel == "answer"
    assert not events[-1].thinking_unclosed


def test_a_reply_cut_off_mid_thought_says_so_at_its_end_and_keeps_the_half_marker_as_thought():
    engine = loaded([["<think>", "hmm", "</th"]], thinking="think-tags")
    events = run(engine, max_tokens=3)
    assert events[-1].finish_reason == "length" and events[-1].thinking_unclosed
    assert _split(events) == ("hmm</th", "")  # held back while it could become "</think>", given at the end


def test_a_scaffolded_request_is_split_at_its_answer_marker():
    engine = loaded([["Add", " them", ".", " The answer is", " 4", END]])
    events = run(engine, thinking=True, strategy="scaffold")
    assert _split(events) == ("Add them. ", "The answer is 4")
