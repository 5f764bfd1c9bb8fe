"""k sequences of one prompt in one llama.cpp context, decoded together (engines/batched.py drives it).

The prompt is evaluated once for all sequences; then each decode step carries every live sequence's
next token(s) in one llama_decode, which is where the speed comes from: the weights are read once per
step for all of them. The KV cache is laid out by `kv_layout`. Each sequence samples from its own
logits with its own sampler chain (seeded seed + i), ordered as llama-cpp-python's own: penalties, top-k, top-p, min-p, temperature, then a draw (or
greedy at temperature 0). The context is made for the request, sized to the prompt plus k replies,
and freed after it: the loaded model's own context is left as it was.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from app.engines.backend import PassCancelled, Step
from app.engines.llama_engine import _piece
from app.engines.types import EngineError, GenerationRequest, PromptDone, now

PAD = 256  # the context is rounded up to this (llama.cpp pads its KV cache too)
# Flash attention where llama.cpp supports it (-1: its choice). k sequences attend over k times the
# cells: measured on 2 CPU cores (SmolLM2 135M), it makes k = 8 about 1.2x faster than without. None:
# as the loaded model's context (a sample then computed exactly as the one-sample path computes it).
FLASH_ATTENTION: int | None = -1


@dataclass(frozen=True)
class KvLayout:
    """How k sequences' KV cache is laid out: `n_ctx` cells in all, in one buffer (unified) or one each."""

    n_ctx: int
    unified: bool


def kv_layout(k: int, n_prompt: int, max_new: int) -> KvLayout:
    """A buffer per sequence (the prompt copied into each after it is evaluated once) when the prompt is
    no longer than a reply: each token then attends over its own sequence's cells only, measured 3-4%
    faster at k = 8 (SmolLM2 135M, 2 CPU cores, 128 tokens a sample). A longer prompt is shared in one
    unified buffer instead, so k copies of it do not cost memory that k replies would not."""
    unified = n_prompt > max_new
    cells = n_prompt + k * (max_new + 1) if unified else k * (-(-(n_prompt + max_new + 1) // PAD) * PAD)
    return KvLayout(-(-cells // PAD) * PAD, unified)


@dataclass
class _Seq:
    sampler: object
    n_past: int  # its next position
    logits_at: int = -1  # where its latest logits sit in the last batch; -1: none to sample from
    decoder: object = None


class LlamaBatch:
    """One request's k sequences over a loaded llama-cpp-python model (LlamaCppBackend._llm)."""

    def __init__(self, llm, cancel_flag, special: bool) -> None:
        self._llm, self._cancel, self._special = llm, cancel_flag, special
        self._ctx = None
        self._batch = None
        self._seqs: list[_Seq] = []
        self._capacity = 0

    def start(self, request: GenerationRequest, prompt: list[int], k: int, max_new: int, threads: int) -> PromptDone:
        """Make the context, evaluate the prompt once for every sequence, and say what that took."""
        import llama_cpp

        layout = kv_layout(k, len(prompt), max_new)
        unified, n_ctx = layout.unified, layout.n_ctx
        # The loaded model's own context settings (KV cache types, rope…); its size, sequences and
        # attention kernel are the batch's own.
        params = llama_cpp.llama_context_params.from_buffer_copy(self._llm.context_params)
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = max(min(len(prompt), 2048), k * 8, 64)
        params.n_seq_max = k
        params.kv_unified = unified
        if FLASH_ATTENTION is not None:
            params.flash_attn_type = FLASH_ATTENTION
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = False
        ctx = llama_cpp.llama_init_from_model(self._llm._model.model, params)
        if not ctx:
            raise EngineError(f"llama.cpp could not make a context of {n_ctx} tokens for {k} samples: "
                              "lower k or max tokens", kind="engine")
        self._ctx = ctx
        self._abort = llama_cpp.ggml_abort_callback(lambda _data: bool(self._cancel.value))
        llama_cpp.llama_set_abort_callback(ctx, self._abort, None)
        self._capacity = params.n_batch
        self._batch = llama_cpp.llama_batch_init(self._capacity, 0, k)
        self._seqs = [_Seq(self._sampler(request.for_sample(i)), 0,
                           decoder=codecs.getincrementaldecoder("utf-8")(errors="replace")) for i in range(k)]
        t0 = now()
        for start in range(0, len(prompt), params.n_batch):  # the prompt in batches, every sequence named
            chunk = prompt[start:start + params.n_batch]
            self._clear()
            for j, token in enumerate(chunk):
                last = start + j == len(prompt) - 1
                self._add(token, start + j, range(k) if unified else (0,), last)
            self._decode()
        if not unified:
            memory = llama_cpp.llama_get_memory(ctx)
            for i in range(1, k):
                llama_cpp.llama_memory_seq_cp(memory, 0, i, -1, -1)
        # Past the prompt the driver looks at the cancel flag between steps: a Python callback on
        # every graph node of every step would cost decode speed for nothing.
        llama_cpp.llama_set_abort_callback(ctx, llama_cpp.ggml_abort_callback(), None)
        for seq in self._seqs:
            seq.n_past, seq.logits_at = len(prompt), self._batch.n_tokens - 1
        return PromptDone(now(), len(prompt), len(prompt), now() - t0)

    def _sampler(self, request: GenerationRequest):
        """A sample's own chain, from its own request (request.for_sample: its seed and temperature)."""
        import llama_cpp

        seed = request.seed
        s = request.sampling
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = lambda sampler: llama_cpp.llama_sampler_chain_add(chain, sampler)  # noqa: E731
        if s.repeat_penalty != 1.0:
            add(llama_cpp.llama_sampler_init_penalties(64, s.repeat_penalty, 0.0, 0.0))
        if s.temperature <= 0.0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            add(llama_cpp.llama_sampler_init_top_k(s.top_k))
            add(llama_cpp.llama_sampler_init_top_p(s.top_p, 1))
            add(llama_cpp.llama_sampler_init_min_p(s.min_p, 1))
            add(llama_cpp.llama_sampler_init_temp(s.temperature))
            add(llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def sample(self, i: int) -> Step:
        """Sequence i's next token, drawn from its latest logits (and accepted by its chain)."""
        import llama_cpp

        seq = self._seqs[i]
        token = llama_cpp.llama_sampler_sample(seq.sampler, self._ctx, seq.logits_at)
        t = now()
        vocab = self._llm._model.vocab
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            return Step(t, token, end_of_turn=True)
        raw = _piece(llama_cpp, vocab, token, special=self._special)
        return Step(t, token, piece=raw.decode("utf-8", "replace"), raw=raw)

    def text(self, i: int, step: Step) -> str:
        """The step's text as sequence i's reply shows it (a character split across tokens waits)."""
        return self._seqs[i].decoder.decode(step.raw)

    def tail(self, i: int) -> str:
        return self._seqs[i].decoder.decode(b"", final=True)

    def tokens_of(self, text: str) -> list[tuple[int, str]]:
        """A message the app puts into a reply: its tokens and each one's text."""
        import llama_cpp

        ids = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        vocab = self._llm._model.vocab
        return [(t, _piece(llama_cpp, vocab, t).decode("utf-8", "replace")) for t in ids]

    def feed(self, tokens: dict[int, list[int]]) -> None:
        """One decode step: each sequence's next tokens (its sampled one, or a message put in). A
        message longer than a batch goes in first, in as many batches as it takes; the last batch
        holds every sequence's last token, so each one's logits are there to draw from."""
        pending = {i: list(ts) for i, ts in tokens.items() if ts}
        before = [(i, token) for i, ts in pending.items() for token in ts[:-1]]
        for start in range(0, len(before), self._capacity):
            self._clear()
            for i, token in before[start:start + self._capacity]:
                self._add(token, self._seqs[i].n_past, (i,), False)
                self._seqs[i].n_past += 1
            self._decode()
        self._clear()
        for i, ts in pending.items():
            seq = self._seqs[i]
            self._add(ts[-1], seq.n_past, (i,), True)
            seq.n_past += 1
            seq.logits_at = self._batch.n_tokens - 1
        self._decode()

    def _clear(self) -> None:
        self._batch.n_tokens = 0

    def _add(self, token: int, pos: int, seqs, logits: bool) -> None:
        b, j = self._batch, self._batch.n_tokens
        b.token[j], b.pos[j] = token, pos
        ids = list(seqs)
        b.n_seq_id[j] = len(ids)
        for s, seq_id in enumerate(ids):
            b.seq_id[j][s] = seq_id
        b.logits[j] = logits
        b.n_tokens = j + 1

    def _decode(self) -> None:
        import llama_cpp

        code = llama_cpp.llama_decode(self._ctx, self._batch)
        if code == 2 or (code != 0 and self._cancel.value):
            raise PassCancelled()
        if code != 0:
            raise EngineError(f"llama.cpp failed to decode the samples' batch (code {code}): the context is full",
                              kind="engine")

    def decode_s(self) -> float:
        import llama_cpp

        perf = llama_cpp.llama_perf_context(self._ctx)
        return perf.t_eval_ms / 1000.0

    def close(self) -> None:
        import llama_cpp

        for seq in self._seqs:
            llama_cpp.llama_sampler_free(seq.sampler)
        self._seqs = []
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

