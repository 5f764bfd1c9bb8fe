"""Property: whatever bytes a model file holds, reading its header gives a GGUFInfo or one clear
GGUFError sentence, never another exception, and quickly (a header claiming 10^12 tensors or a
10^15-byte string must not make the reader allocate or loop on it)."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engines.gguf_header import GGUFError, read_gguf_header

HEAD = 64 * 1024  # the header and the metadata of the bundled SmolLM2 lie in its first 64 KiB


def _check(path: Path) -> None:
    started = time.perf_counter()
    try:
        info = read_gguf_header(path)
    except GGUFError as exc:
        message = str(exc)
        assert message and "\n" not in message and str(path) in message, message
    else:
        assert info.path == str(path) and info.file_size == path.stat().st_size
    assert time.perf_counter() - started < 2.0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, HEAD - 8), st.binary(min_size=1, max_size=8)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, HEAD)))
def test_a_damaged_smollm2_header_is_read_or_refused_in_one_sentence(smollm2_path, tmp_path_factory, edits, cut):
    data = bytearray(Path(smollm2_path).read_bytes()[:HEAD] if cut is None else Path(smollm2_path).read_bytes()[:cut])
    for offset, chunk in edits:  # bytes overwritten here and there: counts, lengths, types, names
        if offset < len(data):
            data[offset:offset + len(chunk)] = chunk
    path = tmp_path_factory.mktemp("gguf") / "damaged.gguf"
    path.write_bytes(bytes(data))
    _check(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=512))
def test_any_bytes_after_the_magic_are_read_or_refused_in_one_sentence(tmp_path_factory, body):
    path = tmp_path_factory.mktemp("gguf") / "any.gguf"
    path.write_bytes(b"GGUF" + body)
    _check(path)
