"""The MLX engine: one MLX model folder in this process, over mlx-lm's stream_generate.

Same contract as the llama.cpp engine: the same events, stamped with now() where they happen,
token counts by the model's own tokenizer, cancel between tokens, stop strings, the chat template's
thinking switch. On Apple Silicon it runs on the GPU (Metal); elsewhere on the CPU build of MLX.
Thinking budgets and minimums are enforced between tokens over one KV cache, as in llama.cpp's.
"""

from __future__ import annotations

import ctypes
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from app.engines.deadline import RENDER_LIMIT_S, Interrupted, interruptible
from app.engines.mlx_convert import check_mlx_folder
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


def mlx_unavailable() -> str | None:
    """Why MLX cannot run here, or None when it can."""
    missing = [name for name in ("mlx", "mlx_lm") if importlib.util.find_spec(name) is None]
    if missing:
        return (f"MLX is not installed ({', '.join(missing)}): pip install 'fastslow[mlx]' — on Apple Silicon, "
                "or on Linux x86_64 with the CPU build")
    return None


class MlxEngine:
    def __init__(self, cancel_flag=None) -> None:
        self._owns_flag = cancel_flag is None
        self._cancel = cancel_flag if cancel_flag is not None else ctypes.c_byte(0)
        self._model = self._tokenizer = None
        self._spec: ModelSpec | None = None
        self._style = "none"  # how the model marks its thought (app/thinking_styles.py)
        # The KV cache kept between requests, as llama.cpp keeps its own: a prompt that starts like the
        # last one evaluates only what differs. _cached: the tokens whose keys and values it holds.
        self._cache, self._cached, self._cache_clean = None, [], False

    def load(self, spec: ModelSpec) -> ModelInfo:
        reason = mlx_unavailable()
        if reason:
            raise EngineError(reason, kind="engine_unavailable")
        config = check_mlx_folder(spec.path)
        import mlx.core as mx
        from mlx_lm import load

        started = now()
        try:
            self._model, self._tokenizer = load(spec.path)
        except Exception as exc:  # mlx-lm says what is wrong in its own words
            raise EngineError(f"MLX could not load {spec.path}: {exc}", kind="load_failed") from exc
        self._spec = spec
        # How the model marks its thought, found once as the session finds it: the budget needs it.
        self._style = spec.thinking or detect_style(spec.chat_template or self._tokenizer.chat_template)
        self._warm_up()
        folder = Path(spec.path)
        quantization = config.get("quantization") or {}
        on_gpu = mx.default_device() == mx.gpu
        return ModelInfo(
            name=spec.label,
            path=spec.path,
            engine="mlx",
            architecture=config["model_type"],
            n_params=_n_params(self._model, quantization.get("group_size", 0)),
            quantization=f"MLX {quantization['bits']}-bit" if quantization else "MLX float",
            file_size=sum(f.stat().st_size for f in folder.glob("*.safetensors")),
            n_ctx=spec.n_ctx,
            n_ctx_train=int(config.get("max_position_embeddings", 0)),
            chat_template_source="tokenizer" if getattr(self._tokenizer, "chat_template", None) else "none",
            backends_available=("Metal", "CPU") if on_gpu else ("CPU",),
            backend_used="Metal" if on_gpu else "CPU",
            n_gpu_layers_requested=0,
            n_gpu_layers_offloaded=int(config.get("num_hidden_layers", 0)) if on_gpu else 0,
            n_layers=int(config.get("num_hidden_layers", 0)),
            n_threads=0,  # MLX chooses its own threads
            load_s=now() - started,
            engine_version=f"mlx {mx.__version__}",
        )

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        if self._model is None:
            yield Failed(now(), "not_loaded", "no model is loaded in this engine")
            return
        if self._owns_flag:
            self._cancel.value = 0
        failed = empty_prompt(request)
        if failed:
            yield failed
            return
        extra = {} if request.thinking is None else {"enable_thinking": request.thinking}
        try:
            with interruptible(self._cancel, RENDER_LIMIT_S, f"{self._spec.label}'s chat template"):
                rendered = self._tokenizer.apply_chat_template(
                    [{"role": m.role, "content": m.content} for m in request.messages],
                    add_generation_prompt=True, tokenize=False, chat_template=self._spec.chat_template, **extra)
        except Interrupted as exc:  # a template that loops for ever must not hang the pane
            yield render_interrupted(exc)
            return
        except Exception as exc:
            yield template_failed(self._spec.label, exc)
            return
        rendered, opened = prefill_direct(rendered, request.thinking, self._style)
        prompt = self._tokenizer.encode(rendered, add_special_tokens=False)
        failed = prompt_too_long(len(prompt), self._spec.label, self._spec.n_ctx)
        if failed:
            yield failed
            return
        try:
            budget = budget_for(request, opened, self._style)
        except ValueError as exc:
            yield Failed(now(), "bad_request", str(exc))
            return
        yield Started(now(), len(prompt), 0, opened)
        yield from self._generate(request, prompt, budget)

    def _generate(self, request: GenerationRequest, prompt: list[int], budget) -> Iterator[Event]:
        """Generation passes over one KV cache: a pass stops where the thought is closed or kept open,
        the message is put in, and the next pass evaluates only that message."""
        import mlx.core as mx

        mx.random.seed(request.seed)
        mx.reset_peak_memory()
        cache, reused = self._cache_for(prompt, request.cache_prompt)
        self._cache_clean = False  # until this request ends normally: a request left midway is not trusted
        run = _Run(stops=StopMatcher(self._spec.stop + request.stop), budget=budget,
                   detokenizer=self._tokenizer.detokenizer, cache=cache,
                   max_new=min(request.max_tokens, self._spec.n_ctx - len(prompt)), n_prompt=len(prompt),
                   n_evaluated=len(prompt) - reused)
        feed = [prompt[reused:]]  # what the next pass evaluates: the prompt's new part, then each message

        def put_in(message: str) -> Iterator[Event]:
            feed[0] = self._tokenizer.encode(message, add_special_tokens=False)
            for token in feed[0]:  # shown, so the reader sees why the thought stopped or goes on
                run.detokenizer.add_token(token)
                yield Token(now(), run.detokenizer.last_segment, int(token), injected=True)

        finish = yield from drive_passes(budget, request, put_in, lambda: self._pass(feed[0], request, run))
        self._cache_clean = True
        run.detokenizer.finalize()
        tail = "" if finish == "stop" else run.stops.feed(run.detokenizer.last_segment)[0] + run.stops.flush()
        yield Finished(now(), finish, run.n_gen, run.decode_s, tail, budget.forced, budget.extensions,
                       int(mx.get_peak_memory()))

    def _cache_for(self, prompt: list[int], reuse: bool) -> tuple[list, int]:
        """A KV cache for this prompt, and how many of the prompt's first tokens it already holds."""
        from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

        cache, cached = self._cache, self._cached
        sound = cache is not None and self._cache_clean and can_trim_prompt_cache(cache) and all(
            getattr(layer, "offset", len(cached)) == len(cached) for layer in cache)
        if reuse and sound:
            common = 0
            for mine, theirs in zip(cached, prompt):
                if mine != theirs:
                    break
                common += 1
            common = min(common, len(prompt) - 1)  # one token at least is evaluated: its logits start the reply
            if common > 0:
                trim_prompt_cache(cache, len(cached) - common)
                del cached[common:]
                return cache, common
        self._cache, self._cached = make_prompt_cache(self._model), []
        return self._cache, 0

    def _pass(self, feed: list[int], request: GenerationRequest, run: "_Run"):
        """One run of mlx-lm's generate_step; returns the finish reason or what to put in next.

        generate_step has already evaluated a token when it yields it (it computes one ahead), so a
        refused token is trimmed off the KV cache again.
        """
        import mlx.core as mx
        from mlx_lm.generate import generate_step, generation_stream, wired_limit
        from mlx_lm.sample_utils import make_sampler

        s = request.sampling
        sampler = make_sampler(temp=s.temperature, top_p=s.top_p, min_p=s.min_p, top_k=s.top_k)
        eos = set(self._tokenizer.eos_token_ids)
        pass_start, first_t = now(), None
        self._cached.extend(feed)  # generate_step evaluates all of it before its first token

        def between_chunks(_done: int, _total: int) -> None:  # a long prompt can be cancelled midway
            if self._cancel.value:
                raise _Cancelled

        steps = generate_step(mx.array(feed), self._model, max_tokens=max(run.max_new - run.n_gen, 1),
                              sampler=sampler, prompt_cache=run.cache, prompt_progress_callback=between_chunks,
                              prefill_step_size=PREFILL_CHUNK_GPU if mx.default_device() == mx.gpu else PREFILL_CHUNK_CPU)
        # On Apple Silicon the weights are wired into memory for the pass, as stream_generate does.
        with wired_limit(self._model, [generation_stream]):
            try:
                for token, logprobs in steps:
                    t = now()
                    self._cached.append(token)  # evaluated already: generate_step computes one ahead
                    if not run.prompt_done:
                        run.prompt_done = True
                        yield PromptDone(t, run.n_prompt, run.n_evaluated, t - pass_start)
                    if first_t is None:
                        first_t = t
                    else:
                        run.decode_s += t - run.last_t
                    run.last_t = t
                    if self._cancel.value:
                        return "cancelled"
                    if token in eos:
                        if run.budget.refuses("", end_of_turn=True):
                            self._take_back(run)
                            return EXTEND_THOUGHT
                        return "stop"
                    if run.budget.refuses(self._tokenizer.decode([token])):
                        self._take_back(run)
                        return EXTEND_THOUGHT
                    run.n_gen += 1
                    run.detokenizer.add_token(token)
                    shown, hit = run.stops.feed(run.detokenizer.last_segment)
                    logprob = float(logprobs[token]) if request.logprobs else None
                    yield Token(t, shown, int(token), logprob=logprob)
                    end = pass_end(hit, run.n_gen, run.max_new, run.budget, shown)
                    if end:
                        return end
            except _Cancelled:
                return "cancelled"  # the cache holds part of the prompt: the next request checks and starts afresh
            finally:
                steps.close()
        return "length"

    def _take_back(self, run: "_Run") -> None:
        """Trim a refused token off the KV cache: it was evaluated when generate_step yielded it."""
        from mlx_lm.models.cache import trim_prompt_cache

        trim_prompt_cache(run.cache, 1)
        self._cached.pop()

    def _warm_up(self) -> None:
        """One short generation: MLX builds its kernels on first use, which belongs to the load."""
        import mlx.core as mx
        from mlx_lm.generate import generate_step

        for _ in generate_step(mx.array(self._tokenizer.encode("Hi")), self._model, max_tokens=1):
            pass

    def cancel(self) -> None:
        self._cancel.value = 1

    def close(self) -> None:
        self._model = self._tokenizer = self._cache = None


# Prompt tokens evaluated between two looks at the cancel flag. The CPU build evaluates ~15 tokens/s
# on a 2-core VM (tests/perf/test_engines_side_by_side.py), so its chunks are small; Metal's are
# mlx-lm's default, where a chunk takes milliseconds.
PREFILL_CHUNK_CPU, PREFILL_CHUNK_GPU = 64, 2048


class _Cancelled(Exception):
    """Raised between prompt chunks when the run is cancelled."""


@dataclass
class _Run:
    """What one request's passes share: the KV cache, the text decoder, stop strings, the budget, counts."""

    stops: StopMatcher
    budget: ThinkingBudget
    detokenizer: Any
    cache: list
    max_new: int
    n_prompt: int
    n_evaluated: int  # the prompt's tokens evaluated now; the rest were in the kept KV cache
    n_gen: int = 0
    prompt_done: bool = False
    decode_s: float = 0.0  # from the first generated token to the last, as llama.cpp's decode timer counts
    last_t: float = 0.0


def _n_params(model, group_size: int) -> int:
    """Parameters as the model has them: a quantized weight counts its unpacked size
    (rows × groups × the folder's group size), not its packed uint32 words."""
    from mlx.utils import tree_flatten

    params = dict(tree_flatten(model.parameters()))
    total = 0
    for name, array in params.items():
        if name.endswith((".scales", ".biases")):
            continue
        scales = params.get(name[: -len("weight")] + "scales") if name.endswith("weight") else None
        total += array.shape[0] * scales.shape[-1] * group_size if scales is not None else array.size
    return total
