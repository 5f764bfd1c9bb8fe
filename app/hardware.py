"""What this machine has, and whether a model fits in it.

The fit estimate follows how llama.cpp, driven by llama-cpp-python with its defaults, sizes its
buffers (weights, KV cache, compute buffer), so the app can warn before a load that would swap or
fail, and say what to change.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from app.engines.gguf_header import GGUFInfo
from app.engines.sizing import GPU_RUNTIME_BYTES, RUNTIME_BYTES, footprint
from app.units import GIB, MIB, size_text


FITS_SHARE = 0.8  # "fits" leaves a fifth of the memory to the OS, the UI and the other pane


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
    n_gpu_layers: int | None = 0,
    memory: MemoryState | None = None,
    kv_bytes_per_element: float = 2,
    *,
    n_batch: int = 512,
    swa_full: bool = True,
) -> FitEstimate:
    """Estimate the memory a llama.cpp load of `info` takes at `n_ctx` tokens, against what is free.

    n_gpu_layers: 0 keeps the model in RAM; -1 (or at least the layer count) offloads all of it;
    None (auto) offloads what fits, so RAM and free VRAM together must hold it. Without an NVIDIA GPU
    NVML can see, the check is against RAM (Apple Silicon's GPU shares it).
    kv_bytes_per_element: 2 for the default f16 cache (q8_0 is 1.0625).
    swa_full: llama.cpp's context default, which llama-cpp-python keeps unless told otherwise,
    gives sliding-window layers a full-length cache; pass False if the engine turns that off.
    """
    if n_ctx <= 0:  # llama.cpp's "0: the trained context"
        n_ctx = info.context_length or 0
        if n_ctx <= 0:
            raise ValueError(f"n_ctx must be positive; {info.path} does not say its trained context")
    memory = memory or memory_state()
    size = footprint(info, n_ctx, n_batch=n_batch, kv_bytes_per_element=kv_bytes_per_element, swa_full=swa_full)
    weights, kv = size.weights_bytes, size.kv_cache_bytes
    overhead = size.compute_bytes + RUNTIME_BYTES
    if n_gpu_layers is None and memory.gpus:
        # Offloaded as far as it fits (the worker's plan, app/engines/offload.py), the rest in RAM.
        where = "RAM + VRAM"
        overhead += GPU_RUNTIME_BYTES
        available = memory.ram_available + sum(gpu.free_bytes for gpu in memory.gpus)
    elif n_gpu_layers and memory.gpus:
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


def _offloaded_share(info: GGUFInfo, n_gpu_layers: int) -> float:
    if n_gpu_layers < 0 or not info.n_layers or n_gpu_layers >= info.n_layers:
        return 1.0
    return n_gpu_layers / info.n_layers
