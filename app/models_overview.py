"""Every model this app knows about, with where it is and whether it fits this machine.

One list for `fastslow models` and the app's model manager: catalog entries (here or not yet
downloaded; GGUF or MLX) and the GGUF files and MLX folders the user dropped into models/; and,
from store_rows, the models Ollama and LM Studio keep or serve.
Where MLX is not installed, MLX models say so instead of a fit verdict: they can be downloaded,
not loaded.
"""

from __future__ import annotations

from pathlib import Path

from app.catalog import CatalogEntry, local_gguf_files, local_mlx_folders, located, size_on_disk
from app.engines.gguf_header import GGUFInfo, read_gguf_header
from app.engines.mlx_convert import check_mlx_folder
from app.engines.mlx_engine import mlx_unavailable
from app.engines.types import EngineError
from app.hardware import MemoryState, estimate_fit
from app.local_stores import Discovery
from app.units import size_text

UNPACKED_OVERHEAD = 1.2  # a model in memory needs ~20% beyond its file (KV cache, buffers) at modest contexts


def overview(n_ctx: int, memory: MemoryState, models_dir: Path | None = None) -> list[dict]:
    rows = [model_row(entry.id, path, n_ctx, memory, entry=entry) for entry, path in located(models_dir)]
    rows += [model_row(path.stem, path, n_ctx, memory) for path in local_gguf_files(models_dir)]
    rows += [mlx_row(path, memory) for path in local_mlx_folders(models_dir)]
    return rows


def mlx_row(folder: Path, memory: MemoryState) -> dict:
    """An MLX model folder the user put into models/."""
    row = {"model": folder.name, "name": folder.name, "format": "MLX", "params": None, "quant": "MLX",
           "size_bytes": None, "thinking": None, "license": None, "source": "local MLX folder",
           "where": str(folder), "path": str(folder), "fit": None, "fit_detail": None}
    return _add_mlx_facts(row, folder, memory)


def _add_mlx_facts(row: dict, folder: Path, memory: MemoryState) -> dict:
    """What an MLX folder's config says; the fit estimated from its size (no GGUF header to read)."""
    size = size_on_disk(folder)
    row["size_bytes"] = size
    try:
        config = check_mlx_folder(folder)
    except EngineError as exc:
        row["fit"] = f"unreadable: {exc}"
        return row
    bits = (config.get("quantization") or {}).get("bits")
    row.update(quant=f"MLX {bits}-bit" if bits else row["quant"], architecture=config["model_type"],
               context_length=config.get("max_position_embeddings"), **_estimated_fit(size, memory, "the model's size", mlx=True))
    return row


def _estimated_fit(size: int, memory: MemoryState, basis: str, mlx: bool) -> dict:
    """A fit verdict from a size alone; for MLX where MLX is missing, that instead."""
    missing = mlx_unavailable() if mlx else None
    if missing:
        return {"fit": "needs MLX", "fit_detail": f"{missing}. It can be downloaded here, but not loaded."}
    need = int(size * UNPACKED_OVERHEAD)
    verdict = "fits" if need < 0.8 * memory.ram_available else ("tight" if need < memory.ram_available else "too_big")
    return {"fit": f"{verdict}? (~{gib(need)})",
            "fit_detail": f"estimated from {basis}: ~{gib(need)} needed, {gib(memory.ram_available)} RAM available"}


def model_row(name: str, path: Path | None, n_ctx: int, memory: MemoryState, entry: CatalogEntry | None = None) -> dict:
    """One model: the catalog's figures, replaced by the file's own once the file is here."""
    row = {
        "model": name,
        "name": entry.name if entry else name,
        "format": entry.format.upper() if entry else "GGUF",
        "params": entry.params if entry else None,
        "quant": entry.quantization if entry else None,
        "size_bytes": entry.size_bytes if entry else None,
        "thinking": entry.thinking if entry else None,
        "license": entry.license if entry else None,
        "source": ("bundled" if entry.is_bundled else f"hf:{entry.hf_repo}") if entry else "local file",
        "where": "not downloaded" if path is None else ("bundled" if entry and entry.is_bundled else str(path)),
        "path": None if path is None else str(path),
        "fit": None,
        "fit_detail": None,
    }
    if path is None:
        if entry is not None:  # not here yet: judge by the download's size
            row.update(_estimated_fit(entry.size_bytes, memory, "the download size", mlx=entry.is_mlx))
        return row
    if entry is not None and entry.is_mlx:
        return _add_mlx_facts(row, path, memory)
    try:
        header = read_gguf_header(path)
    except EngineError as exc:
        row["fit"] = f"unreadable: {exc}"
        return row
    return _add_header_facts(row, header, n_ctx, memory)


def _add_header_facts(row: dict, header: GGUFInfo, n_ctx: int, memory: MemoryState) -> dict:
    """What a checked GGUF header says, and the fit it gives at n_ctx on this machine."""
    fit = estimate_fit(header, min(n_ctx, header.context_length or n_ctx), memory=memory)
    row.update(
        params=row["params"] or params_text(header.n_params),
        quant=header.quantization,
        size_bytes=header.file_size,
        fit=f"{fit.verdict} ({gib(fit.total_bytes)})",
        fit_detail=fit.message(),
        architecture=header.architecture,
        context_length=header.context_length,
    )
    return row


def store_rows(found: Discovery, n_ctx: int, memory: MemoryState) -> list[dict]:
    """The models Ollama and LM Studio keep or serve (app/local_stores.py), as rows like the others.

    `model` is what -m takes (ollama:qwen3:1.7b), or for a served model its server's name; `store` is
    the folder or URL it came from; `read_only` marks another tool's files, which FastSlow never deletes.
    """
    rows = []
    for model in found.models:
        row = {
            "model": model.ref or model.name, "name": model.name, "format": "served" if model.served else "GGUF",
            "params": model.params, "quant": model.quantization, "size_bytes": model.size_bytes, "thinking": None,
            "license": None, "source": model.source, "store": model.store, "read_only": True,
            "where": model.store if model.served else str(model.path),
            "path": None if model.path is None else str(model.path), "url": model.store if model.served else None,
            "fit": None, "fit_detail": None, "notes": list(model.notes),
        }
        if model.problem:
            row.update(fit=f"unusable: {model.problem}", fit_detail=model.problem)
        elif model.served:
            row.update(fit="served", fit_detail=f"runs on the server at {model.store}: its memory, not this machine's")
        elif model.header is not None:
            _add_header_facts(row, model.header, n_ctx, memory)
            row["size_bytes"] = model.size_bytes  # a split model's parts together
        rows.append(row)
    return rows


def params_text(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def gib(n: int | None) -> str:
    """A model's or memory's size, to two decimals of a GiB (model files differ by less than one)."""
    return size_text(n, gib_digits=2)
