"""The MLX backend: one MLX model folder in this process, over mlx-lm's generate_step.

The request walk is the shared pipeline's (pipeline.py), as for llama.cpp: the same events, token
counts by the model's own tokenizer, cancel between tokens, stop strings, the chat template's
thinking switch, budgets and minimums over one KV cache. On Apple Silicon it runs on the GPU
(Metal); elsewhere on the CPU build of MLX. mlx itself is imported only when a model loads, so this
module imports (and is tested) on machines without it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Iterator

from app.engines.backend import Ending, PassCancelled, Rendered, Step
from app.engines.gguf_header import GGUFInfo
from app.engines.mlx_convert import check_mlx_folder
from app.engines.pipeline import PipelineEngine
from app.engines.types import EngineError, GenerationRequest, ModelInfo, ModelSpec, PromptDone, now
from app.thinking_styles import resolve_style


def mlx_unavailable() -> str | None:
    """Why MLX cannot run here, or None when it can."""
    missing = [name for name in ("mlx", "mlx_lm") if importlib.util.find_spec(name) is None]
    if missing:
        return (f"MLX is not installed ({', '.join(missing)}): pip install 'fastslow[mlx]' — on Apple Silicon, "
                "or on Linux x86_64 with the CPU build")
    return None


class MlxBackend:
    """A Backend (backend.py) over mlx-lm. The cancel flag is polled by the pipeline between tokens,
    and here between prompt chunks, so a long prompt can be cancelled midway."""

    def __init__(self, cancel_flag) -> None:
        self._cancel = cancel_flag
        self._model = self._tokenizer = None
        self._spec: ModelSpec | None = None
        # The KV cache kept between requests, as llama.cpp keeps its own: a prompt that starts like the
        # last one evaluates only what differs. _cached: the tokens whose keys and values it holds.
        self._cache, self._cached, self._cache_clean = None, [], False
        # The request being decoded: what the next pass evaluates (the prompt's new part, then each
        # message put in), its detokenizer, and its counts and timers.
        self._feed: list[int] = []
        self._detokenizer: Any = None
        self._n_prompt = self._n_evaluated = 0
        self._prompt_done = False
        self._decode_s = 0.0  # from the first generated token to the last, as llama.cpp's decode timer counts
        self._last_t = 0.0

    def load(self, spec: ModelSpec, header: GGUFInfo | None = None) -> ModelInfo:
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
        style = resolve_style(spec.thinking, spec.chat_template or self._tokenizer.chat_template)
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
            n_gpu_layers_requested=None,  # MLX places the whole model on its default device
            n_gpu_layers_offloaded=int(config.get("num_hidden_layers", 0)) if on_gpu else 0,
            n_layers=int(config.get("num_hidden_layers", 0)),
            n_threads=0,  # MLX chooses its own threads
            load_s=now() - started,
            engine_version=f"mlx {mx.__version__}",
            thinking_style=style,
            offload_note="MLX runs every layer on Metal" if on_gpu else "this MLX has no Metal device: the CPU runs it",
        )

    # -- the prompt ------------------------------------------------------------------------

    def render(self, request: GenerationRequest) -> Rendered:
        extra = {} if request.thinking is None else {"enable_thinking": request.thinking}
        rendered = self._tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in request.messages],
            add_generation_prompt=True, tokenize=False, chat_template=self._spec.chat_template, **extra)
        return Rendered(rendered, templated=True)

    def tokenize(self, rendered: Rendered) -> list[int]:
        return self._tokenizer.encode(rendered.text, add_special_tokens=False)

    def context_size(self) -> int:
        return self._spec.n_ctx

    # -- decoding --------------------------------------------------------------------------

    def begin(self, request: GenerationRequest, prompt: list[int]) -> int:
        import mlx.core as mx

        mx.random.seed(request.seed)
        mx.reset_peak_memory()
        reused = self._reuse_cache(prompt, request.cache_prompt)
        self._cache_clean = False  # until this request ends normally: a request left midway is not trusted
        self._feed = prompt[reused:]
        self._detokenizer = self._tokenizer.detokenizer
        self._detokenizer.reset()
        self._n_prompt, self._n_evaluated, self._prompt_done = len(prompt), len(prompt) - reused, False
        self._decode_s = 0.0
        return 0  # MLX chooses its own threads

    def _reuse_cache(self, prompt: list[int], reuse: bool) -> int:
        """Make the KV cache ready for this prompt; how many of the prompt's first tokens it already holds."""
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
                return common
        self._cache, self._cached = make_prompt_cache(self._model), []
        return 0

    def decode(self, request: GenerationRequest, limit: int) -> Iterator[PromptDone | Step]:
        """One run of mlx-lm's generate_step over what was fed since the last.

        generate_step has already evaluated a token when it yields it (it computes one ahead), so a
        refused token is trimmed off the KV cache again (take_back).
        """
        import mlx.core as mx
        from mlx_lm.generate import generate_step, generation_stream, wired_limit
        from mlx_lm.sample_utils import make_sampler

        s = request.sampling
        sampler = make_sampler(temp=s.temperature, top_p=s.top_p, min_p=s.min_p, top_k=s.top_k)
        eos = set(self._tokenizer.eos_token_ids)
        pass_start, first = now(), True
        feed, self._feed = self._feed, []
        self._cached.extend(feed)  # generate_step evaluates all of it before its first token

        def between_chunks(_done: int, _total: int) -> None:  # a long prompt can be cancelled midway
            if self._cancel.value:
                # The cache holds part of the prompt: the next request checks it and starts afresh.
                raise PassCancelled

        steps = generate_step(mx.array(feed), self._model, max_tokens=limit, sampler=sampler,
                              prompt_cache=self._cache, prompt_progress_callback=between_chunks,
                              prefill_step_size=PREFILL_CHUNK_GPU if mx.default_device() == mx.gpu else PREFILL_CHUNK_CPU)
        # On Apple Silicon the weights are wired into memory for the pass, as stream_generate does.
        with wired_limit(self._model, [generation_stream]):
            try:
                for token, logprobs in steps:
                    t = now()
                    self._cached.append(token)  # evaluated already: generate_step computes one ahead
                    if not self._prompt_done:
                        self._prompt_done = True
                        yield PromptDone(t, self._n_prompt, self._n_evaluated, t - pass_start)
                    if not first:
                        self._decode_s += t - self._last_t
                    first, self._last_t = False, t
                    if token in eos:
                        yield Step(t, int(token), end_of_turn=True)
                        continue
                    logprob = float(logprobs[token]) if request.logprobs else None
                    yield Step(t, int(token), piece=self._tokenizer.decode([token]), logprob=logprob)
            finally:
                steps.close()

    def take(self, step: Step) -> str:
        self._detokenizer.add_token(step.token)
        return self._detokenizer.last_segment

    def take_back(self, step: Step) -> None:
        """Trim a refused token off the KV cache: it was evaluated when generate_step yielded it."""
        from mlx_lm.models.cache import trim_prompt_cache

        trim_prompt_cache(self._cache, 1)
        self._cached.pop()

    def put_in(self, text: str) -> list[tuple[int, str]]:
        ids = self._tokenizer.encode(text, add_special_tokens=False)
        # Added to what the next pass evaluates: a budget of 0 closes the thought before the first
        # pass, whose feed still holds the prompt.
        self._feed.extend(ids)
        shown = []
        for token in ids:
            self._detokenizer.add_token(token)
            shown.append((token, self._detokenizer.last_segment))
        return shown

    def finish(self) -> Ending:
        import mlx.core as mx

        self._cache_clean = True
        self._detokenizer.finalize()
        return Ending(self._detokenizer.last_segment, self._decode_s, int(mx.get_peak_memory()))

    def _warm_up(self) -> None:
        """One short generation: MLX builds its kernels on first use, which belongs to the load."""
        import mlx.core as mx
        from mlx_lm.generate import generate_step

        for _ in generate_step(mx.array(self._tokenizer.encode("Hi")), self._model, max_tokens=1):
            pass

    def close(self) -> None:
        self._model = self._tokenizer = self._cache = None


class MlxEngine(PipelineEngine):
    """MLX in this process: the shared request walk over an MlxBackend."""

    def __init__(self, cancel_flag=None) -> None:
        super().__init__(MlxBackend, cancel_flag)


# Prompt tokens evaluated between two looks at the cancel flag. The CPU build evaluates ~15 tokens/s
# on a 2-core VM (tests/perf/test_engines_side_by_side.py), so its chunks are small; Metal's are
# mlx-lm's default, where a chunk takes milliseconds.
PREFILL_CHUNK_CPU, PREFILL_CHUNK_GPU = 64, 2048


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
