"""How much memory a llama.cpp load of a GGUF takes: weights, KV cache and compute buffer.

The arithmetic follows how llama.cpp, driven by llama-cpp-python with its defaults, sizes its
buffers. Two readers: the parent's fit check (app/hardware.py), which warns before a load that
would swap or fail, and the worker's offload plan (offload.py), which puts on the GPU as many
layers as its free memory holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engines.gguf_header import GGUFInfo
from app.units import MIB

KV_PAD = 256  # llama.cpp rounds the context, and the sliding-window cache, up to 256 cells
N_UBATCH = 512  # llama-cpp-python's default micro-batch; it uses min(n_batch, n_ubatch)
# The worker process itself (Python + llama.cpp: ~40 MiB measured), ggml's graph bookkeeping and the
# small buffers llama.cpp adds (output logits, CPU weight repacking: 13 MiB for Gemma 3 270M).
RUNTIME_BYTES = 64 * MIB
# The CUDA context and cuBLAS workspace live in VRAM before any tensor does. Typically a few hundred
# MiB; this is an allowance, not a figure measured on this project's machines.
GPU_RUNTIME_BYTES = 384 * MIB

# Architectures where llama.cpp puts a sliding window on all layers but every n-th, when the file
# carries no "{arch}.attention.sliding_window_pattern" (its per-architecture load_swa_pattern calls).
_SWA_PERIOD = {"gemma2": 2, "gemma3": 6, "cohere2": 4, "exaone4": 4, "gpt-oss": 2}




@dataclass(frozen=True)
class Footprint:
    """What a load at one context allocates, whole (not per device)."""

    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int  # llama.cpp's compute buffer at its peak over the graph
    n_layers: int

    @property
    def per_layer_bytes(self) -> int:
        """One repeating layer's weights and KV cache: what each offloaded layer moves to the GPU."""
        return (self.weights_bytes + self.kv_cache_bytes) // max(self.n_layers, 1)


def footprint(info: GGUFInfo, n_ctx: int, *, n_batch: int = 512, kv_bytes_per_element: float = 2,
              swa_full: bool = True) -> Footprint:
    """The buffers of a load of `info` at `n_ctx` tokens (n_ctx already resolved, > 0)."""
    cells = pad(n_ctx, KV_PAD)
    n_ubatch = min(n_batch, N_UBATCH)
    return Footprint(
        weights_bytes=info.file_size,
        kv_cache_bytes=_kv_cache_bytes(info, cells, n_ubatch, kv_bytes_per_element, swa_full),
        compute_bytes=_compute_buffer_bytes(info, cells, n_ubatch),
        n_layers=info.n_layers or 0,
    )


def _kv_cache_bytes(info: GGUFInfo, cells: int, n_ubatch: int, bytes_per_element: float, swa_full: bool) -> int:
    """Per layer: cells x KV heads x (K + V head size) elements, as llama.cpp allocates them."""
    if not (info.n_layers and info.n_head_kv and info.head_dim_k and info.head_dim_v):
        return 0  # not a transformer header we can size; llama.cpp would refuse it anyway
    per_cell = info.n_head_kv * (info.head_dim_k + info.head_dim_v) * bytes_per_element
    swa_layers = _swa_layers(info)
    if swa_layers is None or swa_full:
        # No sliding window, a full-length cache for it anyway, or a window whose layer pattern we
        # cannot tell: then every layer gets the full context, the conservative bound.
        return round(info.n_layers * cells * per_cell)
    # llama.cpp keeps the window plus one micro-batch for sliding-window layers (llama-kv-cache-iswa).
    swa_cells = pad(min(cells, info.sliding_window + n_ubatch), KV_PAD)
    n_swa = sum(swa_layers)
    return round(((info.n_layers - n_swa) * cells + n_swa * swa_cells) * per_cell)


def _swa_layers(info: GGUFInfo) -> list[bool] | None:
    """Which layers use the sliding window, by llama.cpp's rules; None when none do or we cannot tell."""
    if not info.sliding_window or not info.n_layers:
        return None
    pattern = info.swa_pattern
    if isinstance(pattern, tuple):
        return list(pattern[: info.n_layers]) if len(pattern) >= info.n_layers else None
    period = pattern if pattern is not None else _SWA_PERIOD.get(info.architecture)
    if period is None:
        return None
    # Every period-th layer (the last of each group) attends to the full context; period 0: none do.
    return [period == 0 or layer % period < period - 1 for layer in range(info.n_layers)]


def _compute_buffer_bytes(info: GGUFInfo, cells: int, n_ubatch: int) -> int:
    """llama.cpp's compute buffer, at its peak over the graph: the larger of two f32 tensors.

    Either the logits of a whole micro-batch (n_vocab per token) or one layer's attention scores
    plus their mask (n_head + 1 rows of cells per token; flash attention is off, llama-cpp-python's
    default). Against llama-cpp-python 0.3.36 on CPU this lands within 4%: SmolLM2 135M measured
    99 MiB at 2k context, 166 MiB at 8k, 326 MiB at 16k; Gemma 3 270M 515 MiB at 2k to 32k.
    """
    per_token = max(info.n_vocab or 0, cells * ((info.n_head or 0) + 1))
    return per_token * n_ubatch * 4


def pad(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple
