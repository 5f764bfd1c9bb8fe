"""read_gguf_header on the two real bundled models, on copies of them damaged in each way the reader
names, and on small files written by gguf-py's own writer."""

from __future__ import annotations

import os
import shutil
import struct
import time
import zipfile
from pathlib import Path

import gguf
import numpy as np
import pytest

from app.engines.gguf_header import GGUFError, read_gguf_header

# --- helpers ------------------------------------------------------------------------------------


def copy(src: str, dst: Path, size: int | None = None) -> Path:
    """A copy of src at dst, cut to its first `size` bytes when given."""
    shutil.copyfile(src, dst)
    if size is not None:
        os.truncate(dst, size)
    return dst


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def find(path: Path | str, needle: bytes) -> int:
    """Offset of the first `needle` in the file's first 8 MiB (where every header here ends)."""
    with open(path, "rb") as f:
        offset = f.read(8 << 20).find(needle)
    assert offset >= 0, needle
    return offset


def tensor_info(path: Path | str, name: str) -> dict[str, int]:
    """Where the fields of one tensor's info lie: found by its length-prefixed name, decoded here."""
    encoded = name.encode()
    at = find(path, struct.pack("<Q", len(encoded)) + encoded) + 8 + len(encoded)
    with open(path, "rb") as f:
        f.seek(at)
        (n_dims,) = struct.unpack("<I", f.read(4))
        f.seek(at + 4 + 8 * n_dims)
        ggml_type, offset = struct.unpack("<IQ", f.read(12))
    type_at = at + 4 + 8 * n_dims
    return {"n_dims_at": at, "dims_at": at + 4, "type_at": type_at, "offset_at": type_at + 4, "offset": offset}


def expect_error(path: Path | str, kind: str, *fragments: str) -> str:
    """read_gguf_header(path) fails with `kind` and one sentence naming the file and the problem."""
    with pytest.raises(GGUFError) as caught:
        read_gguf_header(path)
    error = caught.value
    message = error.message
    assert error.kind == kind, message
    assert str(path) in message, message
    rest = message.replace(str(path), "")
    assert message.endswith(".") and ". " not in rest and "\n" not in rest, f"not one sentence: {message}"
    for fragment in fragments:
        assert fragment in message, message
    return message


def write_small_gguf(path: Path, alignment: int | None = None) -> Path:
    """A tiny but complete GGUF written by gguf-py: two tensors and a little of every metadata kind."""
    writer = gguf.GGUFWriter(str(path), "llama")
    if alignment:
        writer.add_custom_alignment(alignment)
    writer.add_name("tiny test model")
    writer.add_block_count(2)
    writer.add_context_length(256)
    writer.add_embedding_length(32)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_sliding_window(16)
    writer.add_array("llama.attention.sliding_window_pattern", [True, False])
    writer.add_bool("test.flag", True)
    writer.add_float32("test.scale", 0.5)
    writer.add_token_list(["<s>", "</s>", "hello"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    writer.add_tensor("first.weight", np.arange(128, dtype=np.float32).reshape(4, 32))
    writer.add_tensor("second.weight", np.ones((2, 32), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --- the real models ----------------------------------------------------------------------------


def test_smollm2_header(smollm2_path: str) -> None:
    info = read_gguf_header(smollm2_path)
    assert info.path == smollm2_path
    assert info.file_size == os.path.getsize(smollm2_path)
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.quantization == "Q4_1"
    assert info.n_layers == 30
    assert info.context_length == 8192
    assert (info.n_embd, info.n_head, info.n_head_kv) == (576, 9, 3)
    assert info.head_dim_k == info.head_dim_v == 64  # no key_length in the file: n_embd / n_head
    assert info.sliding_window is None
    assert info.n_vocab == 49152
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert (info.bos_token_id, info.eos_token_id) == (1, 2)
    assert info.n_tensors == 272
    assert info.n_params == 134_515_008  # ~135M, embeddings tied to the output
    assert info.name == "Smollm2 135M 8k Lc100K Mix1 Ep2"


def test_gemma_header(gemma_path: str) -> None:
    info = read_gguf_header(gemma_path)
    assert info.architecture == "gemma3"
    assert info.quantization == "Q4_K_M"
    assert info.n_layers == 18
    assert info.context_length == 32768
    assert (info.n_embd, info.n_head, info.n_head_kv) == (640, 4, 1)
    assert info.head_dim_k == info.head_dim_v == 256  # from key_length/value_length, not 640 / 4
    assert info.sliding_window == 512
    assert info.swa_pattern is None  # the file leaves the layer pattern to llama.cpp
    assert info.n_vocab == 262_144
    assert info.chat_template is None  # this GGUF carries none: the catalog supplies one
    assert (info.bos_token_id, info.eos_token_id) == (2, 1)
    assert info.n_tensors == 236
    assert info.n_params == 268_098_176  # ~270M


def test_metadata_keeps_scalars_and_summarizes_arrays(smollm2_path: str) -> None:
    metadata = read_gguf_header(smollm2_path).metadata
    assert metadata["llama.block_count"] == 30
    assert metadata["llama.rope.freq_base"] == 100000.0
    assert metadata["tokenizer.ggml.add_bos_token"] is False
    assert metadata["tokenizer.ggml.model"] == "gpt2"
    assert metadata["tokenizer.ggml.tokens"] == "<array of 49152 string>"
    assert metadata["tokenizer.ggml.merges"] == "<array of 48900 string>"
    assert metadata["tokenizer.ggml.token_type"] == "<array of 49152 int32>"


def test_reads_a_262k_vocabulary_header_fast(gemma_path: str) -> None:
    read_gguf_header(gemma_path)  # the first read may pay for the disk; time the ones after
    best = min(_timed(read_gguf_header, gemma_path) for _ in range(3))
    assert best < 0.3, f"{best:.3f} s to read a header"


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


# --- files that are not there or not GGUF -------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.gguf", "missing_model_file", "does not exist")


def test_directory(tmp_path: Path) -> None:
    expect_error(tmp_path, "missing_model_file", "is a directory, not a file", "choose the .gguf file inside it")


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.touch()
    expect_error(empty, "bad_model_file", "is empty (0 bytes)", "download it again")


def test_flipped_magic(smollm2_path: str, tmp_path: Path) -> None:
    bad = copy(smollm2_path, tmp_path / "flipped.gguf")
    patch(bad, 0, b"GGUX")
    expect_error(bad, "bad_model_file", "is not a GGUF model", "does not start with the GGUF signature")


def test_zip_file(tmp_path: Path) -> None:
    archive = tmp_path / "model.gguf"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("model.bin", b"\0" * 100)
    expect_error(archive, "bad_model_file", "is not a GGUF model", "ZIP archive")


def test_html_error_page(tmp_path: Path) -> None:
    page = tmp_path / "model.gguf"
    page.write_text("\n<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Oops</body></html>\n")
    expect_error(page, "bad_model_file", "is not a GGUF model", "web page", "download the model again")


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (struct.pack("<Q", 2) + b'{"a":1}' + b"\0" * 100, "safetensors"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer"),
        (b"tjgg" + b"\3\0\0\0" + b"\0" * 100, "GGML model from before GGUF"),
        (b'{"architectures": ["LlamaForCausalLM"]}', "JSON file"),
    ],
)
def test_other_formats_are_named(tmp_path: Path, content: bytes, looks_like: str) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    expect_error(path, "bad_model_file", "is not a GGUF model", looks_like)


# --- GGUF files that are damaged ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "fragment"),
    [(4, "version 4,"), (1, "version 1,"), (0x03000000, "big-endian")],
)
def test_unsupported_version(smollm2_path: str, tmp_path: Path, version: int, fragment: str) -> None:
    bad = copy(smollm2_path, tmp_path / "version.gguf")
    patch(bad, 4, struct.pack("<I", version))
    expect_error(bad, "bad_model_file", fragment)


@pytest.mark.parametrize("size", [500_000, 1_000_000])
def test_truncated_in_the_metadata(smollm2_path: str, tmp_path: Path, size: int) -> None:
    # SmolLM2's header runs to 1.78 MB: these cuts end inside its token list and its merges.
    bad = copy(smollm2_path, tmp_path / "cut.gguf", size=size)
    expect_error(bad, "bad_model_file", "is cut short or corrupt", f"the file ends at byte {size:,}")


def test_truncated_right_after_the_magic(smollm2_path: str, tmp_path: Path) -> None:
    bad = copy(smollm2_path, tmp_path / "cut.gguf", size=6)
    expect_error(bad, "bad_model_file", "is cut short or corrupt")


def test_truncated_in_the_tensor_data(gemma_path: str, tmp_path: Path) -> None:
    # The file ends exactly where its last tensor does, so every byte cut is a byte missing.
    cut = 3 << 20
    bad = copy(gemma_path, tmp_path / "partial.gguf", size=os.path.getsize(gemma_path) - cut)
    expect_error(bad, "bad_model_file", "is incomplete", "3,145,728 bytes (3.0 MiB) are missing", "download it again")


def test_absurd_tensor_count(smollm2_path: str, tmp_path: Path) -> None:
    bad = copy(smollm2_path, tmp_path / "many.gguf")
    patch(bad, 8, struct.pack("<Q", 10**12))
    expect_error(bad, "bad_model_file", "claims 1,000,000,000,000 tensors", "so it is corrupt")


def test_absurd_string_length(smollm2_path: str, tmp_path: Path) -> None:
    bad = copy(smollm2_path, tmp_path / "long.gguf")
    value_at = find(bad, b"general.architecture") + len(b"general.architecture") + 4
    patch(bad, value_at, struct.pack("<Q", 10**15))
    expect_error(bad, "bad_model_file", "is cut short or corrupt", "1,000,000,000,000,000 more bytes")


def test_absurd_array_length(smollm2_path: str, tmp_path: Path) -> None:
    bad = copy(smollm2_path, tmp_path / "vocab.gguf")
    count_at = find(bad, b"tokenizer.ggml.tokens") + len(b"tokenizer.ggml.tokens") + 4 + 4
    patch(bad, count_at, struct.pack("<Q", 10**12))
    expect_error(bad, "bad_model_file", "'tokenizer.ggml.tokens' claims 1,000,000,000,000 items")


def test_unknown_value_type(smollm2_path: str, tmp_path: Path) -> None:
    bad = copy(smollm2_path, tmp_path / "type.gguf")
    patch(bad, find(bad, b"general.architecture") + len(b"general.architecture"), struct.pack("<I", 42))
    expect_error(bad, "bad_model_file", "'general.architecture' with value type 42")


def test_unknown_tensor_type(smollm2_path: str, tmp_path: Path) -> None:
    bad = copy(smollm2_path, tmp_path / "ggml_type.gguf")
    patch(bad, tensor_info(bad, "token_embd.weight")["type_at"], struct.pack("<I", 99))
    expect_error(bad, "bad_model_file", "tensor 'token_embd.weight' in ggml type 99", "update FastSlow")


def test_unaligned_tensor_offset(smollm2_path: str, tmp_path: Path) -> None:
    bad = copy(smollm2_path, tmp_path / "unaligned.gguf")
    info = tensor_info(bad, "token_embd.weight")
    patch(bad, info["offset_at"], struct.pack("<Q", info["offset"] + 4))
    expect_error(bad, "bad_model_file", "tensor 'token_embd.weight'", "not a multiple of its alignment (32)")


def test_too_many_dimensions(smollm2_path: str, tmp_path: Path) -> None:
    bad = copy(smollm2_path, tmp_path / "dims.gguf")
    patch(bad, tensor_info(bad, "token_embd.weight")["n_dims_at"], struct.pack("<I", 7))
    expect_error(bad, "bad_model_file", "gives tensor 'token_embd.weight' 7 dimensions")


@pytest.mark.parametrize(("dim", "shown"), [(0, "size 0,"), (2**64 - 1, "size -1,")])
def test_zero_or_negative_dimension(smollm2_path: str, tmp_path: Path, dim: int, shown: str) -> None:
    bad = copy(smollm2_path, tmp_path / "dim.gguf")
    patch(bad, tensor_info(bad, "token_embd.weight")["dims_at"], struct.pack("<Q", dim))
    expect_error(bad, "bad_model_file", f"gives tensor 'token_embd.weight' a dimension of {shown}")


def test_overlapping_tensors(tmp_path: Path) -> None:
    bad = write_small_gguf(tmp_path / "overlap.gguf")
    patch(bad, tensor_info(bad, "second.weight")["offset_at"], struct.pack("<Q", 0))
    expect_error(bad, "bad_model_file", "tensor 'second.weight'", "overlapping tensor 'first.weight'")


def test_gap_between_tensors(tmp_path: Path) -> None:
    bad = write_small_gguf(tmp_path / "gap.gguf")
    info = tensor_info(bad, "second.weight")
    patch(bad, info["offset_at"], struct.pack("<Q", info["offset"] + 32))
    expect_error(bad, "bad_model_file", "leaving a gap of 32 bytes after tensor 'first.weight'")


# --- round trip through gguf-py's writer --------------------------------------------------------


@pytest.mark.parametrize("alignment", [None, 64])
def test_round_trip_of_a_file_written_by_gguf_py(tmp_path: Path, alignment: int | None) -> None:
    path = write_small_gguf(tmp_path / "tiny.gguf", alignment)
    info = read_gguf_header(path)

    assert info.file_size == path.stat().st_size
    assert info.architecture == "llama"
    assert info.name == "tiny test model"
    assert info.n_tensors == 2
    assert info.n_params == 4 * 32 + 2 * 32
    assert info.quantization == "F32"  # no general.file_type: the type holding the most bytes
    assert (info.n_layers, info.context_length, info.n_embd) == (2, 256, 32)
    assert (info.n_head, info.n_head_kv, info.head_dim_k, info.head_dim_v) == (4, 2, 8, 8)
    assert info.sliding_window == 16
    assert info.swa_pattern == (True, False)
    assert info.n_vocab == 3
    assert (info.bos_token_id, info.eos_token_id) == (0, 1)
    assert info.chat_template == "{% for m in messages %}{{ m.content }}{% endfor %}"
    assert info.metadata["test.flag"] is True
    assert info.metadata["test.scale"] == 0.5
    assert info.metadata["tokenizer.ggml.tokens"] == "<array of 3 string>"
    assert info.metadata.get("general.alignment") == alignment

    # gguf-py's own (slower) reader agrees on what the file holds.
    reference = gguf.GGUFReader(path)
    assert len(reference.tensors) == info.n_tensors
    assert sum(int(t.n_elements) for t in reference.tensors) == info.n_params


def test_a_key_whose_length_was_damaged_is_refused_without_its_bytes_in_the_message(smollm2_path, tmp_path):
    # Found by the property test: a length grown over the next keys put their raw bytes, newlines
    # included, into the message.
    bad = copy(smollm2_path, tmp_path / "key.gguf")
    patch(bad, 315, b"\x00\x00\x00\x00T")
    message = expect_error(bad, "bad_model_file", "that is not text", "so it is corrupt")
    assert message.isprintable()
