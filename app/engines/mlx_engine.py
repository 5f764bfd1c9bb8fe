"""The MLX engine: one MLX model folder in this process, over mlx-lm's stream_generate.

Same contract as the llama.cpp engine: the same events, stamped with now() where they happen,
token counts by the model's own tokenizer, cancel between tokens, stop strings, the chat template's
thinking switch. On Apple Silicon it runs on the GPU (Metal); elsewhere on the CPU build of MLX.
A thinking budget is not enforced here yet: such a request fails with a clear message.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path
from typing import Iterator

from app.engines.mlx_convert import check_mlx_folder
from app.engines.stop_strings import StopMatcher
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
    template_failed,
)


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
        list(self._stream(self._tokenizer.encode("Hi"), 1, 0.0, 0))  # warm-up: kernels built at load
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
        if request.thinking_budget is not None:
            yield Failed(now(), "bad_request", "the MLX engine does not enforce thinking budgets yet: "
                                               "run without a budget, or use the llama.cpp engine")
            return
        extra = {} if request.thinking is None else {"enable_thinking": request.thinking}
        try:
            rendered = self._tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in request.messages],
                add_generation_prompt=True, tokenize=False, **extra)
        except Exception as exc:
            yield template_failed(self._spec.label, exc)
            return
        prompt = self._tokenizer.encode(rendered, add_special_tokens=False)
        failed = prompt_too_long(len(prompt), self._spec.label, self._spec.n_ctx)
        if failed:
            yield failed
            return
        yield Started(now(), len(prompt), 0, rendered.rstrip().endswith("<think>"))
        stops = StopMatcher(self._spec.stop + request.stop)
        max_new = min(request.max_tokens, self._spec.n_ctx - len(prompt))
        s = request.sampling
        n_gen, finish, decode_s, tail = 0, "length", 0.0, ""
        for response in self._stream(prompt, max_new, s.temperature, request.seed, s.top_p, s.min_p, s.top_k):
            t = now()
            if n_gen == 0:  # the first response: the prompt has been processed
                yield PromptDone(t, len(prompt), len(prompt), len(prompt) / max(response.prompt_tps, 1e-9))
            if self._cancel.value:
                finish, tail = "cancelled", stops.flush()
                break
            if response.finish_reason == "stop":  # the end-of-turn token: not text, not counted
                shown, hit = stops.feed(response.text)
                finish, tail = "stop", "" if hit else shown + stops.flush()
                break
            n_gen += 1
            if response.generation_tps > 0 and n_gen > 1:
                decode_s = (n_gen - 1) / response.generation_tps
            shown, hit = stops.feed(response.text)
            logprob = float(response.logprobs[response.token]) if request.logprobs else None
            yield Token(t, shown, int(response.token), logprob=logprob)
            if hit:
                finish = "stop"
                break
            if response.finish_reason == "length":
                finish, tail = "length", stops.flush()
        yield Finished(now(), finish, n_gen, decode_s, tail, False)

    def _stream(self, prompt: list[int], max_tokens: int, temperature: float, seed: int, top_p: float = 1.0,
                min_p: float = 0.0, top_k: int = 0):
        import mlx.core as mx
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        mx.random.seed(seed)
        sampler = make_sampler(temp=temperature, top_p=top_p, min_p=min_p, top_k=top_k)
        return stream_generate(self._model, self._tokenizer, prompt, max_tokens=max_tokens, sampler=sampler)

    def cancel(self) -> None:
        self._cancel.value = 1

    def close(self) -> None:
        self._model = self._tokenizer = None


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
