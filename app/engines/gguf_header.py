"""Read and check a GGUF model file's header before anything reaches llama.cpp.

llama.cpp answers a damaged file with a log line and a bare failure (or worse), so this reader walks
the header in pure Python first and turns every problem into one sentence the user can act on. It
reads the metadata and the tensor list only, never tensor data, and steps over the tokenizer's big
string arrays (100k+ entries) without decoding them: a header costs well under a second.

Layout, all little-endian (spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
    "GGUF", u32 version, u64 tensor count, u64 metadata count,
    metadata:     (string key, u32 value type, value) * count,
    tensor infos: (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset) * count,
    padding up to the alignment, then the tensor data (tensor offsets are relative to its start).
A string is a u64 byte length followed by UTF-8 bytes; an array is u32 item type, u64 count, items.

The checks mirror llama.cpp's own loader (ggml/src/gguf.cpp), so a file that passes here does not
fail there for a reason we could have named.
"""

from __future__ import annotations

import os
import stat
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from gguf import GGMLQuantizationType, GGUFValueType, LlamaFileType
from gguf.constants import GGML_QUANT_SIZES

from app.engines.types import EngineError
from app.units import exact_size_text

SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_TENSOR_NAME = 63  # bytes; GGML_MAX_NAME is 64 including the terminating NUL

_MAGIC = b"GGUF"
_CHUNK = 1 << 20
# Per-layer hyperparameters (head counts, sliding-window flags) come as short numeric arrays; keep
# those. Anything longer is tokenizer data and is only counted.
_SMALL_ARRAY = 1024
_MAX_KEY = 1 << 16  # real keys are under 100 bytes; a longer one means we are reading garbage
_MAX_TEXT = 1 << 20  # metadata strings longer than this are summarized, not loaded

# The fewest bytes one entry can take, to refuse absurd counts before looping over them.
_MIN_KV_BYTES = 8 + 1 + 4 + 1  # key length, a 1-byte key, value type, a 1-byte value
_MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 4 + 8  # name length, a 1-byte name, n_dims (0), type, offset

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_SCALARS: dict[int, struct.Struct] = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: _U32,
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: _U64,
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}


class GGUFError(EngineError):
    """A model file that is missing, is not GGUF, or is damaged; the message says which and what to do."""

    def __init__(self, message: str, kind: str = "bad_model_file") -> None:
        super().__init__(message, kind)


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF header says about its model: enough to label it and to size its memory."""

    path: str
    file_size: int
    version: int
    architecture: str
    name: str
    n_params: int  # sum of the tensors' element counts
    n_tensors: int
    quantization: str  # "Q4_K_M", "Q8_0", "F16"...: general.file_type, else the main tensor type
    context_length: int | None  # trained context
    n_layers: int | None
    n_embd: int | None
    n_head: int | None
    n_head_kv: int | None  # the file's value, else n_head (llama.cpp's default)
    head_dim_k: int | None
    head_dim_v: int | None
    sliding_window: int | None  # tokens each sliding-window layer attends to
    n_vocab: int | None
    chat_template: str | None = field(repr=False)
    bos_token_id: int | None
    eos_token_id: int | None
    # "{arch}.attention.sliding_window_pattern" when present: a period (every n-th layer attends to
    # the full context) or one flag per layer (True: sliding window).
    swa_pattern: int | tuple[bool, ...] | None
    # Every scalar and string key; arrays appear as "<array of N type>" summaries.
    metadata: dict[str, Any] = field(repr=False, compare=False, hash=False)


def read_gguf_header(path: str | os.PathLike) -> GGUFInfo:
    """Read and validate `path`'s GGUF header; raise GGUFError with one clear sentence if it is unusable."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise GGUFError(
            f"Model file '{path}' does not exist; check the path, or download the model again.",
            kind="missing_model_file",
        ) from None
    except OSError as exc:
        raise _bad(path, f"cannot be opened ({exc.strerror})", "check that it is readable") from None
    if stat.S_ISDIR(st.st_mode):
        raise GGUFError(
            f"Model file '{path}' is a directory, not a file; choose the .gguf file inside it.",
            kind="missing_model_file",
        )
    if st.st_size == 0:
        raise _bad(path, "is empty (0 bytes), probably from an interrupted download")
    try:
        with open(path, "rb") as f:
            return _parse(_Reader(f, path, os.fstat(f.fileno()).st_size))
    except PermissionError:
        raise _bad(path, "cannot be opened (permission denied)", "check that it is readable") from None
    except OSError as exc:
        raise _bad(path, f"could not be read ({exc.strerror})", "check the disk and try again") from None


# --- the walk -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tensor:
    name: str
    ggml_type: int
    offset: int  # from the start of the data section
    n_elements: int
    n_bytes: int


@dataclass
class _Metadata:
    values: dict[str, Any] = field(default_factory=dict)  # scalars, strings, array summaries
    types: dict[str, int] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)
    small_arrays: dict[str, tuple] = field(default_factory=dict)
    oversized: set[str] = field(default_factory=set)  # strings summarized, not loaded


def _parse(r: _Reader) -> GGUFInfo:
    path = r.path
    head = r.peek(64)
    if not head.startswith(_MAGIC):
        looks_like, advice = _sniff(head)
        raise _bad(path, f"is not a GGUF model ({looks_like})", advice)
    r.skip(4)
    version = _check_version(path, r.u32())
    n_tensors, n_kv = r.u64(), r.u64()
    if n_tensors * _MIN_TENSOR_INFO_BYTES > r.remaining:
        raise _corrupt(path, f"claims {n_tensors:,} tensors, more than its {r.size:,} bytes could hold")
    if n_kv * _MIN_KV_BYTES > r.remaining:
        raise _corrupt(path, f"claims {n_kv:,} metadata entries, more than its {r.size:,} bytes could hold")

    meta = _read_metadata(r, n_kv)
    alignment = _alignment(path, meta)
    architecture = meta.values.get("general.architecture")
    if not isinstance(architecture, str) or not architecture:
        raise _bad(path, "has no general.architecture entry, so llama.cpp cannot tell what model it holds")
    if n_tensors == 0:
        raise _bad(path, "holds no tensors (it may be a vocabulary-only file)", "choose a model file")

    tensors = [_read_tensor_info(r) for _ in range(n_tensors)]
    _check_unique_names(path, tensors)
    data_start = _pad(r.offset, alignment)
    _check_layout(path, tensors, data_start, alignment, r.size)
    return _make_info(path, r.size, version, architecture, meta, tensors)


def _check_version(path: str, version: int) -> int:
    if version in SUPPORTED_VERSIONS:
        return version
    if int.from_bytes(version.to_bytes(4, "little"), "big") in SUPPORTED_VERSIONS:
        raise _bad(
            path,
            "is a big-endian GGUF, made for IBM mainframes",
            "download the ordinary (little-endian) GGUF of this model",
        )
    if version == 1:
        raise _bad(path, "is GGUF version 1, which llama.cpp no longer reads", "download a newer conversion")
    raise _bad(
        path,
        f"is GGUF version {version:,}, which FastSlow cannot read (it reads versions 2 and 3)",
        "update FastSlow or download another conversion of the model",
    )


def _read_metadata(r: _Reader, n_kv: int) -> _Metadata:
    meta = _Metadata()
    for _ in range(n_kv):
        at = r.offset
        key_len = r.u64()
        if key_len == 0 or key_len > _MAX_KEY:
            raise _corrupt(r.path, f"has a metadata key of {key_len:,} bytes at byte {at:,}")
        key = r.raw(key_len).decode("utf-8", errors="replace")
        if not key.isprintable():  # keys are names ("general.architecture"); control bytes mean damage
            raise _corrupt(r.path, f"has a metadata key of {key_len:,} bytes at byte {at:,} that is not text")
        if key in meta.values:
            raise _corrupt(r.path, f"has the metadata key '{key}' twice")
        vtype = r.u32()
        meta.types[key] = vtype
        if vtype == GGUFValueType.ARRAY:
            meta.values[key] = _read_array(r, key, meta)
        elif vtype == GGUFValueType.STRING:
            n = r.u64()
            if n > _MAX_TEXT:
                # No real metadata string is this long (chat templates run to tens of KB): skip it.
                r.skip(n)
                meta.values[key] = f"<string of {n} bytes>"
                meta.oversized.add(key)
            else:
                meta.values[key] = r.raw(n).decode("utf-8", errors="replace")
        elif vtype in _SCALARS:
            meta.values[key] = r.unpack(_SCALARS[vtype])[0]
        else:
            raise _unknown_value_type(r.path, key, vtype)
    return meta


def _read_array(r: _Reader, key: str, meta: _Metadata) -> str:
    """Count (and, when short and numeric, keep) one array; return its summary for the metadata."""
    item_type, count = r.u32(), r.u64()
    if item_type == GGUFValueType.ARRAY:
        # Legal in the spec, but llama.cpp refuses nested arrays, so the file would not load.
        raise _bad(r.path, f"has an array of arrays under '{key}', which llama.cpp cannot read")
    if item_type == GGUFValueType.STRING:
        item_size = 8  # the length prefix, at least
    elif item_type in _SCALARS:
        item_size = _SCALARS[item_type].size
    else:
        raise _unknown_value_type(r.path, key, item_type)
    if count * item_size > r.remaining:
        raise _bad(
            r.path,
            f"is cut short or corrupt: '{key}' claims {count:,} items, more than the {r.remaining:,} bytes "
            f"left before the file ends at byte {r.size:,}",
        )

    if item_type == GGUFValueType.STRING:
        r.skip_strings(count)
    elif count <= _SMALL_ARRAY:
        code = _SCALARS[item_type].format[1:]  # drop the "<"
        meta.small_arrays[key] = struct.unpack(f"<{count}{code}", r.raw(count * item_size))
    else:
        r.skip(count * item_size)
    meta.array_lengths[key] = count
    return f"<array of {count} {GGUFValueType(item_type).name.lower()}>"


def _read_tensor_info(r: _Reader) -> _Tensor:
    at = r.offset
    name_len = r.u64()
    if name_len > MAX_TENSOR_NAME:
        limit = f"llama.cpp allows {MAX_TENSOR_NAME}"
        raise _corrupt(r.path, f"has a tensor name of {name_len:,} bytes at byte {at:,} ({limit})")
    name = r.raw(name_len).decode("utf-8", errors="replace")
    n_dims = r.u32()
    if n_dims > MAX_DIMS:
        raise _corrupt(r.path, f"gives tensor '{name}' {n_dims:,} dimensions (at most {MAX_DIMS} allowed)")
    dims = struct.unpack(f"<{n_dims}Q", r.raw(8 * n_dims))
    for d in dims:
        if d == 0 or d >= 1 << 63:  # u64 on disk, int64 in llama.cpp: the top bit makes it negative
            signed = d - (1 << 64) if d >= 1 << 63 else d
            raise _corrupt(r.path, f"gives tensor '{name}' a dimension of size {signed:,}")
    ggml_type = r.u32()
    if ggml_type not in GGML_QUANT_SIZES:
        raise _bad(
            r.path,
            f"stores tensor '{name}' in ggml type {ggml_type}, which this version of FastSlow does not know",
            "update FastSlow, or download a more common quantization such as Q4_K_M",
        )
    block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    row = dims[0] if dims else 1
    if row % block_size:
        type_name = GGMLQuantizationType(ggml_type).name
        raise _corrupt(
            r.path,
            f"gives tensor '{name}' rows of {row:,} values, not a multiple of the {type_name} block size"
            f" ({block_size})",
        )
    offset = r.u64()
    n_elements = 1
    for d in dims:
        n_elements *= d
    n_bytes = n_elements // block_size * type_size
    if n_bytes > r.size:
        raise _corrupt(r.path, f"claims {n_bytes:,} bytes for tensor '{name}', more than the whole file")
    return _Tensor(name, ggml_type, offset, n_elements, n_bytes)


def _check_unique_names(path: str, tensors: list[_Tensor]) -> None:
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise _corrupt(path, f"has two tensors named '{t.name}'")
        seen.add(t.name)


def _alignment(path: str, meta: _Metadata) -> int:
    if "general.alignment" not in meta.values:
        return DEFAULT_ALIGNMENT
    value = meta.values["general.alignment"]
    if meta.types["general.alignment"] != GGUFValueType.UINT32 or value <= 0 or value & (value - 1):
        raise _corrupt(path, f"declares an alignment of {value!r}, which is not a power of two stored as u32")
    return value


def _check_layout(path: str, tensors: list[_Tensor], data_start: int, alignment: int, file_size: int) -> None:
    """Tensors must be aligned and packed in order (llama.cpp insists), and must end inside the file."""
    expected, previous = 0, None
    for t in tensors:
        at = f"places tensor '{t.name}' at data offset {t.offset:,}"
        if t.offset % alignment:
            raise _corrupt(path, f"{at}, which is not a multiple of its alignment ({alignment})")
        if previous and t.offset < expected:
            raise _corrupt(path, f"{at}, overlapping tensor '{previous.name}', which ends at {expected:,}")
        if t.offset > expected:
            after = f"after tensor '{previous.name}'" if previous else "at the start of the data"
            gap = t.offset - expected
            raise _corrupt(path, f"{at}, leaving a gap of {gap:,} bytes {after} that llama.cpp refuses")
        expected, previous = t.offset + _pad(t.n_bytes, alignment), t
    end = data_start + tensors[-1].offset + tensors[-1].n_bytes
    if end > file_size:
        missing = end - file_size
        raise _bad(
            path,
            f"is incomplete: its tensors need {end:,} bytes but it has {file_size:,}, "
            f"so {exact_size_text(missing)} {'is' if missing == 1 else 'are'} missing, probably from an interrupted download",
        )


def _make_info(
    path: str, file_size: int, version: int, arch: str, meta: _Metadata, tensors: list[_Tensor]
) -> GGUFInfo:
    values = meta.values

    def integer(key: str) -> int | None:
        value = values.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        per_layer = meta.small_arrays.get(key)
        if per_layer and all(isinstance(v, int) for v in per_layer):
            return max(per_layer)  # per-layer values: the largest sizes memory safely
        return None

    def text(key: str) -> str | None:
        loaded = meta.types.get(key) == GGUFValueType.STRING and key not in meta.oversized
        return values[key] if loaded else None

    n_embd = integer(f"{arch}.embedding_length")
    n_head = integer(f"{arch}.attention.head_count")
    n_head_kv = integer(f"{arch}.attention.head_count_kv") or n_head
    head_dim = n_embd // n_head if n_embd and n_head else None
    pattern_key = f"{arch}.attention.sliding_window_pattern"
    swa_pattern = integer(pattern_key) if pattern_key in values else None
    if pattern_key in meta.small_arrays:
        swa_pattern = tuple(bool(v) for v in meta.small_arrays[pattern_key])

    return GGUFInfo(
        path=path,
        file_size=file_size,
        version=version,
        architecture=arch,
        name=text("general.name") or os.path.splitext(os.path.basename(path))[0],
        n_params=sum(t.n_elements for t in tensors),
        n_tensors=len(tensors),
        quantization=_quantization(integer("general.file_type"), tensors),
        context_length=integer(f"{arch}.context_length"),
        n_layers=integer(f"{arch}.block_count"),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=integer(f"{arch}.attention.key_length") or head_dim,
        head_dim_v=integer(f"{arch}.attention.value_length") or head_dim,
        sliding_window=integer(f"{arch}.attention.sliding_window"),
        n_vocab=meta.array_lengths.get("tokenizer.ggml.tokens") or integer(f"{arch}.vocab_size"),
        chat_template=text("tokenizer.chat_template"),
        bos_token_id=integer("tokenizer.ggml.bos_token_id"),
        eos_token_id=integer("tokenizer.ggml.eos_token_id"),
        swa_pattern=swa_pattern,
        metadata=values,
    )


def _quantization(file_type: int | None, tensors: list[_Tensor]) -> str:
    if file_type is not None:
        try:
            # llama.cpp ORs in GUESSED (1024) when it inferred the type itself.
            name = LlamaFileType(file_type & ~LlamaFileType.GUESSED).name
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass  # a file type newer than our table: fall back to the tensors
    by_bytes: Counter[int] = Counter()
    for t in tensors:
        by_bytes[t.ggml_type] += t.n_bytes
    return GGMLQuantizationType(by_bytes.most_common(1)[0][0]).name


# --- reading ------------------------------------------------------------------------------------


class _Reader:
    """Little-endian reads from the start of a file, in 1 MiB chunks; reading past its end is a GGUFError."""

    def __init__(self, f: BinaryIO, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self._f = f
        self._buf = b""
        self._pos = 0  # next byte to read, within _buf
        self._base = 0  # file offset of _buf[0]; the file position is always _base + len(_buf)

    @property
    def offset(self) -> int:
        return self._base + self._pos

    @property
    def remaining(self) -> int:
        return self.size - self.offset

    def peek(self, n: int) -> bytes:
        n = min(n, self.remaining)
        self._fill(n)
        return self._buf[self._pos : self._pos + n]

    def unpack(self, s: struct.Struct) -> tuple:
        self._fill(s.size)
        values = s.unpack_from(self._buf, self._pos)
        self._pos += s.size
        return values

    def u32(self) -> int:
        return self.unpack(_U32)[0]

    def u64(self) -> int:
        return self.unpack(_U64)[0]

    def raw(self, n: int) -> bytes:
        self._fill(n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def skip(self, n: int) -> None:
        if n <= len(self._buf) - self._pos:
            self._pos += n
            return
        if n > self.remaining:
            raise self._cut_short(n)
        target = self.offset + n
        self._f.seek(target)
        self._buf, self._pos, self._base = b"", 0, target

    def skip_strings(self, count: int) -> None:
        """Step over `count` length-prefixed strings without copying or decoding them."""
        unpack_len = _U64.unpack_from
        while count:
            # Fast path: walk the strings that lie wholly inside the buffer.
            buf, pos, end = self._buf, self._pos, len(self._buf)
            while count and pos + 8 <= end:
                n = unpack_len(buf, pos)[0]
                if pos + 8 + n > end:
                    break
                pos += 8 + n
                count -= 1
            self._pos = pos
            if count:  # one string straddles the buffer's end (or is bogus): take it the careful way
                self.skip(self.u64())
                count -= 1

    def _fill(self, n: int) -> None:
        """Make n bytes available at _pos, or fail before allocating anything when the file is too short."""
        have = len(self._buf) - self._pos
        if have >= n:
            return
        if n > self.remaining:
            raise self._cut_short(n)
        rest = self._buf[self._pos :]
        self._base += self._pos
        self._buf = rest + self._f.read(max(n - have, _CHUNK))
        self._pos = 0
        if len(self._buf) < n:  # the file shrank while we read it
            raise self._cut_short(n)

    def _cut_short(self, n: int) -> GGUFError:
        return _bad(
            self.path,
            f"is cut short or corrupt: its header needs {n:,} more bytes at byte {self.offset:,}, "
            f"but the file ends at byte {self.size:,}",
        )


# --- messages -----------------------------------------------------------------------------------


def _bad(path: str, problem: str, advice: str = "download it again") -> GGUFError:
    return GGUFError(f"Model file '{path}' {problem}; {advice}.", kind="bad_model_file")


def _corrupt(path: str, problem: str) -> GGUFError:
    return _bad(path, f"{problem}, so it is corrupt")


def _unknown_value_type(path: str, key: str, vtype: int) -> GGUFError:
    return _bad(
        path,
        f"stores '{key}' with value type {vtype}, which GGUF does not define, "
        "so the file is corrupt or from a newer format",
        "download it again or update FastSlow",
    )


def _sniff(head: bytes) -> tuple[str, str]:
    """Say what a non-GGUF file looks like, from its first bytes, and what to do about it."""
    choose = "choose a .gguf model file"
    convert = "download a GGUF conversion of this model"
    again = "download the model again"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "it is a ZIP archive, perhaps a PyTorch checkpoint or a zipped download", f"unzip it or {choose}"
    if head.startswith(b"\x1f\x8b"):
        return "it is a gzip archive", f"unpack it or {choose}"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "it is a web page, probably an error or sign-in page saved in place of the model", again
    if text.startswith(b"<?xml"):
        return "it is an XML document, probably a storage service's error message", again
    if head.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer, not the model itself", "fetch it with 'git lfs pull' or download it again"
    if head[8:9] == b"{":  # safetensors: a u64 header length, then the JSON header
        return "it is a safetensors file, and FastSlow runs GGUF", convert
    if text.startswith((b"{", b"[")):
        return "it is a JSON file", choose
    if head[:4] in (b"lmgg", b"fmgg", b"tjgg", b"algg"):  # "ggml", "ggmf", "ggjt", "ggla" as LE u32
        return "it is a GGML model from before GGUF, which llama.cpp no longer loads", convert
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "it is a Python pickle, probably a PyTorch checkpoint", convert
    return "it does not start with the GGUF signature", choose


def _pad(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


