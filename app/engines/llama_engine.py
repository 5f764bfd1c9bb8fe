"""The llama.cpp engine: one GGUF model in this process, streamed token by token.

It runs inside a worker process (see worker.py); nothing here knows about pipes. Every event is
stamped with now() the moment it happens, and the token counts are the model's own tokens.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import os
import re
from collections import deque
from dataclasses import dataclass
from typing import Iterator

import psutil

from app.engines.deadline import RENDER_LIMIT_S, Interrupted, interruptible
from app.engines.gguf_header import read_gguf_header
from app.engines.stop_strings import StopMatcher
from app.engines.thinking_budget import (
    EXTEND_THOUGHT,
    ThinkingBudget,
    budget_for,
    drive_passes,
    pass_end,
    prefill_direct,
)
from app.engines.types import (
    EngineError,
    Event,
    Failed,
    Finished,
    GenerationRequest,
    ModelInfo,
    ModelSpec,
    PromptDone,
    Started,
    Token,
    empty_prompt,
    now,
    prompt_too_long,
    render_interrupted,
    template_failed,
)
from app.thinking_styles import detect_style

# Backend names as llama_print_system_info() spells them, in the order we prefer to report.
_GPU_BACKENDS = ("CUDA", "Metal", "Vulkan", "ROCm", "HIP", "SYCL", "OpenCL", "CANN", "MUSA")
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


def available_backends() -> tuple[str, ...]:
    """The backends compiled into this llama.cpp build, e.g. ("CPU",) or ("CUDA", "CPU")."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    found = [name for name in _GPU_BACKENDS if re.search(rf"\b{name}\b", info)]
    return tuple(found) + ("CPU",)


class LlamaCppEngine:
    """An Engine over llama-cpp-python.

    `cancel_flag` is anything with a `.value` (a multiprocessing RawValue shared with the parent);
    it is polled between tokens and, during prompt processing, by llama.cpp's abort callback, so a
    cancel also interrupts a long prompt half-way through a batch.
    """

    def __init__(self, cancel_flag=None) -> None:
        self._owns_flag = cancel_flag is None
        self._cancel = cancel_flag if cancel_flag is not None else ctypes.c_byte(0)
        self._llm = None
        self._spec: ModelSpec | None = None
        self._threads = 1
        self._formatter = None
        self._style = "none"  # how the model marks its thought (app/thinking_styles.py)
        self._abort_cb = None  # a ctypes callback must outlive its registration: keep it here

    # -- loading ---------------------------------------------------------------------------

    def load(self, spec: ModelSpec) -> ModelInfo:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        header = read_gguf_header(spec.path)
        _capture_llama_log(llama_cpp)
        _LLAMA_LOG.clear()
        n_ctx_train = header.context_length or spec.n_ctx
        n_ctx = min(spec.n_ctx, n_ctx_train)
        self._threads = spec.n_threads or psutil.cpu_count(logical=False) or 1
        started = now()
        try:
            with _model_params(llama_cpp, _extra_buffer_types_safe()):
                llm = llama_cpp.Llama(
                    model_path=spec.path,
                    n_ctx=n_ctx,
                    n_batch=spec.n_batch,
                    n_threads=self._threads,
                    n_threads_batch=self._threads,
                    n_gpu_layers=spec.n_gpu_layers,
                    verbose=False,
                )
        except Exception as exc:  # llama.cpp reports the cause through its log, not the exception
            raise self._load_error(spec, header, exc) from exc
        self._warm_up(llm)
        load_s = now() - started
        self._llm, self._spec = llm, spec

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
        self._style = spec.thinking or detect_style(template)

        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: bool(self._cancel.value))
        n_layers = llama_cpp.llama_model_n_layer(llm._model.model)
        offloaded = self._offloaded_layers()
        backends = available_backends()
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
            backends_available=backends,
            backend_used=backends[0] if offloaded else "CPU",
            n_gpu_layers_requested=spec.n_gpu_layers,
            n_gpu_layers_offloaded=offloaded,
            n_layers=n_layers,
            n_threads=self._threads,
            load_s=load_s,
            engine_version=getattr(llama_cpp, "__version__", "?"),
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

    # -- generating ------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        if self._llm is None or self._spec is None:
            yield Failed(now(), "not_loaded", "no model is loaded in this engine")
            return
        if self._owns_flag:
            self._cancel.value = 0
        try:
            yield from self._generate(request)
        finally:
            self._set_abort(False)

    def _generate(self, request: GenerationRequest) -> Iterator[Event]:
        import llama_cpp

        llm, spec = self._llm, self._spec
        failed = empty_prompt(request)
        if failed:
            yield failed
            return
        try:
            with interruptible(self._cancel, RENDER_LIMIT_S, f"{spec.label}'s chat template"):
                prompt_tokens, opens_thinking = self._prompt_tokens(request)
        except Interrupted as exc:  # a template that loops for ever must not hang the pane
            yield render_interrupted(exc)
            return
        except Exception as exc:  # a broken or unsuitable chat template
            yield template_failed(spec.label, exc)
            return
        # llama.cpp pads the context it allocates, but llama-cpp-python sizes its token buffers
        # by the requested one: the smaller is the real limit.
        n_prompt, n_ctx = len(prompt_tokens), min(llm.n_ctx(), llm.context_params.n_ctx)
        failed = prompt_too_long(n_prompt, spec.label, n_ctx)
        if failed:
            yield failed
            return
        max_new = min(request.max_tokens, n_ctx - n_prompt)
        try:
            budget = budget_for(request, opens_thinking, self._style)
        except ValueError as exc:
            yield Failed(now(), "bad_request", str(exc))
            return
        threads = request.n_threads or self._threads
        llm._ctx.set_n_threads(threads, threads)
        yield Started(now(), n_prompt, threads, opens_thinking)

        ctx = llm._ctx.ctx
        if not request.cache_prompt:
            llm.reset()  # forget the previous request: this prompt is evaluated in full
        llama_cpp.llama_perf_context_reset(ctx)
        llm.set_seed(request.seed)
        run = _Run(
            n_prompt=n_prompt,
            max_new=max_new,
            decoder=codecs.getincrementaldecoder("utf-8")(errors="replace"),
            stops=StopMatcher(spec.stop + request.stop),
            budget=budget,
        )
        sequence = list(prompt_tokens)

        def put_in(message: str) -> Iterator[Event]:
            ids = llm.tokenize(message.encode("utf-8"), add_bos=False, special=True)
            for token in ids:  # shown, so the reader sees why the thought stopped or goes on
                text = _piece(llama_cpp, llm._model.vocab, token).decode("utf-8", "replace")
                yield Token(now(), text, token, injected=True)
            sequence.extend(ids)

        self._set_abort(True)  # prompt processing: let llama.cpp itself poll the cancel flag
        try:
            finish = yield from drive_passes(budget, request, put_in, lambda: self._decode(sequence, request, run))
        except RuntimeError as exc:
            if not self._cancel.value:
                yield Failed(now(), "engine", f"llama.cpp failed while generating: {exc}")
                return
            finish = "cancelled"  # llama_decode returned 2: the abort callback stopped it
        tail = run.decoder.decode(b"", final=True)
        tail = run.stops.feed(tail)[0] + run.stops.flush() if finish != "stop" else ""
        perf = llama_cpp.llama_perf_context(ctx)
        yield Finished(now(), finish, run.n_gen, perf.t_eval_ms / 1000.0, tail, budget.forced, budget.extensions)

    def _decode(self, sequence: list[int], request: GenerationRequest, run: "_Run"):
        """One pass of llama.cpp's generate loop over `sequence` (extended as tokens come).

        Returns the finish reason, or CLOSE_THOUGHT / EXTEND_THOUGHT when the thought must be closed
        or kept open; the next pass then reuses the KV cache and evaluates only the message put in.
        A token yielded by llm.generate is evaluated only when the loop asks for the next one, so
        a refused token never reaches the context.
        """
        import llama_cpp

        llm, s = self._llm, request.sampling
        vocab, ctx = llm._model.vocab, llm._ctx.ctx
        tokens = llm.generate(
            sequence,
            temp=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            min_p=s.min_p,
            repeat_penalty=s.repeat_penalty,
        )
        try:
            for token in tokens:
                t = now()
                if not run.prompt_done:
                    run.prompt_done = True
                    # Between tokens the flag is checked here; a Python callback on every graph
                    # node would cost decode speed for nothing.
                    self._set_abort(False)
                    perf = llama_cpp.llama_perf_context(ctx)
                    # A 1-token suffix (the rest came from the cache) counts as n_eval, which
                    # llama.cpp reports as at least 1: trust it only when time was spent there.
                    single = perf.n_eval if perf.t_eval_ms > 0 else 0
                    yield PromptDone(
                        t, run.n_prompt, perf.n_p_eval + single, (perf.t_p_eval_ms + perf.t_eval_ms) / 1000.0
                    )
                if self._cancel.value:
                    return "cancelled"
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    return EXTEND_THOUGHT if run.budget.refuses("", end_of_turn=True) else "stop"
                # gpt-oss's channel markers are control tokens, which llama.cpp renders only when
                # asked: the reader (and the budget) must see them to tell thought from answer.
                piece = _piece(llama_cpp, vocab, token, special=self._style == "harmony")
                if run.budget.refuses(piece.decode("utf-8", "replace")):
                    return EXTEND_THOUGHT
                run.n_gen += 1
                sequence.append(token)
                shown, hit = run.stops.feed(run.decoder.decode(piece))
                yield Token(t, shown, token, logprob=_logprob(llm, token) if request.logprobs else None)
                end = pass_end(hit, run.n_gen, run.max_new, run.budget, shown)
                if end:
                    return end
        finally:
            tokens.close()
        return "length"

    def _prompt_tokens(self, request: GenerationRequest) -> tuple[list[int], bool]:
        """The prompt's tokens, and whether the template left it inside an open <think>."""
        llm = self._llm
        if self._formatter is None:
            # No template anywhere: plain completion of the text, which is what such a model knows.
            text = "\n\n".join(m.content for m in request.messages)
            return llm.tokenize(text.encode("utf-8"), add_bos=True, special=False), False
        extra = {} if request.thinking is None else {"enable_thinking": request.thinking}
        rendered = self._formatter(
            messages=[{"role": m.role, "content": m.content} for m in request.messages], **extra
        ).prompt
        rendered, opened = prefill_direct(rendered, request.thinking, self._style)
        tokens = llm.tokenize(rendered.encode("utf-8"), add_bos=False, special=True)
        bos = llm._model.token_bos()
        # Templates that write {{ bos_token }} already have it; the rest get it the way llama.cpp's
        # server adds it, so both kinds see exactly one BOS.
        if llm._model.add_bos_token() and bos >= 0 and (not tokens or tokens[0] != bos):
            tokens.insert(0, bos)
        return tokens, opened

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

    def cancel(self) -> None:
        self._cancel.value = 1

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None


@dataclass
class _Run:
    """What one request's passes share: counts, the text decoder, stop strings, the budget."""

    n_prompt: int
    max_new: int
    decoder: codecs.IncrementalDecoder
    stops: StopMatcher
    budget: ThinkingBudget
    n_gen: int = 0
    prompt_done: bool = False


def _piece(llama_cpp, vocab, token: int, special: bool = False) -> bytes:
    """The bytes of one token (llama-cpp-python's own helper truncates pieces over 32 bytes)."""
    buf = ctypes.create_string_buffer(64)
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    return buf.raw[:n]
