"""The llama.cpp backend: one GGUF model in this process, decoded token by token.

The request walk is the shared pipeline's (pipeline.py); this is what only llama.cpp knows: its
load, its chat template, its tokenizer, its KV cache and its abort callback. Every token is
stamped with now() the moment it comes, and the token counts are the model's own tokens.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import os
import re
from collections import deque
from typing import Iterator

import psutil

from app.engines.backend import Ending, PassCancelled, Rendered, Step
from app.engines.devices import llama_build
from app.engines.gguf_header import GGUFInfo, read_gguf_header
from app.engines.offload import plan_offload
from app.engines.pipeline import PipelineEngine
from app.engines.types import EngineError, GenerationRequest, ModelInfo, ModelSpec, PromptDone, now
from app.thinking_styles import resolve_style

_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")


# llama.cpp's log, kept for the process: it explains load failures and says what was offloaded.
_LLAMA_LOG: deque[str] = deque(maxlen=400)
_LOG_CALLBACK = None  # the C side keeps this pointer forever, so it must never be collected


def _capture_llama_log(llama_cpp) -> None:
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return

    def on_log(_level, text, _user_data):
        if text:
            _LLAMA_LOG.append(text.decode("utf-8", "replace"))

    _LOG_CALLBACK = llama_cpp.llama_log_callback(on_log)
    llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


def _extra_buffer_types_safe() -> bool:
    """Whether llama.cpp may use its CPU "extra buffer types" (AMX, weight repacking).

    On CPUs with Intel AMX (Sapphire Rapids and newer) the AMX buffer type of the llama.cpp in
    llama-cpp-python 0.3.36 crashes the first decode with SIGSEGV (seen on a Xeon with amx_int8,
    on a Q4_1 model, which only AMX repacks), so it is switched off there.
    FASTSLOW_LLAMA_EXTRA_BUFTS=1 or 0 overrides the check.
    """
    forced = os.environ.get("FASTSLOW_LLAMA_EXTRA_BUFTS")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return True
    return "amx_int8" not in flags.split() and "amx_tile" not in flags.split()


@contextlib.contextmanager
def _model_params(llama_cpp, use_extra_bufts: bool):
    """Llama() takes no argument for use_extra_bufts: adjust the defaults it starts from, for one load."""
    module = llama_cpp.llama.llama_cpp
    original = module.llama_model_default_params

    def defaults():
        params = original()
        params.use_extra_bufts = use_extra_bufts
        return params

    module.llama_model_default_params = defaults
    try:
        yield
    finally:
        module.llama_model_default_params = original


def _logprob(llm, token: int) -> float:
    """log P(token) under the logits that produced it: the generator hands us each token before it
    decodes the next, so the context's last logits are still the ones it was sampled from."""
    import llama_cpp
    import numpy as np

    pointer = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    logits = np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).astype(np.float64)
    top = logits.max()
    return float(logits[token] - top - np.log(np.exp(logits - top).sum()))


class LlamaCppBackend:
    """A Backend (backend.py) over llama-cpp-python.

    The cancel flag is polled between tokens by the pipeline and, during prompt processing, by
    llama.cpp's abort callback, so a cancel also interrupts a long prompt half-way through a batch.
    """

    def __init__(self, cancel_flag) -> None:
        self._cancel = cancel_flag
        self._llm = None
        self._spec: ModelSpec | None = None
        self._threads = 1
        self._formatter = None
        self._style = "none"  # how the model marks its thought (app/thinking_styles.py)
        self._abort_cb = None  # a ctypes callback must outlive its registration: keep it here
        self._header: GGUFInfo | None = None  # the loaded file's, for sizing k samples' KV cache
        self._offloaded_to = ""  # the GPU the layers went to ("" on the CPU)
        # The request being decoded: every token of its context (the prompt, then what was taken or
        # put in), its text decoder, and whether its prompt has been evaluated yet.
        self._sequence: list[int] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._n_prompt = 0
        self._prompt_done = False

    # -- loading ---------------------------------------------------------------------------

    def load(self, spec: ModelSpec, header: GGUFInfo | None = None) -> ModelInfo:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        header = header or read_gguf_header(spec.path)  # the parent's, read once for the whole load
        _capture_llama_log(llama_cpp)
        _LLAMA_LOG.clear()
        n_ctx_train = header.context_length or spec.n_ctx
        n_ctx = min(spec.n_ctx, n_ctx_train)
        self._threads = spec.n_threads or psutil.cpu_count(logical=False) or 1
        build = llama_build()  # asked at each load: the GPUs' free memory changes
        plan = plan_offload(header, n_ctx, spec.n_gpu_layers, build, n_batch=spec.n_batch)
        started = now()
        try:
            with _model_params(llama_cpp, _extra_buffer_types_safe()):
                llm = llama_cpp.Llama(
                    model_path=spec.path,
                    n_ctx=n_ctx,
                    n_batch=spec.n_batch,
                    n_threads=self._threads,
                    n_threads_batch=self._threads,
                    n_gpu_layers=plan.n_gpu_layers,
                    verbose=False,
                )
        except Exception as exc:  # llama.cpp reports the cause through its log, not the exception
            raise self._load_error(spec, header, exc) from exc
        self._warm_up(llm)
        load_s = now() - started
        self._llm, self._spec, self._header = llm, spec, header
        self._offloaded_to = plan.device if plan.n_gpu_layers else ""

        template, source = spec.chat_template, "catalog"
        if not template:
            template, source = header.chat_template, "gguf"
        if template:
            self._formatter = Jinja2ChatFormatter(
                template=template,
                bos_token=self._token_text(llm._model.token_bos()),
                eos_token=self._token_text(llm._model.token_eos()),
            )
        else:
            self._formatter, source = None, "none"
        self._style = resolve_style(spec.thinking, template)

        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: bool(self._cancel.value))
        n_layers = llama_cpp.llama_model_n_layer(llm._model.model)
        offloaded = self._offloaded_layers()
        return ModelInfo(
            name=spec.label,
            path=spec.path,
            engine="llama.cpp",
            architecture=header.architecture,
            n_params=header.n_params,
            quantization=header.quantization,
            file_size=header.file_size,
            n_ctx=n_ctx,
            n_ctx_train=n_ctx_train,
            chat_template_source=source,
            backends_available=build.backends,
            backend_used=plan.backend if offloaded else "CPU",
            n_gpu_layers_requested=spec.n_gpu_layers,
            n_gpu_layers_offloaded=offloaded,
            n_layers=n_layers,
            n_threads=self._threads,
            load_s=load_s,
            engine_version=getattr(llama_cpp, "__version__", "?"),
            thinking_style=self._style,
            device=plan.device if offloaded else "",
            offload_note=plan.reason,
        )

    @staticmethod
    def _warm_up(llm) -> None:
        """One throwaway decode, as llama.cpp's own tools do: the first request then shows
        steady-state TTFT instead of page faults and lazy initialisation."""
        import llama_cpp

        bos = llm._model.token_bos()
        llm.eval([bos if bos >= 0 else 0])
        # llama.cpp books a decode into its perf counters only at the next sync; do it now, or
        # this warm-up would land in the first request's figures.
        llama_cpp.llama_synchronize(llm._ctx.ctx)
        llm.reset()

    def _last_log_error(self) -> str:
        errors = [line.strip() for line in _LLAMA_LOG if "error" in line.lower() or "failed" in line]
        return errors[-1] if errors else ""

    def _load_error(self, spec: ModelSpec, header, exc: Exception) -> EngineError:
        """Why llama.cpp could not load the file, from its log: an architecture it does not know is
        the file's fault (bad input), anything else a failed load."""
        if any("unknown model architecture" in line for line in _LLAMA_LOG):
            version = getattr(__import__("llama_cpp"), "__version__", "?")
            return EngineError(
                f"{spec.path} is a {header.architecture!r} model, an architecture this llama.cpp "
                f"(llama-cpp-python {version}) cannot run: use a model of a supported family, or a newer "
                "FastSlow", kind="unsupported_model")
        errors = [line.strip() for line in _LLAMA_LOG if "error" in line.lower()]
        said = errors[-1] if errors else self._last_log_error()
        return EngineError(f"llama.cpp could not load {spec.path}: {said or exc}", kind="load_failed")

    def _offloaded_layers(self) -> int:
        for line in reversed(_LLAMA_LOG):
            match = _OFFLOADED.search(line)
            if match:
                return int(match.group(1))
        return 0

    # -- the prompt ------------------------------------------------------------------------

    def render(self, request: GenerationRequest) -> Rendered:
        if self._formatter is None:
            # No template anywhere: plain completion of the text, which is what such a model knows.
            return Rendered("\n\n".join(m.content for m in request.messages), templated=False)
        extra = {} if request.thinking is None else {"enable_thinking": request.thinking}
        rendered = self._formatter(
            messages=[{"role": m.role, "content": m.content} for m in request.messages], **extra
        ).prompt
        return Rendered(rendered, templated=True)

    def tokenize(self, rendered: Rendered) -> list[int]:
        llm = self._llm
        if not rendered.templated:
            return llm.tokenize(rendered.text.encode("utf-8"), add_bos=True, special=False)
        tokens = llm.tokenize(rendered.text.encode("utf-8"), add_bos=False, special=True)
        bos = llm._model.token_bos()
        # Templates that write {{ bos_token }} already have it; the rest get it the way llama.cpp's
        # server adds it, so both kinds see exactly one BOS.
        if llm._model.add_bos_token() and bos >= 0 and (not tokens or tokens[0] != bos):
            tokens.insert(0, bos)
        return tokens

    def context_size(self) -> int:
        # llama.cpp pads the context it allocates, but llama-cpp-python sizes its token buffers
        # by the requested one: the smaller is the real limit.
        return min(self._llm.n_ctx(), self._llm.context_params.n_ctx)

    # -- decoding --------------------------------------------------------------------------

    def begin(self, request: GenerationRequest, prompt: list[int]) -> int:
        import llama_cpp

        llm = self._llm
        threads = request.n_threads or self._threads
        llm._ctx.set_n_threads(threads, threads)
        if not request.cache_prompt:
            llm.reset()  # forget the previous request: this prompt is evaluated in full
        llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
        llm.set_seed(request.seed)
        self._sequence, self._n_prompt, self._prompt_done = list(prompt), len(prompt), False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return threads

    def decode(self, request: GenerationRequest, limit: int) -> Iterator[PromptDone | Step]:
        """One pass of llama.cpp's generate loop over the sequence (extended as tokens are taken);
        llama.cpp reuses the KV cache for the part it has seen. A token yielded by llm.generate is
        evaluated only when the loop asks for the next one, so a refused token never reaches the
        context. `limit` is not needed: the pipeline ends the pass."""
        import llama_cpp

        llm, s = self._llm, request.sampling
        vocab, ctx = llm._model.vocab, llm._ctx.ctx
        # gpt-oss's channel markers are control tokens, which llama.cpp renders only when asked:
        # the reader (and the budget) must see them to tell thought from answer.
        special = self._style == "harmony"
        if not self._prompt_done:
            self._set_abort(True)  # prompt processing: let llama.cpp itself poll the cancel flag
        tokens = llm.generate(self._sequence, temp=s.temperature, top_k=s.top_k, top_p=s.top_p, min_p=s.min_p,
                              repeat_penalty=s.repeat_penalty)
        try:
            for token in tokens:
                t = now()
                if not self._prompt_done:
                    self._prompt_done = True
                    # Between tokens the pipeline checks the flag; a Python callback on every graph
                    # node would cost decode speed for nothing.
                    self._set_abort(False)
                    perf = llama_cpp.llama_perf_context(ctx)
                    # A 1-token suffix (the rest came from the cache) counts as n_eval, which
                    # llama.cpp reports as at least 1: trust it only when time was spent there.
                    single = perf.n_eval if perf.t_eval_ms > 0 else 0
                    yield PromptDone(
                        t, self._n_prompt, perf.n_p_eval + single, (perf.t_p_eval_ms + perf.t_eval_ms) / 1000.0
                    )
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    yield Step(t, token, end_of_turn=True)
                    continue
                raw = _piece(llama_cpp, vocab, token, special=special)
                logprob = _logprob(llm, token) if request.logprobs else None
                yield Step(t, token, piece=raw.decode("utf-8", "replace"), raw=raw, logprob=logprob)
        except RuntimeError as exc:
            if self._cancel.value:
                raise PassCancelled from exc  # llama_decode returned 2: the abort callback stopped it
            raise EngineError(f"llama.cpp failed while generating: {exc}", kind="engine") from exc
        finally:
            tokens.close()
            self._set_abort(False)

    def samples_that_fit_memory(self, k: int, n_prompt: int, max_new: int) -> tuple[int, str]:
        """How many of k samples' KV cache and compute buffers fit the memory free now (the GPU's the
        layers went to, else this machine's), and why fewer when fewer ("" when all do)."""
        from app.engines.llama_batch import kv_layout
        from app.engines.sizing import footprint
        from app.units import size_text

        gpus = [d for d in llama_build().gpus if self._offloaded_to and d.description in self._offloaded_to]
        free = gpus[0].free_bytes if gpus else psutil.virtual_memory().available
        where = f"{gpus[0].description}'s" if gpus else "this machine's"

        def need(n: int) -> int:
            f = footprint(self._header, kv_layout(n, n_prompt, max_new).n_ctx, n_batch=max(n * 8, 64))
            return f.kv_cache_bytes + f.compute_bytes

        fits = next((n for n in range(k, 0, -1) if need(n) <= free * 0.9), 1)
        if fits == k:
            return k, ""
        return fits, (f"{fits} of the {k} samples asked for: {k} samples' KV cache and buffers "
                      f"({size_text(need(k))}) would not fit the {size_text(free)} of {where} memory free")

    def batch(self):
        """A decoder of k sequences of one prompt at once (engines/batched.py): a context of its own."""
        from app.engines.llama_batch import LlamaBatch

        return LlamaBatch(self._llm, self._cancel, special=self._style == "harmony")

    def take(self, step: Step) -> str:
        self._sequence.append(step.token)
        return self._decoder.decode(step.raw)

    def take_back(self, step: Step) -> None:
        """Nothing to undo: llama.cpp evaluates a token only once the next one is asked for."""

    def put_in(self, text: str) -> list[tuple[int, str]]:
        import llama_cpp

        ids = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        vocab = self._llm._model.vocab
        shown = [(token, _piece(llama_cpp, vocab, token).decode("utf-8", "replace")) for token in ids]
        self._sequence.extend(ids)
        return shown

    def finish(self) -> Ending:
        import llama_cpp

        perf = llama_cpp.llama_perf_context(self._llm._ctx.ctx)
        return Ending(self._decoder.decode(b"", final=True), perf.t_eval_ms / 1000.0)

    # -- the rest --------------------------------------------------------------------------

    def _token_text(self, token: int) -> str:
        import llama_cpp

        if token < 0:
            return ""
        piece = _piece(llama_cpp, self._llm._model.vocab, token, special=True)
        return piece.decode("utf-8", "replace")

    def _set_abort(self, on: bool) -> None:
        import llama_cpp

        if self._llm is None or self._abort_cb is None:
            return
        callback = self._abort_cb if on else llama_cpp.ggml_abort_callback()
        llama_cpp.llama_set_abort_callback(self._llm._ctx.ctx, callback, ctypes.c_void_p(0))

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None


class LlamaCppEngine(PipelineEngine):
    """llama.cpp in this process: the shared request walk over a LlamaCppBackend."""

    def __init__(self, cancel_flag=None) -> None:
        super().__init__(LlamaCppBackend, cancel_flag)


def _piece(llama_cpp, vocab, token: int, special: bool = False) -> bytes:
    """The bytes of one token (llama-cpp-python's own helper truncates pieces over 32 bytes)."""
    buf = ctypes.create_string_buffer(64)
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    return buf.raw[:n]
