"""k samples of one prompt, decoded together: the per-sequence rules over a batch decoder.

Each sequence keeps what the pipeline keeps for one reply (pipeline.py's _Run): its token limit,
stop strings, thinking budget and minimum, and its thought/answer split; the same rules decide, per
token, whether it is kept, refused (a thought closed short of its minimum: "Wait" goes in), or ends
the reply. What a rule puts into one reply (a budget's message) goes into that sequence alone while
the others decode on. A sequence that ends leaves the batch; a cancel ends them all between steps.

The decoder (llama_batch.LlamaBatch) knows the library: start() evaluates the prompt once for every
sequence, sample(i) draws sequence i's next token, feed() runs one step for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from app.engines.backend import PassCancelled, Step
from app.engines.stop_strings import StopMatcher
from app.engines.thinking_budget import CLOSE_THOUGHT, EXTEND_THOUGHT, ThinkingBudget, pass_end
from app.engines.thought_parser import StreamSplit
from app.engines.types import EngineError, Event, Failed, Finished, GenerationRequest, Token, now


@dataclass
class Reply:
    """One sample's reply as it grows: pipeline.py's _Run, for one sequence of the batch."""

    index: int
    max_new: int
    stops: StopMatcher
    budget: ThinkingBudget
    split: StreamSplit
    n_gen: int = 0
    finish: str | None = None
    ready: bool = True  # it has logits to draw from (False while a message it was given waits to go in)


def generate_samples(
    decoder, request: GenerationRequest, prompt: list[int], k: int, max_new: int, threads: int,
    make_reply: Callable[[int], "Reply"], cancelled: Callable[[], bool],
) -> Iterator[Event]:
    """Every sample's events, interleaved as they are made; each Token and Finished names its sample."""
    replies = [make_reply(i) for i in range(k)]
    try:
        yield decoder.start(request, prompt, k, max_new, threads)
        feeds: dict[int, list[int]] = {}
        for reply in replies:  # a budget of 0: the thought is closed before any token
            if reply.budget.must_close_now():
                yield from _put_in(decoder, request, reply, CLOSE_THOUGHT, feeds)
        while True:
            if feeds:
                decoder.feed(feeds)
                for i in feeds:
                    replies[i].ready = True
                feeds = {}
            live = [r for r in replies if r.finish is None]
            if not live:
                break
            if cancelled():
                for reply in live:
                    reply.finish = "cancelled"
                    yield _finished(decoder, reply)
                break
            for reply in live:
                if not reply.ready:
                    continue
                yield from _next_token(decoder, request, reply, decoder.sample(reply.index), feeds)
                if reply.finish is not None:
                    yield _finished(decoder, reply)
    except PassCancelled:  # stopped inside the library, e.g. half-way through the prompt
        for reply in replies:
            if reply.finish is None:
                reply.finish = "cancelled"
                yield _finished(decoder, reply)
    except EngineError as exc:
        yield Failed(now(), exc.kind, str(exc))
    finally:
        decoder.close()


def _next_token(decoder, request, reply: Reply, step: Step, feeds: dict[int, list[int]]) -> Iterator[Event]:
    """The pipeline's rules for one token (pipeline.PipelineEngine._pass), on one sequence."""
    if step.end_of_turn and not reply.budget.refuses("", end_of_turn=True):
        reply.finish = "stop"
        return
    if step.end_of_turn or reply.budget.refuses(step.piece):  # refused: the thought must go on
        yield from _put_in(decoder, request, reply, EXTEND_THOUGHT, feeds)
        return
    reply.n_gen += 1
    shown, hit = reply.stops.feed(decoder.text(reply.index, step))
    yield replace(reply.split.token(step.t, shown, step.token), sample=reply.index)
    feeds[reply.index] = [step.token]
    reply.ready = False
    end = pass_end(hit, reply.n_gen, reply.max_new, reply.budget, shown)
    if end == CLOSE_THOUGHT:
        yield from _put_in(decoder, request, reply, CLOSE_THOUGHT, feeds)
    elif end is not None:
        reply.finish = end
        feeds.pop(reply.index, None)  # nothing more to decode for it


def _put_in(decoder, request, reply: Reply, kind: str, feeds: dict[int, list[int]]) -> Iterator[Event]:
    """The thought's message (closing it, or "Wait"), shown and queued for this sequence only."""
    message = reply.budget.message(kind, request.thinking_budget_message, request.thinking_continue_message)
    tokens = decoder.tokens_of(message)
    for token, text in tokens:
        yield replace(reply.split.token(now(), text, token, injected=True), sample=reply.index)
    reply.budget.injected(message, kind)
    feeds[reply.index] = feeds.get(reply.index, []) + [token for token, _ in tokens]
    reply.ready = False


def _finished(decoder, reply: Reply) -> Finished:
    tail = "" if reply.finish == "stop" else reply.stops.feed(decoder.tail(reply.index))[0] + reply.stops.flush()
    return replace(reply.split.finished(now(), reply.finish, reply.n_gen, decoder.decode_s(), tail,
                                        thinking_budget_hit=reply.budget.forced,
                                        thinking_extended=reply.budget.extensions), sample=reply.index)


def tagged(event: Event, sample: int, note: str, final: bool = True) -> Event:
    """The event as sample `sample`'s, its Finished carrying the note on how the samples ran and
    whether it is the request's last (the worker's client reads until then)."""
    if isinstance(event, Token):
        return replace(event, sample=sample)
    if isinstance(event, Finished):
        return replace(event, sample=sample, samples_note=note, final=final)
    return event


def samples_in_turn(k: int, run_sample: Callable[[int], Iterator[Event]], note: str) -> Iterator[Event]:
    """k samples where an engine cannot batch them: each run to its end, one after another, its
    events named; a failure ends the request, and a cancel ends the samples not run yet with it."""
    for i in range(k):
        for event in run_sample(i):
            yield tagged(event, i, note, final=i == k - 1)
            if isinstance(event, Failed):
                return
            if isinstance(event, Finished) and event.finish_reason == "cancelled":
                for j in range(i + 1, k):
                    yield Finished(now(), "cancelled", 0, 0.0, sample=j, samples_note=note, final=j == k - 1)
                return
