"""Which llama.cpp backend to build llama-cpp-python for on this machine, and build it.

Run by `make setup` before the project is installed, with the system python3: standard library
only, no app imports.

    python3 packaging/llama_backend.py --python .venv/bin/python [--backend X] [--dry-run] [--json]

The choice comes from facts about the machine (platform, GPUs, toolkits on PATH, headers), gathered
by `probe()` through a `Probe` of small callables so tests can stand in for nvidia-smi, nvcc and the
file system; `decide()` turns the facts into a `Decision` (backend, why, notes, CMAKE_ARGS):

- macOS on Apple Silicon: metal;
- an NVIDIA GPU, nvcc and cuBLAS (header and library): cuda;
- hipcc and an AMD GPU: hip;
- glslc, Vulkan headers new enough for the vendored llama.cpp (vk::LayerSettingEXT, 1.3.261+), the
  Vulkan loader and a GPU: vulkan;
- else cpu. A GPU whose toolkit is missing gets a note saying which toolkit and where to get it.

`--backend` (or $LLAMA_BACKEND) overrides the choice; an unknown name, or a backend whose toolkit is
missing here, is refused (exit 2) rather than building something broken.

A wheel built for one backend is never reused for another: GPU (and macOS CPU) builds go through
`pip wheel --no-cache-dir` into a store of their own,
$XDG_CACHE_HOME/fastslow/llama-wheels/<version>-<backend>-<hash of CMAKE_ARGS>/, are reused from there,
and installed with `pip install --no-deps --force-reinstall`. pip's own wheel cache is kept out of
it: it keys wheels by name and version only, which is how a CPU wheel reached users with a GPU.

The plain CPU build (Linux, Windows) is left to the Makefile's `pip install -e .[...]`: it is the build
CI uses (about 9 minutes on 2 cores) and pip's cache serves it again in seconds, as before. The
editable install keeps a GPU wheel installed here, since the project pins llama-cpp-python to one
exact version and an installed version that satisfies the pin is not replaced.
"""

from __future__ import annotations

import argparse
import glob as _glob
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

BACKENDS = ("cuda", "vulkan", "hip", "metal", "cpu")
PACKAGE = "llama-cpp-python"
ROOT = Path(__file__).resolve().parents[1]
RECORD = ".llama-backend"  # in the venv: the backend its llama-cpp-python was set up for (the Makefile reads it)

# The vendored llama.cpp's Vulkan backend uses vk::LayerSettingEXT (VK_EXT_layer_settings), first in
# Vulkan-Headers 1.3.261; Debian 12 ships 1.3.239 and the build fails there.
VULKAN_MIN = (1, 3, 261)

CUDA_URL = "https://developer.nvidia.com/cuda-downloads"
ROCM_URL = "https://rocm.docs.amd.com/projects/install-on-linux/en/latest/"
VULKAN_URL = "https://vulkan.lunarg.com/sdk/home"


class Refusal(Exception):
    """A choice that cannot be made here: one sentence for the user, exit status 2."""


# --- facts ----------------------------------------------------------------------------------------

def _run(cmd: Sequence[str]) -> Optional[str]:
    """A command's stdout and stderr, or None when it is missing, fails or hangs."""
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout + done.stderr if done.returncode == 0 else None


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


@dataclass
class Probe:
    """Everything `probe()` asks of the machine; tests give stand-ins."""

    which: Callable[[str], Optional[str]] = shutil.which
    run: Callable[[Sequence[str]], Optional[str]] = _run
    exists: Callable[[str], bool] = os.path.exists
    glob: Callable[[str], list] = _glob.glob
    read: Callable[[str], Optional[str]] = _read
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    system: str = field(default_factory=platform.system)
    machine: str = field(default_factory=platform.machine)


@dataclass
class Facts:
    """What the machine has, as far as the backend choice goes."""

    system: str = "Linux"                 # platform.system()
    machine: str = "x86_64"               # platform.machine()
    nvidia_gpus: list = field(default_factory=list)  # names, e.g. ["NVIDIA GeForce RTX 4070"]
    nvcc: Optional[str] = None            # path of nvcc on PATH
    nvcc_version: Optional[str] = None    # "13.0"
    cuda_root: Optional[str] = None       # where nvcc's toolkit lives
    cublas: Optional[str] = None          # cuBLAS header and library found (the header's path)
    hipcc: Optional[str] = None
    amd_gpus: list = field(default_factory=list)
    glslc: Optional[str] = None
    vulkan_headers: Optional[tuple] = None  # (1, 3, 239), from vulkan/vulkan_core.h
    vulkan_header_path: Optional[str] = None
    vulkan_loader: bool = False           # libvulkan (or vulkan-1.dll / MoltenVK) found
    other_gpu: bool = False               # some GPU (a DRM render node): enough for Vulkan

    @property
    def apple_silicon(self) -> bool:
        return self.system == "Darwin" and self.machine in ("arm64", "aarch64")

    @property
    def any_gpu(self) -> bool:
        return bool(self.nvidia_gpus or self.amd_gpus or self.other_gpu or self.system == "Darwin")


def _nvidia_gpus(p: Probe) -> list:
    names = []
    if p.which("nvidia-smi"):
        for line in (p.run(["nvidia-smi", "-L"]) or "").splitlines():
            m = re.match(r"\s*GPU \d+:\s*(.+?)\s*(\(UUID:.*)?$", line)
            if m:
                names.append(m.group(1))
    if not names and p.exists("/proc/driver/nvidia/gpus"):
        for info in sorted(p.glob("/proc/driver/nvidia/gpus/*/information")):
            m = re.search(r"^Model:\s*(.+)$", p.read(info) or "", re.M)
            names.append(m.group(1).strip() if m else "NVIDIA GPU")
        names = names or ["NVIDIA GPU"]
    return names


def _cuda_roots(p: Probe, nvcc: str) -> list:
    """Where nvcc's toolkit may live: $CUDA_PATH and friends, what nvcc says of itself (a wrapper
    script on PATH hides it), the folder above nvcc's, then the usual places."""
    roots = [p.environ.get(k) for k in ("CUDA_PATH", "CUDA_HOME", "CUDA_ROOT")]
    here = re.search(r"^#\$ _HERE_=(.+)$", p.run([nvcc, "-v", "--dryrun", "-c", "-x", "cu", os.devnull,
                                                 "-o", os.devnull]) or "", re.M)
    if here:
        roots.append(str(Path(here.group(1).strip()).parent))
    roots.append(str(Path(os.path.realpath(nvcc)).parent.parent))
    roots += ["/usr/local/cuda", "/opt/cuda", "/usr"]
    seen = []
    for r in roots:
        if r and r not in seen:
            seen.append(r)
    return seen


def _find_cublas(p: Probe, roots: Sequence[str]) -> Optional[str]:
    """The cuBLAS header when both it and the library are found under one of the roots."""
    for root in roots:
        headers = [f"{root}/include/cublas_v2.h", *p.glob(f"{root}/targets/*/include/cublas_v2.h")]
        libs = [*p.glob(f"{root}/lib64/libcublas.so*"), *p.glob(f"{root}/lib/libcublas.so*"),
                *p.glob(f"{root}/targets/*/lib/libcublas.so*"), *p.glob(f"{root}/lib/*/libcublas.so*"),
                *p.glob(f"{root}/lib/x64/cublas.lib"), *p.glob(f"{root}/lib/libcublas*.dylib")]
        header = next((h for h in headers if p.exists(h)), None)
        if header and libs:
            return header
    return None


def _amd_gpus(p: Probe) -> list:
    names = []
    if p.which("rocm-smi"):
        out = p.run(["rocm-smi", "--showproductname"]) or ""
        names = [m.group(1).strip() for m in re.finditer(r"Card (?:series|Series|SKU|model)\s*:\s*(.+)$", out, re.M)]
        names = list(dict.fromkeys(names)) or (["AMD GPU"] if "GPU" in out else [])
    if not names and p.exists("/dev/kfd"):
        names = ["AMD GPU"]
    return names


def parse_vulkan_version(text: str) -> Optional[tuple]:
    """(major, minor, patch) from vulkan_core.h: VK_HEADER_VERSION is the patch, the major and minor
    are in VK_HEADER_VERSION_COMPLETE."""
    patch = re.search(r"^#define\s+VK_HEADER_VERSION\s+(\d+)", text, re.M)
    if not patch:
        return None
    complete = re.search(r"VK_HEADER_VERSION_COMPLETE\s+VK_MAKE_(?:API_)?VERSION\(\s*(?:0\s*,\s*)?(\d+)\s*,\s*(\d+)",
                         text)
    major, minor = (int(complete.group(1)), int(complete.group(2))) if complete else (1, 0)
    return (major, minor, int(patch.group(1)))


def _vulkan(p: Probe) -> tuple:
    places = []
    if p.environ.get("VULKAN_SDK"):
        places += [f"{p.environ['VULKAN_SDK']}/include", f"{p.environ['VULKAN_SDK']}/Include"]
    places += ["/usr/include", "/usr/local/include", "/opt/homebrew/include"]
    for place in places:
        path = f"{place}/vulkan/vulkan_core.h"
        if p.exists(path):
            version = parse_vulkan_version(p.read(path) or "")
            if version:
                return version, path
    return None, None


def _vulkan_loader(p: Probe) -> bool:
    sdk = p.environ.get("VULKAN_SDK")
    patterns = [f"{sdk}/lib/libvulkan.*", f"{sdk}/Lib/vulkan-1.lib"] if sdk else []
    patterns += ["/usr/lib/libvulkan.so*", "/usr/lib/*/libvulkan.so*", "/usr/lib64/libvulkan.so*",
                 "/usr/local/lib/libvulkan.*", "/opt/homebrew/lib/libvulkan.*"]
    return any(p.glob(pattern) for pattern in patterns)


def probe(p: Optional[Probe] = None) -> Facts:
    """The facts of this machine (or of the stand-ins in `p`)."""
    p = p or Probe()
    f = Facts(system=p.system, machine=p.machine, nvidia_gpus=_nvidia_gpus(p))
    f.nvcc = p.which("nvcc")
    if f.nvcc:
        m = re.search(r"release (\d+\.\d+)", p.run([f.nvcc, "--version"]) or "")
        f.nvcc_version = m.group(1) if m else None
        roots = _cuda_roots(p, f.nvcc)
        f.cuda_root = roots[0] if roots else None
        f.cublas = _find_cublas(p, roots)
    f.hipcc = p.which("hipcc") or ("/opt/rocm/bin/hipcc" if p.exists("/opt/rocm/bin/hipcc") else None)
    f.amd_gpus = _amd_gpus(p)
    f.glslc = p.which("glslc")
    f.vulkan_headers, f.vulkan_header_path = _vulkan(p)
    f.vulkan_loader = _vulkan_loader(p)
    f.other_gpu = bool(p.glob("/dev/dri/renderD*")) or p.system == "Windows"
    return f


# --- the choice -----------------------------------------------------------------------------------

@dataclass
class Decision:
    backend: str
    why: str
    notes: list = field(default_factory=list)
    cmake_args: list = field(default_factory=list)

    def line(self) -> str:
        return f"llama.cpp backend: {self.backend} — {self.why}"


def _v(version: Optional[tuple]) -> str:
    return ".".join(map(str, version)) if version else "?"


def _nvcc(f: Facts) -> str:
    return f"nvcc {f.nvcc_version}" if f.nvcc_version else "nvcc"


def _cuda_missing(f: Facts) -> Optional[str]:
    """What the CUDA build lacks here, or None."""
    if not f.nvcc:
        return "nvcc is not on PATH"
    if not f.cublas:
        return f"cuBLAS is not ({_nvcc(f)} is on PATH, but no cublas_v2.h and libcublas next to it)"
    return None


def _vulkan_missing(f: Facts) -> Optional[str]:
    if not f.vulkan_headers:
        return "the Vulkan headers (vulkan/vulkan_core.h) are not installed"
    if f.vulkan_headers < VULKAN_MIN:
        return (f"the Vulkan headers are {_v(f.vulkan_headers)} ({f.vulkan_header_path}), older than the "
                f"{_v(VULKAN_MIN)} the vendored llama.cpp needs (vk::LayerSettingEXT)")
    if not f.glslc:
        return "glslc (the shader compiler) is not on PATH"
    if not f.vulkan_loader:
        return "the Vulkan loader (libvulkan) is not installed"
    return None


def _missing(backend: str, f: Facts) -> Optional[str]:
    if backend == "cuda":
        return _cuda_missing(f)
    if backend == "hip":
        return None if f.hipcc else "hipcc (ROCm) is not on PATH"
    if backend == "vulkan":
        return _vulkan_missing(f)
    if backend == "metal":
        return None if f.system == "Darwin" else "Metal exists only on macOS"
    return None


def cmake_args(backend: str, f: Facts, environ: Mapping[str, str]) -> list:
    """CMAKE_ARGS for llama-cpp-python's build. CMAKE_CUDA_ARCHITECTURES (cuda) and AMDGPU_TARGETS
    (hip) pass through from the environment, e.g. to build for this machine's GPU only."""
    if backend == "cuda":
        args = ["-DGGML_CUDA=on"]
        if environ.get("CMAKE_CUDA_ARCHITECTURES"):
            args.append(f"-DCMAKE_CUDA_ARCHITECTURES={environ['CMAKE_CUDA_ARCHITECTURES']}")
        return args
    if backend == "hip":
        args = ["-DGGML_HIP=on"]
        if environ.get("AMDGPU_TARGETS"):
            args.append(f"-DAMDGPU_TARGETS={environ['AMDGPU_TARGETS']}")
        return args
    if backend == "vulkan":
        return ["-DGGML_VULKAN=on"]
    if backend == "metal":
        return ["-DGGML_METAL=on"]
    return ["-DGGML_METAL=off"] if f.system == "Darwin" else []  # llama.cpp turns Metal on by itself on macOS


def decide(f: Facts, requested: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Decision:
    """The backend for these facts; `requested` (cuda|vulkan|hip|metal|cpu) overrides it.
    Raises Refusal for an unknown name or a requested backend whose toolkit is missing."""
    environ = os.environ if environ is None else environ
    requested = (requested or "").strip().lower() or None
    if requested is not None:
        if requested not in BACKENDS:
            raise Refusal(f"LLAMA_BACKEND={requested!r} is not a llama.cpp backend this set-up builds: "
                          f"choose one of {', '.join(BACKENDS)}, or leave it empty to let set-up decide.")
        missing = _missing(requested, f)
        if missing:
            raise Refusal(f"LLAMA_BACKEND={requested} was asked for, but {missing}: {_how_to_get(requested)}, "
                          f"or choose another backend (LLAMA_BACKEND=cpu always builds).")
        return Decision(requested, "asked for (LLAMA_BACKEND)", [], cmake_args(requested, f, environ))

    notes = []
    chosen, why = None, None
    if f.apple_silicon:
        chosen, why = "metal", "Apple Silicon"
    if not chosen and f.nvidia_gpus:
        gpu = f.nvidia_gpus[0]
        missing = _cuda_missing(f)
        if missing is None:
            chosen, why = "cuda", f"{gpu}, {_nvcc(f)} and cuBLAS"
        else:
            notes.append(f"an NVIDIA GPU ({gpu}) is here but {missing}: install the CUDA toolkit with cuBLAS "
                         f"({CUDA_URL}), then run `make setup LLAMA_BACKEND=cuda`")
    if not chosen and f.amd_gpus:
        gpu = f.amd_gpus[0]
        if f.hipcc:
            chosen, why = "hip", f"{gpu} and hipcc"
        else:
            notes.append(f"an AMD GPU ({gpu}) is here but hipcc is not: install ROCm ({ROCM_URL}), "
                         f"then run `make setup LLAMA_BACKEND=hip`")
    if not chosen and f.any_gpu and not f.apple_silicon:
        missing = _vulkan_missing(f)
        if missing is None:
            chosen, why = "vulkan", f"Vulkan SDK {_v(f.vulkan_headers)} and a GPU"
        elif f.vulkan_headers or f.glslc:  # someone meant to have Vulkan: say what stops it
            notes.append(f"Vulkan is not usable: {missing}; install a newer Vulkan SDK ({VULKAN_URL}), "
                         f"then run `make setup LLAMA_BACKEND=vulkan`")
    if not chosen:
        chosen = "cpu"
        if f.system == "Darwin":
            why = f"a Mac without Apple Silicon ({f.machine})"
        elif notes:
            why = "the GPU here lacks the toolkit to build for it (see the note)"
        elif f.any_gpu:
            why = "no NVIDIA or AMD GPU, and no Vulkan SDK"
        else:
            why = "no GPU found"
            found = []
            if f.nvcc:
                found.append(f"{_nvcc(f)} is on PATH but no NVIDIA GPU" + ("" if f.cublas else ", and no cuBLAS"))
            if f.hipcc:
                found.append("hipcc is on PATH but no AMD GPU")
            if f.vulkan_headers:
                found.append(f"Vulkan headers {_v(f.vulkan_headers)}"
                             + (" (too old for llama.cpp)" if f.vulkan_headers < VULKAN_MIN else ""))
            if found:
                why += f" ({'; '.join(found)})"
    return Decision(chosen, why, notes, cmake_args(chosen, f, environ))


def _how_to_get(backend: str) -> str:
    return {
        "cuda": f"install the CUDA toolkit with cuBLAS ({CUDA_URL})",
        "hip": f"install ROCm ({ROCM_URL})",
        "vulkan": f"install the Vulkan SDK {_v(VULKAN_MIN)} or newer ({VULKAN_URL})",
        "metal": "build on a Mac",
    }.get(backend, "install its toolkit")


# --- the wheel ------------------------------------------------------------------------------------

def pinned_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The exact llama-cpp-python version pyproject.toml pins (the GPU wheel must satisfy that pin, or
    the editable install would replace it)."""
    m = re.search(r'"llama-cpp-python\s*==\s*([0-9][^";\s,]*)\s*"', pyproject.read_text(encoding="utf-8"))
    if not m:
        raise Refusal(f"{pyproject} does not pin llama-cpp-python to one exact version (==), "
                      "which the per-backend wheel needs.")
    return m.group(1)


def cache_home(environ: Mapping[str, str]) -> Path:
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"])
    return Path(environ.get("HOME") or Path.home()) / ".cache"


def wheel_store(version: str, backend: str, args: Sequence[str], environ: Mapping[str, str],
                system: str = "", machine: str = "") -> Path:
    """The folder holding the wheel built for this version, backend and CMAKE_ARGS (and platform)."""
    key = hashlib.sha256(" ".join([*args, "|", system, machine]).encode()).hexdigest()[:12]
    return cache_home(environ) / "fastslow" / "llama-wheels" / f"{version}-{backend}-{key}"


def builds_itself(d: Decision) -> bool:
    """False for the plain CPU build: the Makefile's editable install builds it, and pip's cache keeps
    it (the build CI uses, about 9 minutes on 2 cores, then seconds)."""
    return d.backend != "cpu" or bool(d.cmake_args)


def _wheel_in(store: Path, version: str) -> Optional[Path]:
    wheels = sorted(store.glob(f"llama_cpp_python-{version}-*.whl"), key=lambda w: w.stat().st_mtime)
    return wheels[-1] if wheels else None


def _build_env(d: Decision) -> dict:
    env = dict(os.environ, CMAKE_ARGS=" ".join(d.cmake_args))
    if d.backend == "hip" and "HIPCXX" not in env and shutil.which("hipconfig"):
        # llama.cpp's HIP build wants ROCm's clang and HIP_PATH (its docs do the same).
        llvm, hip = _run(["hipconfig", "-l"]), _run(["hipconfig", "-R"])
        if llvm and hip:
            env.update(HIPCXX=f"{llvm.strip()}/clang", HIP_PATH=hip.strip())
    return env


def install(d: Decision, python: str, version: str, store: Path) -> None:
    """Build (or reuse) the backend's wheel in its store and install it into `python`'s venv."""
    wheel = _wheel_in(store, version)
    if wheel:
        print(f"llama.cpp backend: reusing {wheel}", flush=True)
    else:
        print(f"llama.cpp backend: building {PACKAGE} {version} for {d.backend} (CMAKE_ARGS={' '.join(d.cmake_args)}); "
              f"this takes minutes, later set-ups reuse it from {store}", flush=True)
        store.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=store.name + ".", dir=store.parent) as tmp:
            # --no-cache-dir: pip's cache must neither hand us a wheel built for another backend nor
            # keep this one for a later plain `pip install`.
            subprocess.run([python, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--no-binary", PACKAGE,
                            f"{PACKAGE}=={version}", "-w", tmp], check=True, env=_build_env(d))
            built = _wheel_in(Path(tmp), version)
            if not built:
                raise Refusal(f"pip wheel finished but left no {PACKAGE} {version} wheel in {tmp}.")
            store.mkdir(parents=True, exist_ok=True)
            wheel = store / built.name
            os.replace(built, wheel)  # whole or not at all: a failed build leaves nothing to reuse
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-cache-dir", "--force-reinstall", str(wheel)],
                   check=True)


def recorded(python: str) -> Optional[str]:
    """The backend the venv of `python` was last set up for."""
    text = _read(str(_record_path(python)))
    return text.strip() if text else None


def _record_path(python: str) -> Path:
    return Path(os.path.abspath(python)).parent.parent / RECORD  # <venv>/bin/python -> <venv>/.llama-backend


def leave_to_pip(python: str) -> None:
    """The CPU build comes from the editable install; a wheel of another backend installed by an
    earlier set-up would satisfy the pin and stay, so it goes first."""
    before = recorded(python)
    if before and before != "cpu":
        print(f"llama.cpp backend: removing the {before} build so the CPU build replaces it", flush=True)
        subprocess.run([python, "-m", "pip", "uninstall", "--yes", "--quiet", PACKAGE], check=True)


# --- command line ---------------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None, facts: Optional[Facts] = None) -> int:
    ap = argparse.ArgumentParser(description="Choose and build llama-cpp-python's llama.cpp backend for this machine.")
    ap.add_argument("--python", default=sys.executable, help="the venv's python to install into")
    ap.add_argument("--backend", default=None, help=f"override the choice ({'|'.join(BACKENDS)}); default $LLAMA_BACKEND")
    ap.add_argument("--dry-run", action="store_true", help="print the decision and build nothing")
    ap.add_argument("--json", action="store_true", help="print the decision as JSON")
    a = ap.parse_args(argv)

    requested = a.backend if a.backend is not None else os.environ.get("LLAMA_BACKEND")
    f = facts or probe()
    try:
        d = decide(f, requested)
        version = pinned_version()
    except Refusal as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    store = wheel_store(version, d.backend, d.cmake_args, os.environ, f.system, f.machine)
    own = builds_itself(d)

    if a.json:
        print(json.dumps({
            "backend": d.backend, "why": d.why, "notes": d.notes, "cmake_args": d.cmake_args,
            "version": version, "wheel_store": str(store) if own else None,
            "built_by": "llama_backend.py" if own else "pip install -e (pip's cache keeps the CPU wheel)",
            "facts": asdict(f),
        }, indent=2))
    else:
        print(d.line())
        for note in d.notes:
            print(f"note: {note}")
        if a.dry_run:
            print(f"CMAKE_ARGS: {' '.join(d.cmake_args) or '(none)'}")
            print(f"wheel: {store}" if own else
                  "wheel: built by the editable install (pip's cache keeps the CPU wheel)")
    if a.dry_run:
        return 0

    try:
        if own:
            install(d, a.python, version, store)
        else:
            leave_to_pip(a.python)
    except subprocess.CalledProcessError as e:
        print(f"error: {' '.join(map(str, e.cmd[:4]))} … failed (exit {e.returncode}); the output above says why. "
              f"`make setup LLAMA_BACKEND=cpu` builds for the CPU.", file=sys.stderr)
        return 1
    except Refusal as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    _record_path(a.python).write_text(d.backend + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
