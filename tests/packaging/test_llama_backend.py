"""The set-up's llama.cpp backend choice (packaging/llama_backend.py): over stand-in facts for each kind
of machine, the CMAKE_ARGS and per-backend wheel store, the build and install steps with pip stood in,
and a real --dry-run on this machine. No model, no network, no real build."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "packaging" / "llama_backend.py"


def _load():
    spec = importlib.util.spec_from_file_location("llama_backend", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


lb = _load()
Facts, decide, Refusal = lb.Facts, lb.decide, lb.Refusal

RTX = "NVIDIA GeForce RTX 4070"
CUDA_OK = dict(nvidia_gpus=[RTX], nvcc="/usr/local/cuda/bin/nvcc", nvcc_version="12.4",
               cuda_root="/usr/local/cuda", cublas="/usr/local/cuda/include/cublas_v2.h")
VULKAN_OK = dict(glslc="/usr/bin/glslc", vulkan_headers=(1, 3, 275), vulkan_header_path="/usr/include/vulkan/vulkan_core.h",
                 vulkan_loader=True)
VULKAN_DEBIAN12 = dict(VULKAN_OK, vulkan_headers=(1, 3, 239))
NO_ENV: dict = {}


def choose(requested=None, **facts):
    return decide(Facts(**facts), requested, NO_ENV)


# --- the choice, machine by machine ----------------------------------------------------------------

def test_apple_silicon_gets_metal():
    d = choose(system="Darwin", machine="arm64")
    assert (d.backend, d.cmake_args, d.notes) == ("metal", ["-DGGML_METAL=on"], [])
    assert "Apple Silicon" in d.why


def test_apple_silicon_gets_metal_even_with_a_vulkan_sdk():
    assert choose(system="Darwin", machine="arm64", **VULKAN_OK).backend == "metal"


def test_an_intel_mac_builds_for_the_cpu_with_metal_turned_off():
    d = choose(system="Darwin", machine="x86_64")
    assert (d.backend, d.cmake_args) == ("cpu", ["-DGGML_METAL=off"])
    assert lb.builds_itself(d)  # llama.cpp would turn Metal on by itself: pip's cached default is not a CPU build


def test_an_nvidia_gpu_with_nvcc_and_cublas_gets_cuda():
    d = choose(**CUDA_OK)
    assert (d.backend, d.cmake_args, d.notes) == ("cuda", ["-DGGML_CUDA=on"], [])
    assert RTX in d.why and "nvcc 12.4" in d.why


def test_an_nvidia_gpu_without_nvcc_builds_for_the_cpu_and_says_to_install_the_cuda_toolkit():
    d = choose(nvidia_gpus=[RTX])
    assert d.backend == "cpu" and d.cmake_args == []
    assert "see the note" in d.why
    [note] = d.notes
    assert RTX in note and "nvcc is not on PATH" in note
    assert "CUDA toolkit" in note and "https://developer.nvidia.com/cuda-downloads" in note
    assert "make setup LLAMA_BACKEND=cuda" in note


def test_an_nvidia_gpu_with_nvcc_but_no_cublas_names_cublas():
    d = choose(**dict(CUDA_OK, cublas=None))
    assert d.backend == "cpu"
    [note] = d.notes
    assert "cuBLAS" in note and "nvcc 12.4" in note and "make setup LLAMA_BACKEND=cuda" in note


def test_nvcc_without_an_nvidia_gpu_builds_for_the_cpu():
    d = choose(nvcc="/usr/local/bin/nvcc", nvcc_version="13.0")
    assert (d.backend, d.notes) == ("cpu", [])
    assert d.line() == "llama.cpp backend: cpu — no GPU found (nvcc 13.0 is on PATH but no NVIDIA GPU, and no cuBLAS)"


def test_nothing_at_all_is_a_plain_cpu_build_left_to_pip():
    d = choose()
    assert (d.backend, d.why, d.notes, d.cmake_args) == ("cpu", "no GPU found", [], [])
    assert not lb.builds_itself(d)  # the editable install builds it and pip's cache keeps it (CI)


def test_hipcc_and_an_amd_gpu_get_hip():
    d = choose(hipcc="/opt/rocm/bin/hipcc", amd_gpus=["Radeon RX 7900 XTX"])
    assert (d.backend, d.cmake_args, d.notes) == ("hip", ["-DGGML_HIP=on"], [])
    assert "Radeon RX 7900 XTX" in d.why


def test_an_amd_gpu_without_hipcc_says_to_install_rocm():
    d = choose(amd_gpus=["AMD GPU"])
    assert d.backend == "cpu"
    [note] = d.notes
    assert "hipcc" in note and "ROCm" in note and "make setup LLAMA_BACKEND=hip" in note


def test_hipcc_without_an_amd_gpu_builds_for_the_cpu():
    d = choose(hipcc="/opt/rocm/bin/hipcc")
    assert d.backend == "cpu" and "hipcc is on PATH but no AMD GPU" in d.why


def test_a_new_enough_vulkan_sdk_and_a_gpu_get_vulkan():
    d = choose(other_gpu=True, **VULKAN_OK)
    assert (d.backend, d.cmake_args, d.notes) == ("vulkan", ["-DGGML_VULKAN=on"], [])
    assert "1.3.275" in d.why
    assert choose(other_gpu=True, **dict(VULKAN_OK, vulkan_headers=(1, 4, 303))).backend == "vulkan"


def test_debian_12s_vulkan_headers_are_too_old_the_build_is_for_the_cpu_and_says_why():
    d = choose(other_gpu=True, **VULKAN_DEBIAN12)
    assert d.backend == "cpu"
    [note] = d.notes
    assert "1.3.239" in note and "1.3.261" in note and "vk::LayerSettingEXT" in note
    assert "make setup LLAMA_BACKEND=vulkan" in note


def test_vulkan_without_glslc_or_the_loader_is_not_chosen():
    assert choose(other_gpu=True, **dict(VULKAN_OK, glslc=None)).backend == "cpu"
    d = choose(other_gpu=True, **dict(VULKAN_OK, vulkan_loader=False))
    assert d.backend == "cpu" and "loader" in d.notes[0]


def test_vulkan_needs_a_gpu():
    d = choose(**VULKAN_OK)
    assert d.backend == "cpu" and d.why.startswith("no GPU found") and d.notes == []


def test_an_nvidia_gpu_without_cuda_falls_to_vulkan_and_still_says_cuda_is_missing():
    d = choose(nvidia_gpus=[RTX], **VULKAN_OK)
    assert d.backend == "vulkan"
    assert "CUDA toolkit" in d.notes[0]


def test_cuda_wins_over_vulkan():
    assert choose(**CUDA_OK, **VULKAN_OK).backend == "cuda"


# --- the override ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend, facts", [
    ("cuda", CUDA_OK), ("cuda", dict(CUDA_OK, nvidia_gpus=[])),  # building for CUDA on a box without the GPU
    ("hip", dict(hipcc="/opt/rocm/bin/hipcc")), ("vulkan", VULKAN_OK),
    ("metal", dict(system="Darwin", machine="x86_64")), ("cpu", CUDA_OK), ("cpu", dict(system="Darwin", machine="arm64")),
])
def test_the_override_wins_when_its_toolkit_is_here(backend, facts):
    d = choose(backend, **facts)
    assert d.backend == backend and "LLAMA_BACKEND" in d.why and d.cmake_args == lb.cmake_args(backend, Facts(**facts), {})


def test_the_override_is_read_case_blind_and_an_empty_one_means_decide():
    assert choose(" CUDA ", **CUDA_OK).backend == "cuda"
    assert choose("", system="Darwin", machine="arm64").backend == "metal"


def test_an_unknown_override_is_refused_in_one_sentence():
    with pytest.raises(Refusal) as e:
        choose("rocm")
    message = str(e.value)
    assert "'rocm'" in message and "cuda, vulkan, hip, metal, cpu" in message
    assert message.count(". ") == 0 and message.endswith(".")


@pytest.mark.parametrize("backend, facts, says", [
    ("cuda", dict(nvidia_gpus=[RTX]), "nvcc is not on PATH"),
    ("cuda", dict(CUDA_OK, cublas=None), "cuBLAS"),
    ("hip", dict(amd_gpus=["AMD GPU"]), "hipcc"),
    ("vulkan", dict(other_gpu=True, **VULKAN_DEBIAN12), "1.3.239"),
    ("vulkan", {}, "Vulkan headers"),
    ("metal", {}, "only on macOS"),
])
def test_an_override_whose_toolkit_is_missing_is_refused_rather_than_built(backend, facts, says):
    with pytest.raises(Refusal) as e:
        choose(backend, **facts)
    assert says in str(e.value) and "LLAMA_BACKEND=cpu" in str(e.value)


def test_main_exits_2_with_one_sentence_for_an_unknown_backend(capsys):
    assert lb.main(["--backend", "opencl", "--dry-run"], facts=Facts()) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1


def test_main_exits_2_for_cuda_without_a_toolkit_and_builds_nothing(capsys, monkeypatch):
    monkeypatch.setattr(lb, "install", lambda *a: pytest.fail("must not build"))
    assert lb.main(["--backend", "cuda"], facts=Facts(nvcc="/usr/local/bin/nvcc", nvcc_version="13.0")) == 2
    assert "cuBLAS" in capsys.readouterr().err


def test_main_reads_llama_backend_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("LLAMA_BACKEND", "metal")
    assert lb.main(["--dry-run"], facts=Facts()) == 2
    monkeypatch.setenv("LLAMA_BACKEND", "cpu")
    assert lb.main(["--dry-run"], facts=Facts(**CUDA_OK)) == 0
    assert "llama.cpp backend: cpu — asked for" in capsys.readouterr().out


# --- CMAKE_ARGS and the wheel store ----------------------------------------------------------------

def test_cmake_args_per_backend():
    linux, mac = Facts(), Facts(system="Darwin", machine="arm64")
    assert lb.cmake_args("cuda", linux, {}) == ["-DGGML_CUDA=on"]
    assert lb.cmake_args("hip", linux, {}) == ["-DGGML_HIP=on"]
    assert lb.cmake_args("vulkan", linux, {}) == ["-DGGML_VULKAN=on"]
    assert lb.cmake_args("metal", mac, {}) == ["-DGGML_METAL=on"]
    assert lb.cmake_args("cpu", linux, {}) == []
    assert lb.cmake_args("cpu", mac, {}) == ["-DGGML_METAL=off"]


def test_cuda_architectures_and_amdgpu_targets_pass_through_from_the_environment():
    env = {"CMAKE_CUDA_ARCHITECTURES": "89", "AMDGPU_TARGETS": "gfx1100"}
    assert lb.cmake_args("cuda", Facts(), env) == ["-DGGML_CUDA=on", "-DCMAKE_CUDA_ARCHITECTURES=89"]
    assert lb.cmake_args("hip", Facts(), env) == ["-DGGML_HIP=on", "-DAMDGPU_TARGETS=gfx1100"]
    assert lb.cmake_args("vulkan", Facts(), env) == ["-DGGML_VULKAN=on"]


def test_the_wheel_store_is_per_version_backend_and_cmake_args(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    cuda = lb.wheel_store("0.3.36", "cuda", ["-DGGML_CUDA=on"], env, "Linux", "x86_64")
    assert cuda.parent == tmp_path / "fastslow" / "llama-wheels"
    assert cuda.name.startswith("0.3.36-cuda-")
    others = {
        lb.wheel_store("0.3.36", "vulkan", ["-DGGML_VULKAN=on"], env, "Linux", "x86_64"),
        lb.wheel_store("0.3.36", "cuda", ["-DGGML_CUDA=on", "-DCMAKE_CUDA_ARCHITECTURES=89"], env, "Linux", "x86_64"),
        lb.wheel_store("0.3.37", "cuda", ["-DGGML_CUDA=on"], env, "Linux", "x86_64"),
        lb.wheel_store("0.3.36", "cuda", ["-DGGML_CUDA=on"], env, "Linux", "aarch64"),
    }
    assert len(others) == 4 and cuda not in others
    assert cuda == lb.wheel_store("0.3.36", "cuda", ["-DGGML_CUDA=on"], env, "Linux", "x86_64")  # stable: reused


def test_the_wheel_store_falls_back_to_home_cache(tmp_path):
    store = lb.wheel_store("0.3.36", "metal", ["-DGGML_METAL=on"], {"HOME": str(tmp_path)})
    assert store.parent == tmp_path / ".cache" / "fastslow" / "llama-wheels"


def test_the_project_pins_one_exact_llama_cpp_python_version(tmp_path):
    version = lb.pinned_version()
    assert f'"llama-cpp-python=={version}"' in (ROOT / "pyproject.toml").read_text()
    loose = tmp_path / "pyproject.toml"
    loose.write_text('dependencies = ["llama-cpp-python>=0.3"]\n')
    with pytest.raises(Refusal):
        lb.pinned_version(loose)


# --- build and install, pip stood in ---------------------------------------------------------------

class Pip:
    """Stands in for subprocess.run: records each command; `pip wheel` leaves a wheel in -w."""

    def __init__(self, version):
        self.version, self.calls = version, []

    def __call__(self, cmd, check=False, env=None, **kw):
        self.calls.append((cmd, env))
        if cmd[2:4] == ["pip", "wheel"]:
            out = Path(cmd[cmd.index("-w") + 1])
            (out / f"llama_cpp_python-{self.version}-py3-none-linux_x86_64.whl").write_bytes(b"wheel")
        return subprocess.CompletedProcess(cmd, 0)


def test_a_gpu_wheel_is_built_without_pips_cache_into_its_store_then_installed(tmp_path, monkeypatch):
    pip = Pip("0.3.36")
    monkeypatch.setattr(lb.subprocess, "run", pip)
    d = choose(**CUDA_OK)
    store = lb.wheel_store("0.3.36", "cuda", d.cmake_args, {"XDG_CACHE_HOME": str(tmp_path)})
    lb.install(d, "/venv/bin/python", "0.3.36", store)
    (wheel_cmd, wheel_env), (install_cmd, _) = pip.calls
    assert wheel_cmd[:4] == ["/venv/bin/python", "-m", "pip", "wheel"]
    assert {"--no-deps", "--no-cache-dir"} <= set(wheel_cmd)
    assert wheel_cmd[wheel_cmd.index("--no-binary") + 1] == "llama-cpp-python"
    assert "llama-cpp-python==0.3.36" in wheel_cmd
    assert wheel_env["CMAKE_ARGS"] == "-DGGML_CUDA=on"
    built = store / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    assert built.exists() and [p.name for p in store.parent.iterdir()] == [store.name]  # no temp folder left
    assert install_cmd[:4] == ["/venv/bin/python", "-m", "pip", "install"]
    assert {"--no-deps", "--force-reinstall", str(built)} <= set(install_cmd)


def test_a_wheel_in_its_store_is_reused_and_one_of_another_backend_is_not(tmp_path, monkeypatch):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    cuda, vulkan = choose(**CUDA_OK), choose(other_gpu=True, **VULKAN_OK)
    cuda_store = lb.wheel_store("0.3.36", "cuda", cuda.cmake_args, env)
    cuda_store.mkdir(parents=True)
    (cuda_store / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl").write_bytes(b"cuda")

    pip = Pip("0.3.36")
    monkeypatch.setattr(lb.subprocess, "run", pip)
    lb.install(cuda, "py", "0.3.36", cuda_store)
    assert [c[0][3] for c in pip.calls] == ["install"]  # reused: nothing built

    pip.calls.clear()
    lb.install(vulkan, "py", "0.3.36", lb.wheel_store("0.3.36", "vulkan", vulkan.cmake_args, env))
    assert [c[0][3] for c in pip.calls] == ["wheel", "install"]  # the CUDA wheel is not Vulkan's
    assert pip.calls[0][1]["CMAKE_ARGS"] == "-DGGML_VULKAN=on"


def test_a_failed_build_leaves_nothing_to_reuse(tmp_path, monkeypatch):
    def failing(cmd, **kw):
        raise subprocess.CalledProcessError(1, cmd)
    monkeypatch.setattr(lb.subprocess, "run", failing)
    store = tmp_path / "llama-wheels" / "0.3.36-cuda-x"
    with pytest.raises(subprocess.CalledProcessError):
        lb.install(choose(**CUDA_OK), "py", "0.3.36", store)
    assert not store.exists() and list(store.parent.iterdir()) == []


def test_the_cpu_build_is_left_to_pip_and_a_gpu_build_from_before_goes_first(tmp_path, monkeypatch):
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    python = str(venv / "bin" / "python")
    pip = Pip("0.3.36")
    monkeypatch.setattr(lb.subprocess, "run", pip)
    lb.leave_to_pip(python)  # a first set-up: nothing to remove
    (venv / ".llama-backend").write_text("cpu\n")
    lb.leave_to_pip(python)
    assert pip.calls == []
    (venv / ".llama-backend").write_text("cuda\n")
    lb.leave_to_pip(python)  # the CUDA wheel satisfies the pin: the editable install would keep it
    [(cmd, _)] = pip.calls
    assert cmd[:4] == [python, "-m", "pip", "uninstall"] and "llama-cpp-python" in cmd


def test_main_records_the_backend_in_the_venv(tmp_path, monkeypatch, capsys):
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LLAMA_BACKEND", raising=False)
    built = []
    monkeypatch.setattr(lb, "install", lambda d, python, version, store: built.append((d.backend, store)))
    assert lb.main(["--python", str(venv / "bin" / "python")], facts=Facts(**CUDA_OK)) == 0
    assert (venv / ".llama-backend").read_text() == "cuda\n"
    [(backend, store)] = built
    assert backend == "cuda" and store.parent == tmp_path / "cache" / "fastslow" / "llama-wheels"
    assert capsys.readouterr().out.startswith(f"llama.cpp backend: cuda — {RTX}")

    monkeypatch.setattr(lb.subprocess, "run", Pip("0.3.36"))
    assert lb.main(["--python", str(venv / "bin" / "python"), "--backend", "cpu"], facts=Facts(**CUDA_OK)) == 0
    assert (venv / ".llama-backend").read_text() == "cpu\n" and len(built) == 1


# --- probing the machine, through stand-ins --------------------------------------------------------

def standin_probe(files=(), tools=None, outputs=None, texts=None, environ=None, system="Linux", machine="x86_64"):
    files = set(files) | set(texts or {})
    tools, outputs, texts = tools or {}, outputs or {}, texts or {}

    def exists(path):
        return path in files or any(f.startswith(path.rstrip("/") + "/") for f in files)

    def run(cmd):
        for key, out in outputs.items():
            if tuple(cmd[:len(key)]) == key:
                return out
        return None

    return lb.Probe(which=tools.get, run=run, exists=exists, glob=lambda pattern: sorted(fnmatch.filter(files, pattern)),
                    read=texts.get, environ=environ or {}, system=system, machine=machine)


NVCC_DRYRUN = "#$ _NVVM_BRANCH_=nvvm\n#$ _HERE_=/usr/local/cuda-12.4/bin\n#$ _THERE_=/usr/local/cuda-12.4/bin\n"
NVCC_VERSION = "Cuda compilation tools, release 12.4, V12.4.131\n"


def test_probe_reads_nvidia_smi_and_finds_cublas_behind_a_wrapper_nvcc():
    p = standin_probe(
        files={"/usr/local/cuda-12.4/targets/x86_64-linux/include/cublas_v2.h",
               "/usr/local/cuda-12.4/targets/x86_64-linux/lib/libcublas.so.12"},
        tools={"nvidia-smi": "/usr/bin/nvidia-smi", "nvcc": "/usr/local/bin/nvcc"},
        outputs={("nvidia-smi", "-L"): f"GPU 0: {RTX} (UUID: GPU-1234)\n",
                 ("/usr/local/bin/nvcc", "--version"): NVCC_VERSION,
                 ("/usr/local/bin/nvcc", "-v", "--dryrun"): NVCC_DRYRUN})
    f = lb.probe(p)
    assert f.nvidia_gpus == [RTX] and f.nvcc_version == "12.4"
    assert f.cublas == "/usr/local/cuda-12.4/targets/x86_64-linux/include/cublas_v2.h"
    assert decide(f, None, {}).backend == "cuda"


def test_probe_without_cublas_like_this_machine():
    p = standin_probe(
        files={"/usr/local/cuda-13.0/targets/x86_64-linux/include/cuda.h", "/usr/local/cuda-13.0/lib64/libcudart.so"},
        tools={"nvcc": "/usr/local/bin/nvcc"},
        outputs={("/usr/local/bin/nvcc", "--version"): NVCC_VERSION.replace("12.4", "13.0"),
                 ("/usr/local/bin/nvcc", "-v", "--dryrun"): NVCC_DRYRUN.replace("12.4", "13.0")})
    f = lb.probe(p)
    assert (f.nvcc, f.nvcc_version, f.cublas, f.nvidia_gpus) == ("/usr/local/bin/nvcc", "13.0", None, [])
    assert decide(f, None, {}).backend == "cpu"


def test_probe_finds_debians_cublas_in_usr_and_a_gpu_in_proc():
    p = standin_probe(
        files={"/usr/include/cublas_v2.h", "/usr/lib/x86_64-linux-gnu/libcublas.so.12"},
        texts={"/proc/driver/nvidia/gpus/0000:01:00.0/information": "Model: \t\t NVIDIA GeForce RTX 3060\nIRQ: 1\n"},
        tools={"nvcc": "/usr/bin/nvcc"}, outputs={("/usr/bin/nvcc", "--version"): NVCC_VERSION})
    f = lb.probe(p)
    assert f.nvidia_gpus == ["NVIDIA GeForce RTX 3060"] and f.cublas == "/usr/include/cublas_v2.h"


def test_probe_needs_the_cublas_library_as_well_as_its_header():
    p = standin_probe(files={"/usr/include/cublas_v2.h"}, tools={"nvcc": "/usr/bin/nvcc"},
                      outputs={("/usr/bin/nvcc", "--version"): NVCC_VERSION})
    assert lb.probe(p).cublas is None


def test_probe_finds_rocm_and_an_amd_gpu():
    p = standin_probe(files={"/dev/kfd", "/opt/rocm/bin/hipcc"})
    f = lb.probe(p)
    assert f.hipcc == "/opt/rocm/bin/hipcc" and f.amd_gpus == ["AMD GPU"]
    p = standin_probe(tools={"hipcc": "/usr/bin/hipcc", "rocm-smi": "/usr/bin/rocm-smi"},
                      outputs={("rocm-smi", "--showproductname"): "GPU[0]\t\t: Card series: \t\tRadeon RX 7900 XTX\n"})
    assert lb.probe(p).amd_gpus == ["Radeon RX 7900 XTX"]


VK_239 = ("#define VK_HEADER_VERSION 239\n"
          "#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION(0, 1, 3, VK_HEADER_VERSION)\n")


def test_probe_reads_the_vulkan_sdk_headers_version():
    sdk = "/opt/vulkan/1.3.290/x86_64"
    header = VK_239.replace("239", "290")
    p = standin_probe(files={"/dev/dri/renderD128", f"{sdk}/lib/libvulkan.so.1"}, tools={"glslc": f"{sdk}/bin/glslc"},
                      texts={f"{sdk}/include/vulkan/vulkan_core.h": header, "/usr/include/vulkan/vulkan_core.h": VK_239},
                      environ={"VULKAN_SDK": sdk})
    f = lb.probe(p)
    assert (f.vulkan_headers, f.vulkan_loader, f.other_gpu) == ((1, 3, 290), True, True)
    assert decide(f, None, {}).backend == "vulkan"
    p = standin_probe(files={"/dev/dri/renderD128", "/usr/lib/x86_64-linux-gnu/libvulkan.so.1"},
                      tools={"glslc": "/usr/bin/glslc"}, texts={"/usr/include/vulkan/vulkan_core.h": VK_239})
    f = lb.probe(p)
    assert f.vulkan_headers == (1, 3, 239) and decide(f, None, {}).backend == "cpu"


@pytest.mark.parametrize("text, version", [
    (VK_239, (1, 3, 239)),
    ("#define VK_HEADER_VERSION 303\n#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION(0, 1, 4, VK_HEADER_VERSION)\n", (1, 4, 303)),
    ("#define VK_HEADER_VERSION 131\n#define VK_HEADER_VERSION_COMPLETE VK_MAKE_VERSION(1, 2, VK_HEADER_VERSION)\n", (1, 2, 131)),
    ("nothing here", None),
])
def test_vulkan_header_versions(text, version):
    assert lb.parse_vulkan_version(text) == version


def test_apple_silicon_is_probed_from_the_platform():
    f = lb.probe(standin_probe(system="Darwin", machine="arm64"))
    assert f.apple_silicon and decide(f, None, {}).backend == "metal"


# --- the Makefile runs it in the right place --------------------------------------------------------

def test_the_makefile_installs_the_backend_wheel_before_the_editable_install():
    rule = (ROOT / "Makefile").read_text().split("$(STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]
    steps = [line.strip() for line in rule.splitlines() if line.startswith("\t")]
    chooser = next(i for i, s in enumerate(steps) if "packaging/llama_backend.py" in s)
    editable = next(i for i, s in enumerate(steps) if "pip install -e" in s)
    venv = next(i for i, s in enumerate(steps) if "-m venv" in s)
    assert venv < chooser < editable
    assert "--backend $(LLAMA_BACKEND)" in steps[chooser]


# --- a real dry run on this machine -----------------------------------------------------------------

def _dry_run(tmp_path, *args, env=None):
    environ = {k: v for k, v in os.environ.items() if k != "LLAMA_BACKEND"}
    environ.update(XDG_CACHE_HOME=str(tmp_path / "cache"), **(env or {}))
    return subprocess.run([sys.executable, str(SCRIPT), "--python", str(tmp_path / "venv" / "bin" / "python"),
                           "--dry-run", *args], capture_output=True, text=True, timeout=60, env=environ)


HERE = lb.probe()


def test_a_dry_run_here_says_what_it_would_build_and_why_and_builds_nothing(tmp_path):
    done = _dry_run(tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    expected = decide(HERE, None, {})
    assert (got["backend"], got["why"], got["notes"]) == (expected.backend, expected.why, expected.notes)
    assert got["version"] == lb.pinned_version()
    assert not (tmp_path / "cache").exists() and not (tmp_path / "venv").exists()

    text = _dry_run(tmp_path).stdout.splitlines()
    assert text[0] == expected.line() and text[1].startswith("CMAKE_ARGS: ")


@pytest.mark.skipif(HERE.any_gpu, reason="this machine has a GPU")
def test_a_dry_run_on_a_machine_without_a_gpu_chooses_the_cpu_and_says_why(tmp_path):
    # This machine: nvcc 13 on PATH (no cuBLAS), no GPU, no usable Vulkan headers.
    done = _dry_run(tmp_path)
    line = done.stdout.splitlines()[0]
    assert line.startswith("llama.cpp backend: cpu — no GPU found")
    if HERE.nvcc:
        assert "is on PATH but no NVIDIA GPU" in line
    if HERE.nvcc and not HERE.cublas:
        refused = _dry_run(tmp_path, "--backend", "cuda")
        assert refused.returncode == 2 and "cuBLAS" in refused.stderr and "Traceback" not in refused.stderr


def test_a_dry_run_with_debian_12s_vulkan_headers_says_they_are_too_old(tmp_path):
    sdk, bin_ = tmp_path / "sdk", tmp_path / "bin"
    (sdk / "include" / "vulkan").mkdir(parents=True)
    (sdk / "include" / "vulkan" / "vulkan_core.h").write_text(VK_239)
    bin_.mkdir()
    (bin_ / "glslc").write_text("#!/bin/sh\nexit 0\n")
    (bin_ / "glslc").chmod(0o755)
    env = {"VULKAN_SDK": str(sdk), "PATH": f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}"}
    refused = _dry_run(tmp_path, "--backend", "vulkan", env=env)
    assert refused.returncode == 2
    assert "1.3.239" in refused.stderr and "1.3.261" in refused.stderr and refused.stderr.count("\n") == 1
    chosen = json.loads(_dry_run(tmp_path, "--json", env=env).stdout)
    assert chosen["backend"] != "vulkan" and chosen["facts"]["vulkan_headers"] == [1, 3, 239]


def test_a_dry_run_refuses_an_unknown_backend_in_one_sentence(tmp_path):
    done = _dry_run(tmp_path, env={"LLAMA_BACKEND": "opencl"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: LLAMA_BACKEND='opencl' is not") and done.stderr.count("\n") == 1
