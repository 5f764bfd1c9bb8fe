"""The `fastslow` command as a user runs it: a real process, real models, real exit codes."""

import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.model  # runs the command or the app on a model (not in `make check`)

SHORT = ["--max-tokens", "6", "--temperature", "0"]


def fastslow(*args, stdin=None, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_compare_streams_both_panes_and_ends_with_a_table():
    out = fastslow("compare", "What is 2 + 2?", "-m", "smollm2-135m", "-m", "gemma3-270m", *SHORT)
    assert out.returncode == 0, out.stderr
    from app.hardware import physical_cores

    threads = physical_cores()  # fair mode: every core for each pane in turn
    where = f"CPU · {threads} thread{'s' if threads != 1 else ''}, fair mode"
    assert f"── [1 smollm2-135m] {where} ──" in out.stdout and f"── [2 gemma3-270m] {where} ──" in out.stdout
    assert f"[1 smollm2-135m] ran on CPU · {threads} thread" in out.stdout  # the summary says it too
    table = out.stdout[out.stdout.index("#  model"):]
    assert "decode tok/s" in table and "TTFT" in table
    assert table.count(" ok ") == 2


def test_json_prints_one_complete_record_per_run():
    out = fastslow("compare", "Hello", "-m", "smollm2-135m", "-m", "gemma3-270m", "--live", "--json", *SHORT)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["model"] for r in records] == ["smollm2-135m", "gemma3-270m"]
    for record in records:
        assert record["status"] == "ok" and record["mode"] == "live"
        assert record["n_generated"] == 6 and record["finish_reason"] == "length"
        assert record["ttft_s"] > 0 and record["decode_tps"] > 0
        assert record["model_info"]["backend_used"] == "CPU"
        assert record["fit"]["verdict"] == "fits"


def test_live_mode_labels_every_line():
    out = fastslow("compare", "List two fruits.", "--live", *SHORT)  # default: the bundled pair
    assert out.returncode == 0, out.stderr
    body = out.stdout[: out.stdout.index("#  model")]
    streamed = [line for line in body.splitlines()[1:] if line.strip()]
    assert streamed and all(line.startswith(("[1 smollm2-135m]", "[2 gemma3-270m]")) for line in streamed)
    assert "live mode" in out.stdout
    assert "Energy of runs at once is shared by CPU time; fair mode (the default) measures each alone." in out.stdout


def test_prompt_from_standard_input():
    out = fastslow("compare", "-", "-m", "smollm2-135m", "--json", *SHORT, stdin="Say yes.")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n_prompt_tokens"] > 3


def _bad_inputs(tmp_path):
    text = tmp_path / "readme.gguf"
    text.write_text("hello")
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.gguf"
    folder.mkdir()
    return {
        "missing file": (str(tmp_path / "nope.gguf"), "missing_model_file", "not found"),
        "directory": (str(folder), "missing_model_file", "directory"),
        "not GGUF": (str(text), "bad_model_file", "not a GGUF"),
        "zero bytes": (str(empty), "bad_model_file", "empty"),
        "unknown name": ("qwen3-17b", "unknown_model", "qwen3-1.7b"),
    }


@pytest.mark.parametrize("case", ["missing file", "directory", "not GGUF", "zero bytes", "unknown name"])
def test_bad_model_gives_one_clear_line_exit_2_and_the_other_pane_still_runs(tmp_path, case):
    model, kind, words = _bad_inputs(tmp_path)[case]
    out = fastslow("compare", "Hi", "-m", model, "-m", "smollm2-135m", "--json", *SHORT)
    assert out.returncode == 2
    bad, good = (json.loads(line) for line in out.stdout.splitlines())
    assert bad["status"] == "failed" and bad["error_kind"] == kind
    assert words in bad["error"] and "\n" not in bad["error"]
    assert "Traceback" not in out.stderr
    assert good["status"] == "ok" and good["n_generated"] == 6


def test_truncated_gguf_is_refused(tmp_path, smollm2_path):
    truncated = tmp_path / "half.gguf"
    with open(smollm2_path, "rb") as source:
        truncated.write_bytes(source.read(os.path.getsize(smollm2_path) // 2))
    out = fastslow("compare", "Hi", "-m", str(truncated), *SHORT)
    assert out.returncode == 2
    assert "half.gguf" in out.stdout and "truncated" in out.stdout.lower()


def test_empty_prompt_exits_2_before_loading_anything():
    out = fastslow("compare", "  ", "-m", "smollm2-135m")
    assert out.returncode == 2
    assert out.stderr.strip() == "fastslow: the prompt is empty: give a question to ask"
    assert "loading" not in out.stdout


def test_prompt_longer_than_the_context_exits_2_with_the_figures():
    for ctx in ("16", "256"):
        out = fastslow("compare", "many words " * 200, "-m", "smollm2-135m", "--ctx", ctx, "--json")
        assert out.returncode == 2
        record = json.loads(out.stdout)
        assert record["error_kind"] == "prompt_too_long"
        assert f"{ctx}-token context" in record["error"]


def test_models_lists_the_catalog_with_fit_on_this_machine():
    out = fastslow("models", "--json")
    assert out.returncode == 0, out.stderr
    rows = {row["model"]: row for row in map(json.loads, out.stdout.splitlines())}
    assert rows["smollm2-135m"]["where"] == "bundled"
    assert rows["smollm2-135m"]["quant"] == "Q4_1"
    assert rows["gemma3-270m"]["fit"].startswith("fits")
    assert rows["qwen3-0.6b"]["where"] in ("not downloaded",) or rows["qwen3-0.6b"]["path"]
    table = fastslow("models")
    assert table.returncode == 0 and "smollm2-135m" in table.stdout and "RAM available" in table.stdout


def test_usage_errors_exit_2():
    assert fastslow("compare", "Hi", "--max-tokens", "0").returncode == 2
    assert fastslow("compare", "Hi", "--fair", "--live").returncode == 2
    negative = fastslow("compare", "Hi", "--thinking-budget", "-1")
    assert negative.returncode == 2 and "must be 0 or more" in negative.stderr


@pytest.mark.parametrize("flags, message", [
    (("--no-think",), "--no-think switches thinking off: choose one"),
    (("--thinking-budget", "10"), "--min-thinking 20 is longer than --thinking-budget 10"),
])
def test_a_minimum_thought_that_cannot_be_kept_exits_2_before_loading(flags, message):
    out = fastslow("compare", "Is 91 prime?", "--min-thinking", "20", *flags)
    assert out.returncode == 2 and message in out.stderr and "loading" not in out.stdout


def test_worker_killed_mid_run_exits_1_and_the_other_pane_finishes():
    import psutil

    cli = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "compare", "Write a long story about a whale.", "--live",
         "--json", "--max-tokens", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    parent = psutil.Process(cli.pid)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        workers = [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]
        # Wait until both workers are loaded and busy, then kill the first one started.
        if len(workers) == 2 and all(w.cpu_percent(interval=0.2) > 20 for w in workers):
            victim = min(workers, key=lambda w: w.create_time())
        time.sleep(0.1)
    assert victim is not None, "the workers never got busy"
    victim.kill()
    stdout, stderr = cli.communicate(timeout=120)
    assert cli.returncode == 1, stderr
    dead, alive = (json.loads(line) for line in stdout.splitlines())
    assert dead["error_kind"] == "worker_died" and "SIGKILL" in dead["error"]
    assert alive["status"] == "ok" and alive["n_generated"] > 0


def test_route_says_what_and_why():
    math_question = fastslow("route", "Tom has 3 boxes of 12 pens and gives away 7. How many pens are left?")
    assert math_question.returncode == 0
    assert math_question.stdout.startswith("think (budget ") and "confidence" in math_question.stdout
    lookup = fastslow("route", "What is the capital of France?", "--json")
    decision = json.loads(lookup.stdout)
    assert decision["route"] == "direct" and "a factual lookup" in decision["reasons"]
    assert fastslow("route", " ").returncode == 2
    trained = fastslow("route", "Write a Python function that merges two sorted lists.", "--router", "classifier")
    assert trained.returncode == 0 and trained.stdout.startswith("think (budget ") and "code" in trained.stdout
    assert fastslow("route", "hi", "--router", "oracle").returncode == 2


def test_auto_mode_applies_and_records_the_routers_decision():
    out = fastslow("compare", "What is the capital of France?", "-m", "smollm2-135m", "--auto", "--json", *SHORT)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["router"]["route"] == "direct" and record["router"]["reasons"]
    assert record["thinking_budget"] is None


def test_compare_writes_every_run_to_the_session_log(tmp_path):
    db = tmp_path / "log.db"
    out = fastslow("compare", "Say hi.", "--db", str(db), *SHORT)
    assert out.returncode == 0, out.stderr
    listing = fastslow("log", "list", "--db", str(db))
    assert listing.returncode == 0, listing.stderr
    assert "smollm2-135m" in listing.stdout and "gemma3-270m" in listing.stdout
    exported = tmp_path / "runs.jsonl"
    assert fastslow("log", "export", "--db", str(db), "--format", "jsonl", "--output", str(exported)).returncode == 0
    runs = [json.loads(line)["run"] for line in exported.read_text().splitlines()]
    assert sorted(r["model"] for r in runs) == ["gemma3-270m", "smollm2-135m"]
    assert [r["status"] for r in runs] == ["ok", "ok"]
    assert all(r["n_generated"] == 6 and r["energy_source"] and r["mode"] == "fair" for r in runs)


def test_an_unusable_log_warns_and_the_comparison_still_runs(tmp_path):
    folder = tmp_path / "not-a-file.db"
    folder.mkdir()
    out = fastslow("compare", "Say hi.", "-m", "smollm2-135m", "--db", str(folder), "--json", *SHORT)
    assert out.returncode == 0
    assert "runs are kept in memory only" in out.stderr
    assert json.loads(out.stdout)["status"] == "ok"


def test_the_table_says_what_the_thought_limits_did():
    from app.cli import format_table
    from app.runs import RunResult

    forced = RunResult.of(pane=0, model="r1", mode="fair", status="ok", thinking_style="think-tags",
                       thinking_extended=2, thinking_budget_hit=True)
    free = RunResult.of(pane=1, model="fast", mode="fair", status="ok")
    table = format_table([forced, free])
    assert "[1] r1: thought held open 2× with Wait · closed by its budget" in table
    assert "[2] fast" not in table


def test_compare_says_when_energy_could_be_measured_and_why_it_is_estimated(tmp_path):
    # A machine with NVIDIA's driver (its nvidia-smi on the PATH) but without nvidia-ml-py.
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\n")
    (tmp_path / "nvidia-smi").chmod(0o755)
    code = ("import sys; sys.modules['pynvml'] = None\n"
            "from app.cli import main\n"
            "sys.exit(main(sys.argv[1:]))")
    out = subprocess.run(
        [sys.executable, "-c", code, "compare", "Hi", "-m", "smollm2-135m", "--no-log", *SHORT],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"},
    )
    assert out.returncode == 0, out.stderr
    assert ("fastslow: note: energy could be measured, not estimated — nvml: nvidia-ml-py is not installed "
            "(pip install nvidia-ml-py)") in out.stderr
    if "energy: estimated:tdp" in out.stdout:  # no readable CPU counter here: the table says why
        assert "  estimated, not measured: " in out.stdout


def test_self_test_passes_here_and_checks_the_runs_energy_and_its_sources():
    out = fastslow("self-test")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    energy = next(line for line in lines if "measure the run's energy" in line)
    assert energy.startswith("ok   ") and " J (" in energy and "sources: " in energy
    assert lines[-1] == "self-test passed"


def test_compare_warns_when_a_power_source_is_lost_and_the_figure_says_so(monkeypatch, capsys):
    import app.session
    from app.cli import main
    from tests.telemetry.test_nvml import with_a_gpu_that_will_be_lost

    from app.record import Conditions

    monkeypatch.setattr(app.session, "detect_sources", with_a_gpu_that_will_be_lost)
    # Charged the GPU as a run with offloaded layers is (this machine's CPU build offloads none).
    monkeypatch.setattr(Conditions, "energy_domains", property(lambda self: ("cpu", "dram", "gpu")))
    assert main(["compare", "Hi", "-m", "smollm2-135m", "--no-log", "--json", *SHORT]) == 0
    out = capsys.readouterr()
    lost = "nvml:0 stopped answering: GPU is lost — energy leaves it out from then on"
    assert f"fastslow: warning: {lost}" in out.err
    record = json.loads(out.out)
    assert record["energy_approximate"] and lost in record["energy_detail"]["notes"]


def test_a_lost_gpu_is_said_but_does_not_mark_a_cpu_runs_figure(monkeypatch, capsys):
    import app.session
    from app.cli import main
    from tests.telemetry.test_nvml import with_a_gpu_that_will_be_lost

    monkeypatch.setattr(app.session, "detect_sources", with_a_gpu_that_will_be_lost)
    assert main(["compare", "Hi", "-m", "smollm2-135m", "--no-log", "--json", *SHORT]) == 0
    out = capsys.readouterr()
    assert "fastslow: warning: nvml:0 stopped answering: GPU is lost" in out.err  # said, all the same
    record = json.loads(out.out)
    assert not any("GPU is lost" in note for note in record["energy_detail"]["notes"])  # its figure: untouched
    assert "gpu" not in record["energy_detail"]["covers"]


def test_compare_says_a_run_was_on_battery_and_what_that_means(monkeypatch, capsys):
    import collections

    import psutil

    from app.cli import main

    # A laptop unplugged at 41% (the OS's battery reading, stood in for: this machine has none).
    battery = collections.namedtuple("sbattery", "percent secsleft power_plugged")(41.0, 3600, False)
    monkeypatch.setattr(psutil, "sensors_battery", lambda: battery)
    assert main(["compare", "Hi", "-m", "smollm2-135m", "--no-log", *SHORT]) == 0
    assert ("Ran on battery (41%): a laptop runs slower and draws less on battery; plug in for numbers "
            "comparable with runs on mains.") in capsys.readouterr().out


def _streamed_text(stdout: str, tag: str) -> tuple[str, str]:
    """(thinking, answer) as `compare --live` printed them for one pane: its tagged lines put back
    together, split where the printer marked "[thinking] " and "[answer] "."""
    lines = [line[len(tag) + 1:] for line in stdout.splitlines() if line.startswith(tag + " ")]
    lines = [line for line in lines if not line.startswith(("no answer: ", "error: "))]
    text = "\n".join(lines)
    thinking, _, answer = text.partition("\n[answer] ") if text.startswith("[thinking] ") else ("", "", text)
    return thinking.removeprefix("[thinking] "), answer.removeprefix("[answer] ")


def test_compare_live_prints_exactly_the_text_it_stores(tmp_path):
    # Two panes at once, one thinking (scaffolded): their lines interleave, and each pane's text
    # put back together is the stored run's, character for character.
    from app.store import SessionLog

    db = tmp_path / "log.db"
    prompt = "Tom has 3 boxes with 12 apples each. He gives away 7 apples. How many apples are left?"
    out = fastslow("compare", prompt, "-m", "smollm2-135m", "-m", "smollm2-135m", "--live", "--think",
                   "--thinking-budget", "32", "--max-tokens", "64", "--temperature", "0", "--db", str(db))
    assert out.returncode == 0, out.stderr
    with SessionLog.open(db) as log:
        runs = {r["run"]["pane"]: r["run"] for r in log.records()}
    for pane, run in runs.items():
        thinking, answer = _streamed_text(out.stdout[: out.stdout.index("#  model")], f"[{pane + 1} smollm2-135m]")
        assert thinking == run["thinking"] and run["thinking"]
        assert answer.rstrip("\n") == run["text"].rstrip("\n")  # a final newline has no line of its own


def test_demo_compares_the_bundled_model_answering_directly_and_thinking(tmp_path):
    out = fastslow("demo", timeout=400)
    assert out.returncode == 0, out.stderr
    assert "── [1 smollm2-135m direct]" in out.stdout and "── [2 smollm2-135m thinking]" in out.stdout
    assert "gemma" not in out.stdout
    verdict = next(line for line in out.stdout.splitlines() if line.startswith("Verdict: "))
    assert "the time" in verdict and "known answer: 6:15 pm" in verdict


def test_a_thinking_budget_that_leaves_no_room_to_answer_is_refused():
    out = fastslow("compare", "Hi", "--thinking-budget", "300", "--max-tokens", "256")
    assert out.returncode == 2
    assert "thinking budget (300 tokens) leaves no room for the answer within --max-tokens (256)" in out.stderr


def test_a_run_without_an_answer_says_why_and_the_known_answer_marks_each_run(tmp_path):
    # Thinking with no budget and 24 tokens: the scaffolded thought runs out of tokens first.
    out = fastslow("compare", "Tom has 3 boxes with 12 apples each. How many apples?", "-m", "smollm2-135m",
                   "--think", "--max-tokens", "24", "--temperature", "0", "--answer", "36",
                   "--db", str(tmp_path / "log.db"))
    assert out.returncode == 0, out.stderr
    said = "no answer: it thought until max tokens (24) ran out and never answered"
    assert said in out.stdout  # under its streamed text, and again in the table's notes
    assert "[1] smollm2-135m: wrong" in out.stdout


# -- the issue "Nothing lost, nothing let in": text that is not UTF-8, numbers out of bounds ------

def _fastslow_bytes(*args, stdin: bytes | None = None):
    """fastslow with arguments and standard input as raw bytes, as a shell can hand them over."""
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, input=stdin,
                          timeout=240, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_a_prompt_on_standard_input_that_is_not_utf8_is_refused_before_anything_runs(tmp_path):
    # printf 'hello \xff\xfe' | fastslow compare - …
    db = tmp_path / "log.db"
    out = _fastslow_bytes("compare", "-", "-m", "smollm2-135m", "--db", str(db), stdin=b"hello \xff\xfe")
    assert out.returncode == 2
    assert out.stderr.decode() == ("fastslow: the prompt on standard input is not valid UTF-8: the byte at offset 6 "
                                   "(0xff) cannot be read as text; give it in UTF-8\n")
    assert b"loading" not in out.stdout
    assert not db.exists()  # no session row, empty or not


def test_a_prompt_on_standard_input_is_read_as_utf8_whatever_the_locale():
    out = _fastslow_bytes("compare", "-", "-m", "smollm2-135m", "--json", "--no-log", *SHORT,
                          stdin="Réponds « oui » ✓".encode())
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "ok"


@pytest.mark.skipif(os.name != "posix", reason="argv as raw bytes is a POSIX thing")
def test_a_prompt_argument_that_is_not_utf8_is_refused_before_anything_runs(tmp_path):
    # Python hands undecodable argv bytes over as lone surrogates (surrogateescape).
    db = tmp_path / "log.db"
    out = _fastslow_bytes("compare", b"hi \xc3\x28 there", "-m", "smollm2-135m", "--db", str(db))
    assert out.returncode == 2
    assert out.stderr.decode() == ("fastslow: the prompt is not valid UTF-8: the byte at offset 3 (0xc3) cannot be "
                                   "read as text; give it in UTF-8\n")
    assert not db.exists()
    system = _fastslow_bytes("compare", "Hi", "--system", b"\xff be brief", "--db", str(db))
    assert system.returncode == 2 and b"the --system text is not valid UTF-8: the byte at offset 0 (0xff)" in system.stderr
    assert not db.exists()


def test_a_prompt_with_a_lone_surrogate_is_refused_in_process(tmp_path, capsys):
    from app.cli import main

    db = tmp_path / "log.db"
    assert main(["compare", "hi \ud800", "-m", "smollm2-135m", "--db", str(db)]) == 2
    assert capsys.readouterr().err == ("fastslow: the prompt is not valid UTF-8: the byte at offset 3 (0xed) cannot "
                                       "be read as text; give it in UTF-8\n")
    assert main(["compare", "Hi", "--answer", "6\udcff", "--db", str(db)]) == 2
    assert "the --answer text is not valid UTF-8: the byte at offset 1 (0xff)" in capsys.readouterr().err
    assert not db.exists()


@pytest.mark.parametrize("flag, value, words", [
    ("--tdp", "-5", "argument --tdp: must be a finite number of watts from 1 to 2000, not -5"),
    ("--tdp", "nan", "argument --tdp: must be a finite number of watts from 1 to 2000, not nan"),
    ("--temperature", "inf", "argument --temperature: must be a finite number from 0 to 5, not inf"),
    ("--threads", "1000", "argument --threads: must be from 1 to "),
    ("--gpu-layers", "-5", "argument --gpu-layers: must be auto, -1 (all layers) or from 0 to 1000, not -5"),
])
def test_a_number_out_of_bounds_is_one_sentence_and_exit_2_before_loading(tmp_path, flag, value, words):
    db = tmp_path / "log.db"
    out = fastslow("compare", "Hi", "-m", "smollm2-135m", "--db", str(db), flag, value)
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1].startswith("fastslow compare: error: ") and words in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == "" and not db.exists()


def test_a_gguf_of_an_architecture_llama_cpp_cannot_run_is_bad_input_with_exit_2(tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "unknown.gguf"
    writer = gguf.GGUFWriter(str(path), "notamodel")  # a well-formed file: only llama.cpp can say no
    writer.add_block_count(2)
    writer.add_context_length(256)
    writer.add_embedding_length(32)
    writer.add_head_count(4)
    writer.add_token_list(["<s>", "</s>", "hello"])
    writer.add_tensor("first.weight", np.ones((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    out = fastslow("compare", "Hi", "-m", str(path), "--no-log", *SHORT)
    assert out.returncode == 2, out.stderr
    assert "is a 'notamodel' model, an architecture this llama.cpp" in out.stdout
