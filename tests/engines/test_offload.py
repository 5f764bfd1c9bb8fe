"""The offload plan: how many layers go to the GPU by default, and the words that say where a model runs.

llama.cpp's build and its devices are stand-ins (a LlamaBuild written here), the way the NVML
stand-in works for telemetry; the model is a header shaped like Qwen3-8B at Q4_K_M.
"""

from __future__ import annotations

import pytest

from app.engines.devices import CPU_ONLY, Device, LlamaBuild, llama_build
from app.engines.gguf_header import GGUFInfo
from app.engines.offload import ALL_LAYERS, placement, plan_offload, short_device
from app.engines.sizing import footprint
from app.units import GIB, MIB

QWEN3_8B = GGUFInfo(
    path="/models/Qwen3-8B-Q4_K_M.gguf", file_size=int(4.68 * GIB), version=3, architecture="qwen3",
    name="Qwen3 8B", n_params=8_190_000_000, n_tensors=399, quantization="Q4_K_M", context_length=40960,
    n_layers=36, n_embd=4096, n_head=32, n_head_kv=8, head_dim_k=128, head_dim_v=128, sliding_window=None,
    n_vocab=151936, chat_template=None, bos_token_id=None, eos_token_id=151645, swa_pattern=None, metadata={})


def gpu(free_gib: float, name: str = "NVIDIA GeForce RTX 4070", backend: str = "CUDA", index: int = 0,
        kind: str = "gpu") -> Device:
    return Device(name=f"{backend}{index}", description=name, kind=kind, backend=backend,
                  free_bytes=int(free_gib * GIB), total_bytes=int(12 * GIB))


def build(*gpus: Device, offload: bool = True) -> LlamaBuild:
    cpu = Device("CPU", "AMD Ryzen 7", "cpu", "CPU", 30 * GIB, 32 * GIB)
    backends = tuple(dict.fromkeys(g.backend for g in gpus)) + ("CPU",)
    return LlamaBuild(version="0.3.36", backends=backends, devices=(*gpus, cpu), supports_offload=offload)


def test_a_model_that_fits_the_free_vram_goes_to_the_gpu_whole():
    plan = plan_offload(QWEN3_8B, 4096, None, build(gpu(11.0)))
    assert plan.n_gpu_layers == ALL_LAYERS
    assert (plan.backend, plan.device) == ("CUDA", "NVIDIA GeForce RTX 4070")
    assert plan.reason == "all 36 layers fit in 11.0 GiB free on the GPU"


def test_one_that_does_not_gets_the_layers_that_fit_and_the_cpu_the_rest():
    plan = plan_offload(QWEN3_8B, 4096, None, build(gpu(4.0)))
    size = footprint(QWEN3_8B, 4096)
    assert 0 < plan.n_gpu_layers < 36
    # What it puts on the GPU stays inside the free memory less the margin, the runtime and the
    # compute buffer; one layer more would not.
    assert plan.n_gpu_layers * size.per_layer_bytes <= 4.0 * GIB - 512 * MIB - 384 * MIB - size.compute_bytes
    assert (plan.n_gpu_layers + 1) * size.per_layer_bytes > 4.0 * GIB - 512 * MIB - 384 * MIB - size.compute_bytes
    assert plan.reason.startswith(f"{plan.n_gpu_layers} of 36 layers fit in 4.0 GiB free on the GPU")


def test_a_longer_context_leaves_room_for_fewer_layers():
    short = plan_offload(QWEN3_8B, 4096, None, build(gpu(5.0))).n_gpu_layers
    long = plan_offload(QWEN3_8B, 32768, None, build(gpu(5.0))).n_gpu_layers
    assert 0 < long < short


def test_when_not_one_layer_fits_the_cpu_runs_it_and_says_why():
    plan = plan_offload(QWEN3_8B, 4096, None, build(gpu(0.9)))
    assert (plan.n_gpu_layers, plan.backend, plan.device) == (0, "CPU", "")
    assert plan.reason.startswith("not one layer fits in 922 MiB free on the GPU")


def test_two_gpus_add_up_and_are_named_together():
    plan = plan_offload(QWEN3_8B, 4096, None, build(gpu(4.0), gpu(4.0, index=1)))
    assert plan.n_gpu_layers == ALL_LAYERS and plan.device == "2× NVIDIA GeForce RTX 4070"


def test_apple_silicon_offloads_to_metal_in_unified_memory():
    metal = gpu(21.3, name="Apple M2 Pro", backend="Metal", kind="gpu")
    plan = plan_offload(QWEN3_8B, 4096, None, build(metal))
    assert (plan.n_gpu_layers, plan.backend) == (ALL_LAYERS, "Metal")
    assert plan.reason == "all 36 layers fit in 21.3 GiB free"  # unified: no "on the GPU"


def test_a_cpu_build_keeps_the_model_on_the_cpu_whatever_was_asked():
    assert plan_offload(QWEN3_8B, 4096, None, CPU_ONLY).reason == "this llama.cpp was built for the CPU only"
    asked = plan_offload(QWEN3_8B, 4096, 20, CPU_ONLY)
    assert (asked.n_gpu_layers, asked.backend) == (0, "CPU")
    assert asked.reason == "20 layers asked for, but this llama.cpp was built for the CPU only"


def test_a_gpu_build_that_sees_no_gpu_says_so():
    cuda_no_card = LlamaBuild("0.3.36", ("CUDA", "CPU"), (), supports_offload=True)
    plan = plan_offload(QWEN3_8B, 4096, None, cuda_no_card)
    assert (plan.n_gpu_layers, plan.backend) == (0, "CPU")
    assert plan.reason == "this llama.cpp has CUDA but sees no GPU (is its driver loaded?)"


def test_what_the_user_set_wins():
    small = build(gpu(0.5))
    assert plan_offload(QWEN3_8B, 4096, 0, build(gpu(24))).reason == "GPU layers are set to 0: the CPU only"
    assert plan_offload(QWEN3_8B, 4096, 0, build(gpu(24))).n_gpu_layers == 0
    every = plan_offload(QWEN3_8B, 4096, -1, small)  # not checked against the memory: the user knows
    assert (every.n_gpu_layers, every.reason) == (-1, "every layer, as set")
    assert plan_offload(QWEN3_8B, 4096, 12, small).reason == "12 layers, as set"


def test_accelerators_that_are_not_gpus_do_not_take_layers():
    blas = Device("BLAS", "Accelerate", "accel", "BLAS", 0, 0)
    plan = plan_offload(QWEN3_8B, 4096, None, LlamaBuild("0.3.36", ("BLAS", "CPU"), (blas,), supports_offload=False))
    assert plan.n_gpu_layers == 0


@pytest.mark.parametrize("args, words", [
    (("CPU", "", 0, 30, 8), "CPU · 8 threads"),
    (("CPU", "", 0, 30, 1), "CPU · 1 thread"),
    (("Metal", "Apple M2 Pro", 29, 28, 0), "Metal · 28/28 layers"),  # llama.cpp counts the output layer
    (("CUDA", "NVIDIA GeForce RTX 4070", 20, 28, 8), "CUDA · RTX 4070 · 20/28 layers · 8 threads"),
    (("CUDA", "NVIDIA GeForce RTX 4070", 29, 28, 8), "CUDA · RTX 4070 · 28/28 layers"),
    (("Vulkan", "AMD Radeon RX 7600", 33, 32, 6), "Vulkan · RX 7600 · 32/32 layers"),
])
def test_where_a_model_runs_in_a_few_words(args, words):
    assert placement(*args) == words


def test_short_device_names_keep_the_model():
    assert short_device("NVIDIA GeForce RTX 4070") == "RTX 4070"
    assert short_device("NVIDIA H200") == "H200"
    assert short_device("Apple M2 Pro") == "Apple M2 Pro"


def test_this_machines_llama_cpp_is_asked_for_real():
    """The real library: on this CPU-only machine it lists the CPU and no GPU; a GPU build would list
    its devices with their memory."""
    real = llama_build()
    assert "CPU" in real.backends and real.version
    assert any(d.kind == "cpu" for d in real.devices)
    for device in real.devices:
        assert 0 <= device.free_bytes <= device.total_bytes or device.total_bytes == 0
    if not real.supports_offload:
        assert plan_offload(QWEN3_8B, 4096, None, real).backend == "CPU"


def test_the_model_info_says_where_it_runs(smollm2_engine_info):
    info = smollm2_engine_info
    assert info.placement.startswith(("CPU", "CUDA", "Metal", "Vulkan", "ROCm"))
    assert info.offload_note
    if info.backend_used == "CPU":
        assert info.placement == f"CPU · {info.n_threads} thread{'s' if info.n_threads != 1 else ''}"
