"""How many of a model's layers go to the GPU, and why: the worker's plan before llama.cpp loads it.

By default (`n_gpu_layers=None`, "auto") a model is offloaded in full when it fits the GPUs' free
memory (unified memory on Apple Silicon), else as many layers as fit; a number the user set wins
(0: the CPU; -1: every layer). The plan's words say where the model runs and why, and every run
stores them, so a figure is never read without knowing what hardware made it.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engines.devices import Device, LlamaBuild
from app.engines.gguf_header import GGUFInfo
from app.engines.sizing import GPU_RUNTIME_BYTES, footprint
from app.units import size_text

# Free memory kept back for the desktop, the driver and the other pane: a tenth, at least 512 MiB.
# llama.cpp's own automatic fitting keeps a margin of the same size.
VRAM_MARGIN_SHARE = 0.1
VRAM_MARGIN_MIN = 512 * 1024 * 1024
ALL_LAYERS = -1


@dataclass(frozen=True)
class OffloadPlan:
    n_gpu_layers: int  # what llama.cpp is asked for: 0 (CPU), N, or -1 (all, the output layer too)
    backend: str  # "CUDA", "Metal", "Vulkan"… or "CPU"
    device: str  # the GPU(s) it lands on, as llama.cpp names them; "" on the CPU
    reason: str  # why this many, in a sentence


def plan_offload(info: GGUFInfo, n_ctx: int, requested: int | None, build: LlamaBuild, *,
                 n_batch: int = 512) -> OffloadPlan:
    """The layers to offload for a load of `info` at `n_ctx`, by `build`'s devices and their free memory."""
    gpus = _target_gpus(build)
    if requested == 0:
        return OffloadPlan(0, "CPU", "", "GPU layers are set to 0: the CPU only")
    if not build.supports_offload or not gpus:
        why = ("this llama.cpp was built for the CPU only" if not build.supports_offload
               else f"this llama.cpp has {', '.join(build.gpu_backends)} but sees no GPU (is its driver loaded?)")
        asked = "" if requested is None else f"{_layers(requested)} asked for, but "
        return OffloadPlan(0, "CPU", "", f"{asked}{why}")
    backend, device = gpus[0].backend, _device_names(gpus)
    if requested is not None:
        return OffloadPlan(requested, backend, device, f"{_layers(requested)}, as set")

    n_layers = info.n_layers or 0
    size = footprint(info, n_ctx, n_batch=n_batch)
    free = sum(g.free_bytes for g in gpus)
    usable = free - max(round(free * VRAM_MARGIN_SHARE), VRAM_MARGIN_MIN) - GPU_RUNTIME_BYTES - size.compute_bytes
    whole = size.weights_bytes + size.kv_cache_bytes
    where = f"{size_text(free)} free" + ("" if gpus[0].unified else " on the GPU" if len(gpus) == 1 else " on the GPUs")
    if whole <= usable or not n_layers:
        return OffloadPlan(ALL_LAYERS, backend, device, f"all {n_layers} layers fit in {where}")
    fitting = max(0, min(n_layers, usable // max(size.per_layer_bytes, 1)))
    if fitting == 0:
        return OffloadPlan(0, "CPU", "", f"not one layer fits in {where} (each needs "
                                         f"{size_text(size.per_layer_bytes)}): the CPU runs it")
    return OffloadPlan(int(fitting), backend, device,
                       f"{fitting} of {n_layers} layers fit in {where} ({size_text(whole)} needed for all)")


def _target_gpus(build: LlamaBuild) -> tuple[Device, ...]:
    """The GPUs llama.cpp would split the layers across: those of the first GPU backend compiled in
    (a build with two GPU backends seeing one card would otherwise count its memory twice)."""
    gpus = build.gpus
    return tuple(g for g in gpus if g.backend == gpus[0].backend) if gpus else ()


def _device_names(gpus: tuple[Device, ...]) -> str:
    names = [g.description or g.name for g in gpus]
    if len(set(names)) == 1:
        return names[0] if len(names) == 1 else f"{len(names)}× {names[0]}"
    return " + ".join(names)


def _layers(n: int) -> str:
    return "every layer" if n < 0 else f"{n} layer{'s' if n != 1 else ''}"


def placement(backend: str, device: str, offloaded: int, n_layers: int, n_threads: int) -> str:
    """Where a model runs, in a few words: "CPU · 8 threads", "Metal · 28/28 layers",
    "CUDA · RTX 4070 · 20/28 layers · 8 threads" (a partial offload leaves the rest to the CPU threads),
    "remote · gpu-box:8000" (a served model)."""
    if backend == "remote":  # a served model: the server's host, its hardware is the server's to say
        return f"remote · {device}" if device else "remote"
    if not offloaded or backend in ("", "CPU"):
        return f"CPU · {n_threads} thread{'s' if n_threads != 1 else ''}" if n_threads else "CPU"
    shown = min(offloaded, n_layers) if n_layers else offloaded  # llama.cpp counts the output layer too
    parts = [backend]
    if device and backend != "Metal":  # on a Mac there is one GPU, and "Metal" names it
        parts.append(short_device(device))
    parts.append(f"{shown}/{n_layers} layers" if n_layers else f"{shown} layers")
    if n_layers and shown < n_layers and n_threads:
        parts.append(f"{n_threads} threads")
    return " · ".join(parts)


def short_device(name: str) -> str:
    """"NVIDIA GeForce RTX 4070" → "RTX 4070": the vendor's words add nothing in a pane's header."""
    for prefix in ("NVIDIA ", "GeForce ", "AMD ", "Radeon ", "Intel(R) ", "Intel "):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix):]
    return name
