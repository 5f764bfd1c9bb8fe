"""Split a streamed answer into thinking and answer, for the formats real models use.

- "think-tags": <think> … </think> then the answer (DeepSeek-R1 distills, Qwen3, SmolLM3). When the
  chat template already opened <think> in the prompt, the output starts mid-thought.
- "harmony": gpt-oss channels, <|channel|>analysis<|message|> … <|end|> then
  <|start|>assistant<|channel|>final<|message|> … ; analysis and commentary are thinking.
- "scaffold": a model that cannot think natively, prompted to reason first (reasoning/modes.py):
  thinking until it writes "The answer is", which starts the answer.
- "none": a model that never thinks; everything is answer.

Markers can arrive split across tokens ("</th" + "ink>"): what could still become a marker is
held back until the next piece settles it, so no half tag is ever shown.

It runs in the worker, once per request (app/engines/pipeline.py): each Token event carries the
pieces it settled and the channel the reply is in, so no reader parses the stream again. The styles
and their markers are app/thinking_styles.py's; the worker's budget reads the same.
"""

from __future__ import annotations

from app.engines.stop_strings import held_suffix_length
from app.engines.types import ANSWER, THINKING, Finished, Piece, Token
from app.thinking_styles import (
    HARMONY_ANSWER_CHANNELS,
    HARMONY_CHANNEL,
    HARMONY_DROPPED,
    HARMONY_MESSAGE,
    HARMONY_START,
    SCAFFOLD_MARKERS,
    STYLES,
    THINK_CLOSE,
    THINK_OPEN,
)

__all__ = ["ANSWER", "THINKING", "Piece", "ReasoningParser", "StreamSplit"]

class ReasoningParser:
    """Feed text as it streams; get back labelled pieces. Call flush() at the end."""

    def __init__(self, style: str = "think-tags", starts_in_thinking: bool = False) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown thinking style {style!r}; known: {', '.join(STYLES)}")
        self.style = "think-tags" if style == "think-tags-switch" else style
        starts_in_thinking = starts_in_thinking or style == "scaffold"
        self.channel = THINKING if starts_in_thinking else ANSWER
        self.saw_thinking = starts_in_thinking
        self.closed_thinking = False
        self._held = ""
        self._at_start = not starts_in_thinking  # only a leading <think> opens thinking
        self._after_close = False
        self._harmony_header = ""  # the marker that opened a header ("<|start|>" or "<|channel|>")

    @property
    def unclosed(self) -> bool:
        """Thinking started and never ended (the model ran out of tokens mid-thought)."""
        return self.channel == THINKING and self.saw_thinking and not self.closed_thinking

    def feed(self, text: str) -> list[Piece]:
        if self.style == "none":
            return [Piece(ANSWER, text)] if text else []
        self._held += text
        return self._parse(final=False)

    def flush(self) -> list[Piece]:
        if self.style == "none":
            return []
        pieces = self._parse(final=True)
        self._held = ""
        return pieces

    def _parse(self, final: bool) -> list[Piece]:
        if self.style == "harmony":
            return self._harmony(final)
        if self.style == "scaffold":
            return self._scaffold(final)
        return self._think_tags(final)

    # -- scaffolded reasoning ---------------------------------------------------------------

    def _scaffold(self, final: bool) -> list[Piece]:
        out: list[Piece] = []
        if self.channel == ANSWER:
            self._emit(out, ANSWER, self._held)
            self._held = ""
            return out
        found = [i for m in SCAFFOLD_MARKERS if (i := self._held.find(m)) >= 0]
        if found:
            index = min(found)
            self._emit(out, THINKING, self._held[:index])
            self._emit(out, ANSWER, self._held[index:])  # "The answer is 5" reads as the answer
            self.channel, self.closed_thinking, self._held = ANSWER, True, ""
            return out
        keep = 0 if final else held_suffix_length(self._held, SCAFFOLD_MARKERS)
        self._emit(out, THINKING, self._held[: len(self._held) - keep])
        self._held = self._held[len(self._held) - keep :]
        return out

    # -- <think> tags ----------------------------------------------------------------------

    def _think_tags(self, final: bool) -> list[Piece]:
        out: list[Piece] = []
        while self._held:
            if self._at_start:
                stripped = self._held.lstrip()
                if not stripped and not final:
                    return out  # only whitespace so far: wait to see whether <think> comes
                if stripped.startswith(THINK_OPEN):
                    self._held = stripped[len(THINK_OPEN) :]
                    self.channel, self.saw_thinking, self._at_start = THINKING, True, False
                    continue
                if THINK_OPEN.startswith(stripped) and not final:
                    return out  # "<thi" so far
                self._at_start = False
            marker = THINK_CLOSE if self.channel == THINKING else None
            if marker is None:
                if self._after_close:  # "</think>\n\n" separates; the newlines are not answer
                    self._held = self._held.lstrip("\n")
                    if not self._held:
                        break
                    self._after_close = False
                out.append(Piece(ANSWER, self._held))
                self._held = ""
                break
            index = self._held.find(marker)
            if index >= 0:
                self._emit(out, THINKING, self._held[:index])
                self._held = self._held[index + len(marker) :]
                self.channel, self.closed_thinking, self._after_close = ANSWER, True, True
                continue
            keep = 0 if final else held_suffix_length(self._held, (marker,))
            self._emit(out, THINKING, self._held[: len(self._held) - keep])
            self._held = self._held[len(self._held) - keep :]
            break
        return out

    # -- harmony channels ------------------------------------------------------------------

    def _harmony(self, final: bool) -> list[Piece]:
        out: list[Piece] = []
        markers = (HARMONY_START, HARMONY_CHANNEL, HARMONY_MESSAGE, *HARMONY_DROPPED)
        while self._held:
            if self._harmony_header:
                # A header runs to <|message|>: "analysis", or "assistant<|channel|>final".
                end = self._held.find(HARMONY_MESSAGE)
                if end < 0:
                    if final:
                        self._held = ""
                    return out
                header = self._harmony_header + self._held[:end]
                if HARMONY_CHANNEL in header:
                    words = header.split(HARMONY_CHANNEL)[-1].split()
                    self._set_harmony_channel(words[0] if words else "")
                self._held = self._held[end + len(HARMONY_MESSAGE) :]
                self._harmony_header = ""
                continue
            found = [(i, m) for m in markers if (i := self._held.find(m)) >= 0]
            if found:
                index, marker = min(found, key=lambda f: (f[0], -len(f[1])))
                self._emit(out, self.channel, self._held[:index])
                self._held = self._held[index + len(marker) :]
                if marker in (HARMONY_START, HARMONY_CHANNEL):
                    self._harmony_header = marker
                continue
            keep = 0 if final else held_suffix_length(self._held, markers)
            self._emit(out, self.channel, self._held[: len(self._held) - keep])
            self._held = self._held[len(self._held) - keep :]
            break
        return out

    def _set_harmony_channel(self, name: str) -> None:
        self.channel = ANSWER if name in HARMONY_ANSWER_CHANNELS else THINKING
        if self.channel == THINKING:
            self.saw_thinking = True
        elif self.saw_thinking:
            self.closed_thinking = True

    @staticmethod
    def _emit(out: list[Piece], channel: str, text: str) -> None:
        if text:
            out.append(Piece(channel, text))


class StreamSplit:
    """A reply's events as the worker sends them: each Token with the pieces it settled and the
    channel the reply is in after it; the Finished event with what was still held, and whether the
    thought never closed. The pipeline makes every event through one (so do tests that stand in
    for a worker)."""

    def __init__(self, style: str, starts_in_thinking: bool = False) -> None:
        self.parser = ReasoningParser(style, starts_in_thinking=starts_in_thinking)

    def token(self, t: float, text: str, token: int, **kwargs) -> Token:
        pieces = tuple(self.parser.feed(text))
        return Token(t, text, token, pieces=pieces, channel=self.parser.channel, **kwargs)

    def finished(self, t: float, finish_reason: str, n_generated: int, engine_decode_s: float,
                 text_tail: str = "", **kwargs) -> Finished:
        pieces = tuple(self.parser.feed(text_tail) + self.parser.flush())
        return Finished(t, finish_reason, n_generated, engine_decode_s, text_tail, pieces=pieces,
                        thinking_unclosed=self.parser.unclosed, **kwargs)
