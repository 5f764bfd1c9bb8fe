"""What this machine has, and memory estimates for the real bundled models, checked against the
figures llama.cpp itself logs when it loads them."""

from __future__ import annotations

import dataclasses
import os

import psutil
import pytest

from app.engines.gguf_header import GGUFInfo, read_gguf_header
from app.hardware import (
    GIB,
    MIB,
    RUNTIME_BYTES,
    FitEstimate,
    GpuMemory,
    MemoryState,
    estimate_fit,
    memory_state,
    physical_cores,
)

PLENTY = MemoryState(ram_total=64 * GIB, ram_available=48 * GIB)


@pytest.fixture(scope="module")
def smollm2(smollm2_path: str) -> GGUFInfo:
    return read_gguf_header(smollm2_path)


@pytest.fixture(scope="module")
def gemma(gemma_path: str) -> GGUFInfo:
    return read_gguf_header(gemma_path)


# --- this machine -------------------------------------------------------------------------------


def test_memory_state_reads_this_machine() -> None:
    state = memory_state()
    assert state.ram_total == psutil.virtual_memory().total
    assert 0 < state.ram_available <= state.ram_total
    for gpu in state.gpus:  # none without NVIDIA hardware, a driver and nvidia-ml-py
        assert gpu.name
        assert 0 <= gpu.free_bytes <= gpu.total_bytes


def test_physical_cores() -> None:
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)


# --- KV cache -----------------------------------------------------------------------------------


def test_kv_cache_grows_with_context_as_llama_cpp_allocates_it(smollm2: GGUFInfo) -> None:
    short = estimate_fit(smollm2, 2048, memory=PLENTY)
    long = estimate_fit(smollm2, 8192, memory=PLENTY)
    # llama.cpp logs "KV buffer size = 45.00 MiB" and "= 180.00 MiB" for these loads:
    # 30 layers x 3 KV heads x (64 + 64) x 2 bytes per cell.
    assert short.kv_cache_bytes == 45 * MIB
    assert long.kv_cache_bytes == 180 * MIB == 4 * short.kv_cache_bytes
    assert short.weights_bytes == long.weights_bytes == smollm2.file_size
    assert short.total_bytes == short.weights_bytes + short.kv_cache_bytes + short.overhead_bytes
    assert (short.where, short.verdict, short.n_ctx) == ("RAM", "fits", 2048)


def test_kv_cache_rounds_the_context_up_like_llama_cpp(smollm2: GGUFInfo) -> None:
    # llama.cpp pads the context to a multiple of 256 cells.
    assert estimate_fit(smollm2, 2000, memory=PLENTY).kv_cache_bytes == 45 * MIB


def test_gemma_sliding_window_layers(gemma: GGUFInfo) -> None:
    # llama-cpp-python keeps llama.cpp's swa_full default, and llama.cpp then logs 24 MiB for the
    # 3 full-attention layers plus 120 MiB for the 15 sliding-window ones at 8,192 context.
    assert estimate_fit(gemma, 8192, memory=PLENTY).kv_cache_bytes == 144 * MIB
    # Without swa_full, the 15 window layers keep 512 + 512 (one micro-batch) cells instead.
    windowed = estimate_fit(gemma, 8192, memory=PLENTY, swa_full=False)
    assert windowed.kv_cache_bytes == (3 * 8192 + 15 * 1024) * 1 * 512 * 2 == 39 * MIB


def test_per_layer_window_flags_from_the_file(gemma: GGUFInfo) -> None:
    every_layer = dataclasses.replace(gemma, swa_pattern=(True,) * 18)
    assert estimate_fit(every_layer, 8192, memory=PLENTY, swa_full=False).kv_cache_bytes == 18 * MIB


def test_unknown_window_pattern_takes_the_full_size_bound(gemma: GGUFInfo) -> None:
    unknown = dataclasses.replace(gemma, architecture="somethingnew")
    windowed = estimate_fit(unknown, 8192, memory=PLENTY, swa_full=False)
    assert windowed.kv_cache_bytes == estimate_fit(gemma, 8192, memory=PLENTY).kv_cache_bytes


def test_quantized_kv_cache_is_smaller(smollm2: GGUFInfo) -> None:
    q8 = estimate_fit(smollm2, 2048, memory=PLENTY, kv_bytes_per_element=34 / 32)
    assert q8.kv_cache_bytes == round(45 * MIB * 34 / 64)


# --- overhead -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "n_ctx", "measured_mib"),
    [
        # "CPU compute buffer size" logged by llama-cpp-python 0.3.36 (CPU, defaults) for each load.
        ("smollm2", 2048, 99.38),
        ("smollm2", 8192, 166.38),
        ("smollm2", 16384, 326.38),
        ("gemma", 2048, 514.50),
        ("gemma", 32768, 514.50),
    ],
)
def test_overhead_follows_llama_cpp_compute_buffer(
    request: pytest.FixtureRequest, model: str, n_ctx: int, measured_mib: float
) -> None:
    info = request.getfixturevalue(model)
    compute = estimate_fit(info, n_ctx, memory=PLENTY).overhead_bytes - RUNTIME_BYTES
    assert compute == pytest.approx(measured_mib * MIB, rel=0.05)


# --- where, verdicts, messages ------------------------------------------------------------------


def test_too_big_for_tiny_ram(smollm2: GGUFInfo) -> None:
    tiny = MemoryState(ram_total=GIB, ram_available=100 * MIB)
    estimate = estimate_fit(smollm2, 4096, memory=tiny)
    assert estimate.verdict == "too_big"
    assert (estimate.where, estimate.available_bytes) == ("RAM", 100 * MIB)
    message = estimate.message()
    figures = (
        f"needs ~{estimate.total_bytes / MIB:.0f} MiB (weights {estimate.weights_bytes / MIB:.0f} "
        f"+ KV cache {estimate.kv_cache_bytes / MIB:.0f} + overhead {estimate.overhead_bytes / MIB:.0f}) "
        "at 4,096 context; 100 MiB RAM available"
    )
    assert message.startswith(figures), message
    assert "KV cache 90 " in message  # 4,096 cells: twice the 45 MiB llama.cpp logs at 2,048
    assert message.endswith("too big: use a smaller quantization or a shorter context")


@pytest.mark.parametrize(("share", "verdict"), [(0.5, "fits"), (0.9, "tight"), (1.1, "too_big")])
def test_verdicts(smollm2: GGUFInfo, share: float, verdict: str) -> None:
    need = estimate_fit(smollm2, 4096, memory=PLENTY).total_bytes
    memory = MemoryState(ram_total=64 * GIB, ram_available=int(need / share))
    estimate = estimate_fit(smollm2, 4096, memory=memory)
    assert estimate.verdict == verdict
    assert verdict.replace("_", " ") in estimate.message()


def test_big_totals_are_shown_in_gib(gemma: GGUFInfo) -> None:
    message = estimate_fit(gemma, 32768, memory=PLENTY).message()
    assert message.startswith("needs ~1.4 GiB (weights 0.2 + KV cache 0.6 + overhead 0.6) at 32,768 context")
    assert message.endswith("48.0 GiB RAM available — fits")


def test_gpu_offload_is_checked_against_vram(smollm2: GGUFInfo) -> None:
    gpu = GpuMemory(name="Test GPU", total_bytes=8 * GIB, free_bytes=6 * GIB)
    memory = MemoryState(ram_total=64 * GIB, ram_available=48 * GIB, gpus=(gpu,))

    everything = estimate_fit(smollm2, 4096, n_gpu_layers=-1, memory=memory)
    assert (everything.where, everything.available_bytes) == ("VRAM", 6 * GIB)
    assert everything.weights_bytes == smollm2.file_size
    half = estimate_fit(smollm2, 4096, n_gpu_layers=15, memory=memory)
    assert half.weights_bytes == round(smollm2.file_size / 2)
    assert half.kv_cache_bytes == everything.kv_cache_bytes // 2
    assert estimate_fit(smollm2, 4096, n_gpu_layers=0, memory=memory).where == "RAM"
    # No GPU known (a CPU box, or Apple Silicon's shared memory): offload is sized against RAM.
    assert estimate_fit(smollm2, 4096, n_gpu_layers=-1, memory=PLENTY).where == "RAM"


def test_too_big_for_vram_suggests_fewer_gpu_layers(smollm2: GGUFInfo) -> None:
    small_gpu = GpuMemory(name="Test GPU", total_bytes=GIB, free_bytes=200 * MIB)
    memory = MemoryState(ram_total=64 * GIB, ram_available=48 * GIB, gpus=(small_gpu,))
    message = estimate_fit(smollm2, 4096, n_gpu_layers=-1, memory=memory).message()
    assert "200 MiB VRAM available — too big" in message and "fewer GPU layers" in message


def test_zero_context_means_the_trained_context(smollm2: GGUFInfo) -> None:
    assert estimate_fit(smollm2, 0, memory=PLENTY).n_ctx == 8192


def test_defaults_to_this_machines_memory(smollm2: GGUFInfo) -> None:
    estimate = estimate_fit(smollm2, 2048)
    assert isinstance(estimate, FitEstimate)
    assert 0 < estimate.available_bytes <= psutil.virtual_memory().total


def test_auto_offload_is_checked_against_ram_and_free_vram_together(smollm2: GGUFInfo) -> None:
    """By default the worker offloads what fits and keeps the rest in RAM: together they must hold it."""
    card = MemoryState(ram_total=8 * GIB, ram_available=1 * GIB,
                       gpus=(GpuMemory("NVIDIA GeForce RTX 4070", 12 * GIB, 10 * GIB),))
    auto = estimate_fit(smollm2, 2048, None, memory=card)
    assert auto.where == "RAM + VRAM" and auto.available_bytes == 11 * GIB and auto.verdict == "fits"
    assert estimate_fit(smollm2, 2048, None, memory=PLENTY).where == "RAM"  # no GPU NVML can see
