"""What this llama.cpp build can run on, asked of llama.cpp itself.

llama-cpp-python binds llama.h but not ggml's device registry, so the registry is read through
ctypes from the libggml it ships: the backends compiled in (CPU, CUDA, Metal, Vulkan, HIP…) and
the devices each sees, with their free and total memory. This is what decides how many layers can
be offloaded (app/engines/offload.py) and what `fastslow doctor` reports; tests hand in a
LlamaBuild of their own instead of asking a real library.
"""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass

# ggml_backend_dev_type, in ggml-backend.h's order.
_DEVICE_KINDS = ("cpu", "gpu", "igpu", "accel")
_LIB_NAMES = ("libggml.so", "libggml.dylib", "ggml.dll")


@dataclass(frozen=True)
class Device:
    """One device a ggml backend sees."""

    name: str  # ggml's name: "CPU", "CUDA0", "Metal", "Vulkan0"
    description: str  # "NVIDIA GeForce RTX 4070", "Apple M2 Pro", the CPU's model
    kind: str  # "cpu", "gpu", "igpu" (integrated, shares RAM) or "accel"
    backend: str  # the backend it belongs to: "CPU", "CUDA", "Metal", "Vulkan", "ROCm"…
    free_bytes: int
    total_bytes: int

    @property
    def offloads(self) -> bool:
        """A device llama.cpp can put layers on (GPUs, integrated GPUs; not the CPU, not accelerators
        such as BLAS that only speed up CPU matrix products)."""
        return self.kind in ("gpu", "igpu")

    @property
    def unified(self) -> bool:
        """Its memory is the system's RAM (Apple Silicon, integrated GPUs)."""
        return self.kind == "igpu" or self.backend == "Metal"


@dataclass(frozen=True)
class LlamaBuild:
    """The llama.cpp a worker runs: its version, backends, devices, and whether it can offload."""

    version: str  # llama-cpp-python's version
    backends: tuple[str, ...]  # compiled in, e.g. ("CUDA", "CPU")
    devices: tuple[Device, ...]
    supports_offload: bool  # llama_supports_gpu_offload(): a GPU backend is compiled in
    system_info: str = ""  # llama_print_system_info(): CPU features and backends

    @property
    def gpus(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.offloads)

    @property
    def gpu_backends(self) -> tuple[str, ...]:
        return tuple(b for b in self.backends if b != "CPU")


CPU_ONLY = LlamaBuild(version="?", backends=("CPU",), devices=(), supports_offload=False)


def llama_build() -> LlamaBuild:
    """Ask the installed llama.cpp what it was built with and what it sees. Imports llama_cpp (which
    loads its backends); a registry that cannot be read leaves `devices` empty, never raises."""
    import llama_cpp

    version = getattr(llama_cpp, "__version__", "?")
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    supports = bool(llama_cpp.llama_supports_gpu_offload())
    try:
        backends, devices = _registry(os.path.join(os.path.dirname(llama_cpp.__file__), "lib"))
    except (OSError, AttributeError):  # a build without the shared registry: say what system_info says
        backends, devices = _backends_from_system_info(info), ()
    return LlamaBuild(version=version, backends=backends, devices=devices, supports_offload=supports,
                      system_info=info.strip())


def _backends_from_system_info(info: str) -> tuple[str, ...]:
    named = re.findall(r"(?:^|\|)\s*([A-Za-z]+)\s*:", info)
    gpu = tuple(dict.fromkeys(n for n in named if n not in ("CPU",)))
    return gpu + ("CPU",)


def _library(lib_dir: str) -> ctypes.CDLL:
    for name in _LIB_NAMES:
        path = os.path.join(lib_dir, name)
        if os.path.exists(path):
            return ctypes.CDLL(path)
    raise OSError(f"no ggml library in {lib_dir}")


def _registry(lib_dir: str) -> tuple[tuple[str, ...], tuple[Device, ...]]:
    g = _library(lib_dir)
    size_t, ptr, text = ctypes.c_size_t, ctypes.c_void_p, ctypes.c_char_p
    g.ggml_backend_reg_count.restype = size_t
    g.ggml_backend_reg_get.restype, g.ggml_backend_reg_get.argtypes = ptr, [size_t]
    g.ggml_backend_reg_name.restype, g.ggml_backend_reg_name.argtypes = text, [ptr]
    g.ggml_backend_dev_count.restype = size_t
    g.ggml_backend_dev_get.restype, g.ggml_backend_dev_get.argtypes = ptr, [size_t]
    for fn in (g.ggml_backend_dev_name, g.ggml_backend_dev_description):
        fn.restype, fn.argtypes = text, [ptr]
    g.ggml_backend_dev_type.restype, g.ggml_backend_dev_type.argtypes = ctypes.c_int, [ptr]
    g.ggml_backend_dev_backend_reg.restype, g.ggml_backend_dev_backend_reg.argtypes = ptr, [ptr]
    g.ggml_backend_dev_memory.argtypes = [ptr, ctypes.POINTER(size_t), ctypes.POINTER(size_t)]

    def name_of(raw: bytes | None) -> str:
        return (raw or b"").decode("utf-8", "replace")

    regs = [name_of(g.ggml_backend_reg_name(g.ggml_backend_reg_get(i))) for i in range(g.ggml_backend_reg_count())]
    devices = []
    for i in range(g.ggml_backend_dev_count()):
        dev = g.ggml_backend_dev_get(i)
        free, total = size_t(0), size_t(0)
        g.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        kind = g.ggml_backend_dev_type(dev)
        devices.append(Device(
            name=name_of(g.ggml_backend_dev_name(dev)),
            description=name_of(g.ggml_backend_dev_description(dev)).strip(),
            kind=_DEVICE_KINDS[kind] if 0 <= kind < len(_DEVICE_KINDS) else "accel",
            backend=name_of(g.ggml_backend_reg_name(g.ggml_backend_dev_backend_reg(dev))),
            free_bytes=int(free.value),
            total_bytes=int(total.value),
        ))
    # GPU backends first, the CPU last: the order a user reads "where it can run".
    ordered = sorted(dict.fromkeys(regs), key=lambda r: r == "CPU")
    return tuple(ordered), tuple(devices)
