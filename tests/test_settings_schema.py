"""Every settings file, whatever it holds, either loads with every value typed and in bounds or is
set aside as settings.json.bad with the reason: the app starts either way (the issue "Nothing lost,
nothing let in", case 11). By hand for the issue's files, and with hypothesis over arbitrary JSON."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.settings import (
    MAX_GPU_LAYERS,
    MAX_N_CTX,
    MAX_PANES,
    MODES,
    ROUTERS,
    Settings,
    load_settings,
    logical_cpus,
    save_settings,
)

FIELDS = [f.name for f in fields(Settings)]


def _in_bounds(s: Settings) -> None:
    """Each field of loaded settings, judged here on its own (not by the code under test)."""
    assert s.n_threads is None or (type(s.n_threads) is int and 1 <= s.n_threads <= logical_cpus())
    assert s.n_gpu_layers is None or (type(s.n_gpu_layers) is int and -1 <= s.n_gpu_layers <= MAX_GPU_LAYERS)
    assert type(s.n_ctx) is int and 256 <= s.n_ctx <= MAX_N_CTX
    assert type(s.sample_hz) is float and math.isfinite(s.sample_hz) and 0.5 <= s.sample_hz <= 100
    assert s.tdp_w is None or (type(s.tdp_w) is float and math.isfinite(s.tdp_w) and 1 <= s.tdp_w <= 2000)
    assert s.data_dir is None or type(s.data_dir) is str
    assert s.mode in MODES and s.router in ROUTERS
    assert type(s.max_tokens) is int and 1 <= s.max_tokens <= MAX_N_CTX
    assert type(s.pane_models) is list and 2 <= len(s.pane_models) <= MAX_PANES
    assert all(type(name) is str and name.strip() for name in s.pane_models)
    for value in (s.data_dir, *s.pane_models):
        if value is not None:
            value.encode("utf-8")  # text a file name can have: no lone surrogate


def _check(content: bytes) -> None:
    """Load content as a settings file: loaded in bounds and left alone, or set aside with a reason."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "settings.json"
        path.write_bytes(content)
        loaded = load_settings(path)  # never raises: that is the point
        bad = path.with_name("settings.json.bad")
        if loaded.problem is None:
            _in_bounds(loaded.settings)
            assert path.read_bytes() == content and not bad.exists()
            save_settings(loaded.settings, Path(folder) / "again.json")  # what loads also saves, and reads back
            assert load_settings(Path(folder) / "again.json").settings == loaded.settings
        else:
            assert loaded.settings == Settings()
            assert loaded.problem.startswith(f"The settings in {path} could not be used (")
            assert loaded.problem.endswith("; it was kept as settings.json.bad. Defaults are in use.")
            assert "()" not in loaded.problem  # a reason is given
            assert bad.read_bytes() == content and not path.exists()  # nothing the user wrote is lost


# -- the files ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "data, words",
    [
        ({"data_dir": 5}, "data_dir must be a string or null, not 5"),
        ({"pane_models": [1, None, {}]}, "pane_models must be a list of strings, not [1, null, {}]"),
        ({"pane_models": "smollm2-135m"}, "pane_models must be a list of strings"),
        ({"pane_models": ["a", "b", "c", "d", "e"]}, "at most 4 panes, not 5"),
        ({"pane_models": ["smollm2-135m", "  "]}, "each pane's model must be named"),
        ({"n_ctx": math.inf}, "n_ctx must be a whole number, not Infinity"),
        ({"max_tokens": math.inf}, "max_tokens must be a whole number, not Infinity"),
        ({"n_ctx": 4096.5}, "n_ctx must be a whole number, not 4096.5"),
        ({"max_tokens": 512.0}, "max_tokens must be a whole number, not 512.0"),
        ({"max_tokens": True}, "max_tokens must be a whole number, not true"),
        ({"n_gpu_layers": False}, "n_gpu_layers must be a whole number or null, not false"),
        ({"n_threads": True}, "n_threads must be a whole number or null, not true"),
        ({"sample_hz": math.nan}, "sample_hz must be a finite number, not NaN"),
        ({"tdp_w": -math.inf}, "tdp_w must be a finite number or null, not -Infinity"),
        ({"tdp_w": True}, "tdp_w must be a finite number or null, not true"),
        ({"mode": ["fair"]}, "mode must be a string, not [\"fair\"]"),
        ({"max_tokens": MAX_N_CTX + 1}, f"max tokens must be 1 to {MAX_N_CTX}"),
        ({"n_gpu_layers": 10**6}, f"GPU layers must be empty (as many as fit), -1 (all) or 0 to {MAX_GPU_LAYERS}"),
        ({"data_dir": "/tmp/\udcff"}, "data_dir holds a lone surrogate (\\udcff)"),
        ({"data_dir": "/a\x00b"}, "the data folder cannot contain a NUL character"),
        ({"data_dir": "~no-such-user-here/fastslow"}, "home folder of a user this machine does not have"),
    ],
)
def test_a_file_with_a_value_of_the_wrong_type_or_out_of_bounds_is_set_aside(tmp_path, data, words):
    path = tmp_path / "settings.json"
    content = json.dumps(data)  # Infinity and NaN as Python's json writes (and reads) them
    path.write_text(content)
    loaded = load_settings(path)
    assert loaded.settings == Settings()
    assert words in loaded.problem and "Defaults are in use" in loaded.problem
    assert (tmp_path / "settings.json.bad").read_text() == content


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_a_file_nested_too_deeply_is_set_aside_not_a_crash(tmp_path, depth):
    for content in ("[" * depth + "]" * depth, '{"pane_models": ' + "[" * depth + "]" * depth + "}"):
        path = tmp_path / "settings.json"
        path.write_text(content)
        loaded = load_settings(path)
        assert loaded.settings == Settings()
        assert "(it is nested too deeply to read)" in loaded.problem
        assert (tmp_path / "settings.json.bad").read_text() == content


def test_a_whole_number_where_a_float_is_asked_is_taken_as_that_float(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"sample_hz": 5, "tdp_w": 28}))
    loaded = load_settings(path)
    assert loaded.problem is None
    assert (loaded.settings.sample_hz, loaded.settings.tdp_w) == (5.0, 28.0)
    assert type(loaded.settings.sample_hz) is float and type(loaded.settings.tdp_w) is float


def test_values_of_the_wrong_type_are_refused_on_save_too(tmp_path):
    for wrong in (Settings(n_ctx=4096.0), Settings(max_tokens=True), Settings(sample_hz=math.inf),
                  Settings(pane_models=["a", 5])):
        with pytest.raises(ValueError, match="must be"):
            save_settings(wrong, tmp_path / "settings.json")
    assert not (tmp_path / "settings.json").exists()


def test_four_panes_load_and_the_defaults_are_in_bounds(tmp_path):
    _in_bounds(Settings())
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"pane_models": ["a", "b", "c", "d"]}))
    assert load_settings(path).settings.pane_models == ["a", "b", "c", "d"]


# -- arbitrary files --------------------------------------------------------------------------------

leaves = (st.none() | st.booleans() | st.integers() | st.integers(-2, 300_000)
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
# Values a field might plausibly hold, so that many files load and the bounds are exercised too.
plausible = st.one_of(
    st.integers(-3, 1100), st.integers(200, MAX_N_CTX + 2), st.floats(0, 2100), st.sampled_from(MODES + ROUTERS),
    st.sampled_from(["/var/tmp/fastslow", "relative/dir", "/proc/x", "", "~/FastSlow"]),
    st.lists(st.sampled_from(["smollm2-135m", "gemma3-270m", "", " ", "x.gguf"]), max_size=6),
)
settings_files = st.dictionaries(st.sampled_from(FIELDS + ["future_option"]), plausible | json_values, max_size=7)


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(settings_files)
@example({"data_dir": 5})
@example({"pane_models": [1, None, {}]})
@example({"n_ctx": math.inf, "max_tokens": 1e300})
@example({"n_gpu_layers": True, "n_threads": False})
def test_any_settings_object_loads_in_bounds_or_is_set_aside_with_a_reason(data):
    _check(json.dumps(data).encode("utf-8"))


@hypothesis_settings(max_examples=100, deadline=None)
@given(json_values)
def test_any_json_at_all_loads_in_bounds_or_is_set_aside_with_a_reason(data):
    _check(json.dumps(data).encode("utf-8"))


@hypothesis_settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(b"\xff\xfe{}")
@example(b'{"data_dir": "\\udcff"}')
def test_any_bytes_at_all_load_in_bounds_or_are_set_aside_with_a_reason(content):
    _check(content)
