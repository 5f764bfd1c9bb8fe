"""What this machine has, and whether a model fits in it.

The fit estimate follows how llama.cpp, driven by llama-cpp-python with its defaults, sizes its
buffers (weights, KV cache, compute buffer), so the app can warn before a load that would swap or
fail, and say what to change.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from app.engines.gguf_header import GGUFInfo
from app.units import GIB, MIB, size_text


FITS_SHARE = 0.8  # "fits" leaves a fifth of the memory to the OS, the UI and the other pane
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
class GpuMemory:
    name: str
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class MemoryState:
    ram_total: int
    ram_available: int
    gpus: tuple[GpuMemory, ...] = ()


def memory_state() -> MemoryState:
    """RAM from psutil; NVIDIA GPUs from NVML when nvidia-ml-py and a driver are present. Never raises."""
    vm = psutil.virtual_memory()
    return MemoryState(ram_total=vm.total, ram_available=vm.available, gpus=_nvidia_gpus())


def _nvidia_gpus() -> tuple[GpuMemory, ...]:
    try:
        import pynvml
    except ImportError:
        return ()
    # NVML is a C library behind ctypes: a missing driver, a driver/library mismatch or a GPU that
    # has fallen off the bus surface as assorted exceptions, and all of them just mean "no GPU info".
    try:
        pynvml.nvmlInit()
    except Exception:
        return ()
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            if isinstance(name, bytes):  # older nvidia-ml-py releases return bytes
                name = name.decode(errors="replace")
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(GpuMemory(name=name, total_bytes=int(memory.total), free_bytes=int(memory.free)))
        return tuple(gpus)
    except Exception:
        return ()
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def physical_cores() -> int:
    """Physical cores this process may use: the thread count that gives llama.cpp its best speed."""
    cores = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    # A container or `taskset` can allow fewer CPUs than the machine has; threads beyond those only
    # contend. (macOS has no CPU affinity, hence AttributeError.)
    try:
        allowed = len(psutil.Process().cpu_affinity())
    except (AttributeError, psutil.Error, OSError):
        allowed = cores
    return max(1, min(cores, allowed))


@dataclass(frozen=True)
class FitEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    total_bytes: int
    available_bytes: int
    where: str  # "RAM" or "VRAM"
    verdict: str  # "fits" | "tight" | "too_big"
    n_ctx: int

    def message(self) -> str:
        """One line with the figures, and for a model that does not fit, what to change."""
        unit, size = ("GiB", GIB) if self.total_bytes >= GIB else ("MiB", MIB)
        digits = 1 if unit == "GiB" else 0

        def part(n: int) -> str:
            return f"{n / size:.{digits}f}"

        needs = (
            f"needs ~{part(self.total_bytes)} {unit} (weights {part(self.weights_bytes)} + KV cache "
            f"{part(self.kv_cache_bytes)} + overhead {part(self.overhead_bytes)}) at {self.n_ctx:,} context; "
            f"{size_text(self.available_bytes)} {self.where} available"
        )
        if self.verdict == "fits":
            return f"{needs} — fits"
        if self.verdict == "tight":
            return f"{needs} — tight: it may swap or fail; close other apps or use a shorter context"
        if self.where == "VRAM":
            return f"{needs} — too big: use a smaller quantization, a shorter context or fewer GPU layers"
        return f"{needs} — too big: use a smaller quantization or a shorter context"


def estimate_fit(
    info: GGUFInfo,
    n_ctx: int,
    n_gpu_layers: int = 0,
    memory: MemoryState | None = None,
    kv_bytes_per_element: float = 2,
    *,
    n_batch: int = 512,
    swa_full: bool = True,
) -> FitEstimate:
    """Estimate the memory a llama.cpp load of `info` takes at `n_ctx` tokens, against what is free.

    n_gpu_layers: 0 keeps the model in RAM; -1 (or at least the layer count) offloads all of it.
    kv_bytes_per_element: 2 for the default f16 cache (q8_0 is 1.0625).
    swa_full: llama.cpp's context default, which llama-cpp-python keeps unless told otherwise,
    gives sliding-window layers a full-length cache; pass False if the engine turns that off.
    """
    if n_ctx <= 0:  # llama.cpp's "0: the trained context"
        n_ctx = info.context_length or 0
        if n_ctx <= 0:
            raise ValueError(f"n_ctx must be positive; {info.path} does not say its trained context")
    memory = memory or memory_state()
    cells = _pad(n_ctx, KV_PAD)
    n_ubatch = min(n_batch, N_UBATCH)

    weights = info.file_size
    kv = _kv_cache_bytes(info, cells, n_ubatch, kv_bytes_per_element, swa_full)
    overhead = _compute_buffer_bytes(info, cells, n_ubatch) + RUNTIME_BYTES
    if n_gpu_layers != 0 and memory.gpus:
        where = "VRAM"
        # The offloaded layers' weights and KV cache go to the GPU; the rest stay in RAM (not checked
        # here). llama.cpp spreads layers over every GPU by default, so their free memory adds up.
        share = _offloaded_share(info, n_gpu_layers)
        weights, kv = round(weights * share), round(kv * share)
        overhead += GPU_RUNTIME_BYTES
        available = sum(gpu.free_bytes for gpu in memory.gpus)
    else:
        # On Apple Silicon the GPU shares RAM, so RAM is also right for Metal offload.
        where = "RAM"
        available = memory.ram_available

    total = weights + kv + overhead
    if total <= FITS_SHARE * available:
        verdict = "fits"
    elif total <= available:
        verdict = "tight"
    else:
        verdict = "too_big"
    return FitEstimate(weights, kv, overhead, total, available, where, verdict, n_ctx)


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
    swa_cells = _pad(min(cells, info.sliding_window + n_ubatch), KV_PAD)
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


def _offloaded_share(info: GGUFInfo, n_gpu_layers: int) -> float:
    if n_gpu_layers < 0 or not info.n_layers or n_gpu_layers >= info.n_layers:
        return 1.0
    return n_gpu_layers / info.n_layers


def _pad(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


