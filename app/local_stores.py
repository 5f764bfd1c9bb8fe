"""Models other tools already keep here: Ollama's store, LM Studio's folder, and what a running
Ollama or LM Studio server serves. Found, checked and listed; never copied, changed or deleted
(they are the other tool's files, and its own bookkeeping points at them).

Ollama keeps content-addressed blobs and Docker-distribution-style manifests that name them:
    <models>/manifests/<registry>/<namespace>/<model>/<tag>    JSON: {"layers": [{mediaType, digest, size}…]}
    <models>/blobs/sha256-<hex>                                one file per layer
A model's GGUF is the blob of its `application/vnd.ollama.image.model` layer; its template, params,
system, license, projector and adapter layers are other blobs. LM Studio keeps plain files:
    <models>/<publisher>/<repo>/<file>.gguf
Every file goes through the GGUF header check before it is listed, and a path made from what a
store says (a digest, a link) must stay inside that store: whatever fails is listed with its reason,
never a crash. Servers get one short request each (SERVER_TIMEOUT_S), asked in parallel, so a
listing waits at most about that long for them; callers run this off the GUI thread.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from app.engines.gguf_header import GGUFInfo, read_gguf_header
from app.engines.types import EngineError

OLLAMA, LM_STUDIO = "ollama", "lm-studio"  # files on this machine
OLLAMA_SERVER, LM_STUDIO_SERVER = "ollama-server", "lm-studio-server"  # models a running server serves
SOURCES = {OLLAMA: "Ollama", LM_STUDIO: "LM Studio", OLLAMA_SERVER: "Ollama server",
           LM_STUDIO_SERVER: "LM Studio server"}
PREFIXES = {"ollama": OLLAMA, "lmstudio": LM_STUDIO}  # `-m ollama:qwen3:1.7b`, `-m lmstudio:<publisher>/<file>`

SERVER_TIMEOUT_S = 0.3  # a local server answers in milliseconds; a listing must not wait on one that hangs
OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434"
LM_STUDIO_DEFAULT_URL = "http://127.0.0.1:1234"
LM_STUDIO_URL_ENV = "FASTSLOW_LMSTUDIO_URL"  # LM Studio has no variable of its own for its server's address

MODEL_LAYER = "application/vnd.ollama.image.model"
_LAYER_NOTES = {  # what FastSlow does with the layers beside the model, said once per model
    "application/vnd.ollama.image.projector": "its vision projector is not used: FastSlow runs text only",
    "application/vnd.ollama.image.adapter": "it has a LoRA adapter layer that FastSlow does not apply, "
                                            "so its answers may differ from Ollama's",
    "application/vnd.ollama.image.system": "Ollama's system prompt for it is not used",
}
_TEMPLATE_LAYER = "application/vnd.ollama.image.template"
_PARAMS_LAYER = "application/vnd.ollama.image.params"
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf", re.IGNORECASE)  # llama.cpp's gguf-split naming
_MAX_MANIFEST = 1 << 20  # real manifests are under 2 KB
_MAX_PARAMS = 1 << 16
_MAX_ANSWER = 8 << 20  # a server's model list; thousands of models fit in far less
_MAX_SERVED = 2000


@dataclass(frozen=True)
class Found:
    """One model another tool keeps or serves: a GGUF file here, or a name on a server."""

    name: str  # as that tool names it: "qwen3:1.7b", "lmstudio-community/Qwen3-1.7B-GGUF/Qwen3-1.7B-Q4_K_M.gguf"
    source: str  # one of SOURCES
    store: str  # the store's folder, or the server's base URL
    path: Path | None = None  # the GGUF (the first part of a split one); None for a served model
    size_bytes: int | None = None  # all of a split model's parts
    header: GGUFInfo | None = None  # the file's header, when it passed the check
    problem: str | None = None  # why it cannot be used, one sentence; None when usable
    notes: tuple[str, ...] = ()  # what FastSlow does differently from the tool that keeps it
    quantization: str | None = None
    architecture: str | None = None
    params: str | None = None  # a server's own words ("2.0B"); files: from the header, by the caller

    def __post_init__(self) -> None:
        if self.header is not None:  # the file's own word beats a name's
            object.__setattr__(self, "quantization", self.header.quantization)
            object.__setattr__(self, "architecture", self.header.architecture)

    @property
    def served(self) -> bool:
        return self.path is None

    @property
    def ref(self) -> str | None:
        """What `-m` takes for it; None for a served model (FastSlow has no remote engine yet)."""
        prefix = next((p for p, source in PREFIXES.items() if source == self.source), None)
        return None if prefix is None else f"{prefix}:{self.name}"


@dataclass(frozen=True)
class Looked:
    """One place looked in, and what came of it: a listing says where it looked, not only what it found."""

    source: str
    where: str  # folder or URL
    state: str  # "found" (it exists or answered), "absent" (no folder, no server), "failed"
    message: str | None = None  # for "absent" and "failed": one sentence


@dataclass(frozen=True)
class Discovery:
    models: tuple[Found, ...]
    looked: tuple[Looked, ...]


@dataclass(frozen=True)
class Places:
    """Where to look: folders and server URLs, from the environment or given by a test."""

    ollama_dirs: tuple[Path, ...] = ()
    lmstudio_dirs: tuple[Path, ...] = ()
    ollama_url: str | None = None
    lmstudio_url: str | None = None
    timeout_s: float = SERVER_TIMEOUT_S


def places_from_environment(env: Mapping[str, str] | None = None, home: Path | None = None,
                            platform: str | None = None) -> Places:
    """Where Ollama and LM Studio keep models here, read the way those tools read it.

    OLLAMA_MODELS (Ollama's own variable) replaces its default folder, ~/.ollama/models, to which the
    Linux service's /usr/share/ollama/.ollama/models is added; on Windows ~ is %USERPROFILE%.
    LMSTUDIO_MODELS replaces LM Studio's ~/.lmstudio/models and the older ~/.cache/lm-studio/models.
    OLLAMA_HOST is read as Ollama's client reads it; LM Studio's server is FASTSLOW_LMSTUDIO_URL or :1234.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if home is None:
        home = Path(env["USERPROFILE"]) if platform == "win32" and env.get("USERPROFILE") else Path.home()
    if env.get("OLLAMA_MODELS"):
        ollama = (Path(env["OLLAMA_MODELS"]).expanduser(),)
    else:
        ollama = (home / ".ollama" / "models",) + (
            (Path("/usr/share/ollama/.ollama/models"),) if platform.startswith("linux") else ())
    if env.get("LMSTUDIO_MODELS"):
        lmstudio = (Path(env["LMSTUDIO_MODELS"]).expanduser(),)
    else:
        lmstudio = (home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models")
    return Places(ollama_dirs=ollama, lmstudio_dirs=lmstudio, ollama_url=ollama_url(env.get("OLLAMA_HOST", "")),
                  lmstudio_url=(env.get(LM_STUDIO_URL_ENV) or LM_STUDIO_DEFAULT_URL).rstrip("/"))


def ollama_url(host: str) -> str:
    """OLLAMA_HOST as Ollama's client reads it: "host", "host:port" or a URL; 11434 unless a scheme says 80/443.

    A server bound to every address (0.0.0.0, ::) is reached on this machine's loopback.
    """
    host = host.strip()
    if not host:
        return OLLAMA_DEFAULT_URL
    scheme, sep, rest = host.partition("://")
    if not sep:
        scheme, rest = "http", host
    default_port = {"http": "80", "https": "443"}.get(scheme, "11434") if sep else "11434"
    hostport = rest.split("/", 1)[0]
    parsed = urllib.parse.urlsplit(f"//{hostport}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    name = parsed.hostname or "127.0.0.1"
    if name in ("0.0.0.0", "::"):
        name = "127.0.0.1"
    if ":" in name:
        name = f"[{name}]"
    return f"{scheme}://{name}:{port or default_port}"


def discover(places: Places | None = None) -> Discovery:
    """Everything Ollama and LM Studio keep or serve here; servers are asked while the folders are read."""
    places = places_from_environment() if places is None else places
    served: dict[str, tuple[list[Found], Looked]] = {}
    asks = [(OLLAMA_SERVER, places.ollama_url, ollama_served), (LM_STUDIO_SERVER, places.lmstudio_url, lmstudio_served)]
    threads = [threading.Thread(target=_ask, args=(served, source, url, fn, places.timeout_s), daemon=True,
                                name=f"ask-{source}") for source, url, fn in asks if url]
    for thread in threads:
        thread.start()
    models: list[Found] = []
    looked: list[Looked] = []
    for source, folders, scan in ((OLLAMA, places.ollama_dirs, scan_ollama), (LM_STUDIO, places.lmstudio_dirs, scan_lmstudio)):
        for folder in _distinct(folders):
            if not folder.is_dir():
                looked.append(Looked(source, str(folder), "absent", f"no folder at {folder}"))
                continue
            try:
                models += scan(folder)
            except OSError as exc:  # the folder itself cannot be read: said, and the rest still listed
                looked.append(Looked(source, str(folder), "failed",
                                     f"could not read {folder} ({exc.strerror or exc})"))
                continue
            looked.append(Looked(source, str(folder), "found"))
    for thread in threads:
        thread.join(places.timeout_s * 4 + 1)  # _ask ends by its own deadline; this only guards a stuck resolver
    for source, url, _ in asks:
        if url:
            found, report = served.get(source) or ([], Looked(source, url, "failed",
                                                               f"did not answer within {places.timeout_s:g} s"))
            models += found
            looked.append(report)
    return Discovery(tuple(models), tuple(looked))


def _distinct(folders: tuple[Path, ...]) -> list[Path]:
    """Each folder once, though two names may lead to it (a link, OLLAMA_MODELS naming the default)."""
    seen: set[str] = set()
    out = []
    for folder in folders:
        key = os.path.realpath(folder)
        if key not in seen:
            seen.add(key)
            out.append(folder)
    return out


# --- staying inside a store ------------------------------------------------------------------------


def _outside(path: Path, folder: Path) -> str | None:
    """Where `path` really leads when that is outside `folder` (links followed all the way), else None."""
    real = Path(os.path.realpath(path))
    base = Path(os.path.realpath(folder))
    return None if base in real.parents else str(real)


def _check_gguf(path: Path) -> tuple[GGUFInfo | None, str | None]:
    try:
        return read_gguf_header(path), None
    except EngineError as exc:
        return None, str(exc)


# --- Ollama's store ------------------------------------------------------------------------------


def scan_ollama(root: Path, only: Callable[[str], bool] | None = None) -> list[Found]:
    """Every model Ollama's manifests name under root (or those `only` keeps, by name), each checked; sorted by name."""
    return [_ollama_model(root, manifest, name) for name, manifest in ollama_manifests(root) if only is None or only(name)]


def ollama_manifests(root: Path) -> list[tuple[str, Path]]:
    """Each model's name and manifest, sorted by name; nothing read yet (a -m name checks only its own)."""
    return sorted((ollama_name(*parts), manifest) for manifest, parts in _files_at_depth(root / "manifests", 4))


def ollama_name(registry: str, namespace: str, model: str, tag: str) -> str:
    """The name `ollama list` shows: the default registry and its "library" namespace left out."""
    if registry == "registry.ollama.ai":
        return f"{model}:{tag}" if namespace == "library" else f"{namespace}/{model}:{tag}"
    return f"{registry}/{namespace}/{model}:{tag}"


def _files_at_depth(folder: Path, depth: int) -> list[tuple[Path, tuple[str, ...]]]:
    """The files exactly `depth` folders down (hidden names skipped), with their parts; sorted."""
    if not folder.is_dir():
        return []
    out = []
    # Links are followed (a user may link a publisher's folder from another disk); the depth bounds a
    # link loop, and every file found is then checked to lie inside the store.
    def unreadable(error: OSError) -> None:  # the store itself: said by discover(); a folder inside: left out
        if os.path.samefile(error.filename, folder):
            raise error

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=True):
        rel = Path(dirpath).relative_to(folder).parts
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if len(rel) < depth - 1 else []
        if len(rel) == depth - 1:
            out += [(Path(dirpath) / name, (*rel, name)) for name in sorted(filenames) if not name.startswith(".")]
    return out


def _ollama_model(root: Path, manifest: Path, name: str) -> Found:
    def refused(problem: str, **known: Any) -> Found:
        return Found(name, OLLAMA, str(root), problem=problem, **known)

    fix = f"`ollama pull {name}` fetches it again"
    if (real := _outside(manifest, root / "manifests")) is not None:
        return refused(f"Its manifest {manifest} links to {real}, outside Ollama's store; refused.")
    try:
        if manifest.stat().st_size > _MAX_MANIFEST:
            return refused(f"Its manifest {manifest} is {manifest.stat().st_size:,} bytes, not a manifest; {fix}.")
        data = json.loads(manifest.read_bytes())
    except json.JSONDecodeError as exc:
        return refused(f"Its manifest {manifest} is not valid JSON ({exc.msg} at line {exc.lineno}); {fix}.")
    except (OSError, UnicodeDecodeError) as exc:
        return refused(f"Its manifest {manifest} cannot be read ({getattr(exc, 'strerror', None) or exc}).")
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        return refused(f"Its manifest {manifest} has no list of layers, so it is not an Ollama manifest; {fix}.")
    model = [layer for layer in layers if layer.get("mediaType") == MODEL_LAYER]
    if not model:
        return refused(f"Its manifest {manifest} names no model layer ({MODEL_LAYER}); {fix}.")

    blob, problem = _blob(root, model[0], name)
    if problem:
        return refused(problem, path=blob)
    header, problem = _check_gguf(blob)
    size = blob.stat().st_size
    return Found(name, OLLAMA, str(root), path=blob, size_bytes=size, header=header, problem=problem,
                 notes=_ollama_notes(root, layers, header))


def _blob(root: Path, layer: dict, name: str) -> tuple[Path | None, str | None]:
    """The layer's blob file, or why it cannot be trusted: a digest that is no sha256, a link out, missing, short."""
    digest = layer.get("digest")
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        return None, f"Its manifest names the model blob {digest!r}, which is not a sha256 digest; refused."
    blob = root / "blobs" / f"sha256-{match.group(1)}"
    if (real := _outside(blob, root / "blobs")) is not None:
        return blob, f"Its model blob {blob} links to {real}, outside Ollama's store; refused."
    if not blob.is_file():
        return blob, f"Its model blob {blob} is missing; `ollama pull {name}` fetches it again."
    expected, size = layer.get("size"), blob.stat().st_size
    if isinstance(expected, int) and not isinstance(expected, bool) and expected != size:
        return blob, (f"Its model blob {blob} holds {size:,} bytes where the manifest says {expected:,}: it is "
                      f"incomplete or was changed; `ollama pull {name}` fetches it again.")
    return blob, None


def _ollama_notes(root: Path, layers: list[dict], header: GGUFInfo | None) -> tuple[str, ...]:
    """What FastSlow does differently from Ollama with this model, read from the layers beside the GGUF."""
    kinds = {layer.get("mediaType") for layer in layers}
    notes = []
    if _TEMPLATE_LAYER in kinds:  # Ollama's templates are Go text/template; llama.cpp renders the GGUF's Jinja
        notes.append("Ollama's chat template is a Go template, which FastSlow does not run: "
                     + ("the GGUF's own chat template is used" if header is None or header.chat_template
                        else "the GGUF carries none, so give one in the catalog"))
    params = _params(root, next((layer for layer in layers if layer.get("mediaType") == _PARAMS_LAYER), None))
    if params:
        notes.append(f"Ollama's settings for it ({', '.join(sorted(params))}) are not applied: "
                     "FastSlow samples with its own")
    notes += [note for kind, note in _LAYER_NOTES.items() if kind in kinds]
    return tuple(notes)


def _params(root: Path, layer: dict | None) -> dict:
    """The params layer's JSON (stop, temperature…), when small, inside the store and readable; else {}."""
    if layer is None:
        return {}
    blob, problem = _blob(root, layer, "")
    if problem or blob is None or blob.stat().st_size > _MAX_PARAMS:
        return {}
    try:
        data = json.loads(blob.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- LM Studio's folder ----------------------------------------------------------------------------


def scan_lmstudio(root: Path, only: Callable[[str], bool] | None = None) -> list[Found]:
    """Every <publisher>/<repo>/<file>.gguf under root (or those `only` keeps, by name), each checked; sorted by name."""
    return [_lmstudio_model(root, path, name) for name, path in lmstudio_files(root) if only is None or only(name)]


def lmstudio_files(root: Path) -> list[tuple[str, Path]]:
    """Each model's name and file, sorted by name; vision projectors and later split parts left out; nothing read yet."""
    found = []
    for path, (publisher, repo, file) in _files_at_depth(root, 3):
        if not file.lower().endswith(".gguf") or file.lower().startswith("mmproj"):
            continue  # not a model, or a vision projector that goes with one
        split = _SPLIT.search(file)
        if split and int(split.group(1)) != 1:
            continue  # llama.cpp loads every part from the first
        found.append((f"{publisher}/{repo}/{file}", path))
    return sorted(found)


def _lmstudio_model(root: Path, path: Path, name: str) -> Found:
    if (real := _outside(path, root)) is not None:
        return Found(name, LM_STUDIO, str(root), path=path,
                     problem=f"{path} links to {real}, outside LM Studio's models folder; refused "
                             "(pass that file's own path to -m to use it).")
    parts = [path]
    if split := _SPLIT.search(path.name):
        count = int(split.group(2))
        parts = [path.with_name(_SPLIT.sub(f"-{n:05d}-of-{count:05d}.gguf", path.name)) for n in range(1, count + 1)]
        missing = next((n for n, part in enumerate(parts, 1) if not part.is_file() or _outside(part, root)), None)
        if missing is not None:
            return Found(name, LM_STUDIO, str(root), path=path,
                         problem=f"Part {missing} of {count} of {name} ({parts[missing - 1].name}) is missing from "
                                 f"{path.parent}; download the model again in LM Studio.")
    header, problem = _check_gguf(path)
    return Found(name, LM_STUDIO, str(root), path=path, size_bytes=sum(p.stat().st_size for p in parts),
                 header=header, problem=problem)


# --- running servers -------------------------------------------------------------------------------


class ServerProblem(Exception):
    """A server that is not running, or that answered badly: `absent` tells which, the message says how."""

    def __init__(self, message: str, absent: bool = False) -> None:
        super().__init__(message)
        self.absent = absent


def ollama_served(url: str, timeout_s: float = SERVER_TIMEOUT_S) -> list[Found]:
    """GET /api/tags: {"models": [{"name", "size", "details": {"family", "parameter_size", "quantization_level"}}]}."""
    answer = get_json(f"{url}/api/tags", timeout_s)
    items = answer.get("models") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise ServerProblem(f"{url}/api/tags answered without a list of models; is it an Ollama server?")
    found = []
    for item in items[:_MAX_SERVED]:
        name = item.get("name") if isinstance(item, dict) else None
        if not _plain(name):
            continue  # a name we could not show safely is no model we could ask for
        details = item.get("details") if isinstance(item.get("details"), dict) else {}
        size = item.get("size")
        found.append(Found(name, OLLAMA_SERVER, url,
                           size_bytes=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
                           quantization=_text(details.get("quantization_level")),
                           architecture=_text(details.get("family")), params=_text(details.get("parameter_size"))))
    return found


def lmstudio_served(url: str, timeout_s: float = SERVER_TIMEOUT_S) -> list[Found]:
    """GET /v1/models, the OpenAI shape: {"object": "list", "data": [{"id", "object": "model", "owned_by"}]}."""
    answer = get_json(f"{url}/v1/models", timeout_s)
    items = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise ServerProblem(f"{url}/v1/models answered without a list of models; is it LM Studio's server?")
    names = [item.get("id") for item in items[:_MAX_SERVED] if isinstance(item, dict)]
    return [Found(name, LM_STUDIO_SERVER, url) for name in names if _plain(name)]


def _plain(name: object) -> bool:
    return isinstance(name, str) and 0 < len(name) <= 300 and name.isprintable()


def _text(value: object) -> str | None:
    return value if _plain(value) and len(value) <= 40 else None


def get_json(url: str, timeout_s: float) -> Any:
    """One GET, the whole answer within timeout_s (not per read: a server that trickles is cut off too).

    http.client, not urllib: no proxy from the environment stands between us and a server on this machine.
    """
    parts = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout_s
    late = ServerProblem(f"{parts.scheme}://{parts.netloc} did not answer within {timeout_s:g} s; "
                         "it may be busy loading a model")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    try:
        conn.request("GET", parts.path or "/", headers={"Accept": "application/json"})
        sock = conn.sock  # kept: the connection lets go of it once the answer is read
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        response = conn.getresponse()
        if response.status != 200:
            raise ServerProblem(f"{url} answered HTTP {response.status} {response.reason}")
        body = b""
        while chunk := response.read1(1 << 16):
            body += chunk
            if len(body) > _MAX_ANSWER:
                raise ServerProblem(f"{url} answered with more than {_MAX_ANSWER >> 20} MiB; not a model list")
            left = deadline - time.monotonic()
            if left <= 0:
                raise late
            if not response.isclosed():
                sock.settimeout(left)
    except ConnectionRefusedError:
        raise ServerProblem(f"not running at {parts.scheme}://{parts.netloc}", absent=True) from None
    except (TimeoutError, socket.timeout):
        raise late from None
    except (OSError, http.client.HTTPException) as exc:
        raise ServerProblem(f"{url} could not be asked ({exc})") from None
    finally:
        conn.close()
    try:
        return json.loads(body)
    except ValueError:
        raise ServerProblem(f"{url} answered with something other than JSON") from None


def _ask(into: dict, source: str, url: str, fn: Callable[[str, float], list[Found]], timeout_s: float) -> None:
    try:
        into[source] = (fn(url, timeout_s), Looked(source, url, "found"))
    except ServerProblem as exc:
        into[source] = ([], Looked(source, url, "absent" if exc.absent else "failed", str(exc)))
    except Exception as exc:  # noqa: BLE001 — whatever a server does, the listing goes on and says so
        into[source] = ([], Looked(source, url, "failed", f"{url} could not be asked ({type(exc).__name__}: {exc})"))


# --- a store name, as -m takes it ------------------------------------------------------------------


def lookup(ref: str, places: Places | None = None) -> Found | None:
    """The model a name like "ollama:qwen3:1.7b" or "lmstudio:<publisher>/<file>" names, checked and usable.

    None when `ref` names no store (a catalog id, a path: catalog.resolve's to handle). EngineError,
    one sentence, when it names one but the model is not there or cannot be used.
    """
    prefix, sep, name = ref.strip().partition(":")
    source = PREFIXES.get(prefix.lower()) if sep else None
    if source is None:
        return None
    places = places_from_environment() if places is None else places
    # Names first (cheap), then only the named model's files are read and checked.
    looked = _distinct(places.ollama_dirs if source == OLLAMA else places.lmstudio_dirs)
    folders = [f for f in looked if f.is_dir()]
    try:
        return _lookup(ref, source, name, looked, folders)
    except OSError as exc:
        raise EngineError(f"Could not read {SOURCES[source]}'s models in {' or '.join(map(str, folders))} "
                          f"({exc.strerror or exc}).", kind="missing_model_file") from None


def _lookup(ref: str, source: str, name: str, looked: list[Path], folders: list[Path]) -> Found:
    if source == OLLAMA:
        names = [n for folder in folders for n, _ in ollama_manifests(folder)]
        wanted = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"  # as Ollama reads a bare name
        chosen = [n for n in names if n == wanted]
        scan = scan_ollama
    else:
        names = [n for folder in folders for n, _ in lmstudio_files(folder)]
        chosen = [n for n in names if n == name] or [n for n in names if _short(n) == name]
        scan = scan_lmstudio
    label = SOURCES[source]
    shown = next(p for p, s in PREFIXES.items() if s == source)  # "ollama", "lmstudio"
    if not folders:
        raise EngineError(f"{label} keeps no models here: there is no {' or '.join(map(str, looked)) or 'folder'}; "
                          "run `fastslow models` to list the models found.", kind="unknown_model")
    if not chosen:
        known = ", ".join(f"{shown}:{n}" for n in names[:5]) or "none"
        where = " or ".join(str(f) for f in folders)
        raise EngineError(f"{label} has no model '{name}' in {where} (found: {known}); "
                          "run `fastslow models` to list them.", kind="unknown_model")
    if len(set(chosen)) > 1:  # one name in two folders (~/.ollama and the service's) is one model: the first folder's
        raise EngineError(f"'{ref}' names {len(chosen)} {label} models ({', '.join(chosen)}); "
                          "give the whole <publisher>/<repo>/<file> name.", kind="unknown_model")
    match = [m for folder in folders for m in scan(folder, only=chosen.__contains__)]
    if match[0].problem:
        raise EngineError(f"{label} model '{name}' cannot be used: {match[0].problem}", kind="bad_model_file")
    return match[0]


def _short(name: str) -> str:
    """<publisher>/<file> of an LM Studio <publisher>/<repo>/<file>."""
    publisher, _, rest = name.partition("/")
    return f"{publisher}/{rest.rpartition('/')[2]}"

