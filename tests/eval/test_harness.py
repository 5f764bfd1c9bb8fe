"""`fastslow eval` end to end on the bundled model: the machinery, not the (tiny) score."""

import json
import subprocess
import sys

import pytest

from app.eval.harness import Sample, parse_policies, plan, summarise

pytestmark = pytest.mark.model  # runs the command or the app on a model (not in `make check`)


def fastslow(*args):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=300)


def test_eval_runs_policies_and_writes_samples_and_summary(tmp_path):
    out = fastslow("eval", "--limit", "2", "--policies", "direct,heuristic", "--max-tokens", "24",
                   "--output", str(tmp_path), "-m", "smollm2-135m", "--db", str(tmp_path / "log.db"))
    assert out.returncode == 0, out.stderr
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [(s["problem_id"], s["policy"]) for s in samples] == [
        ("test_dev:1", "direct"), ("test_dev:1", "heuristic"), ("test_dev:2", "direct"), ("test_dev:2", "heuristic"),
    ]
    assert all(s["status"] == "ok" and s["n_thinking_tokens"] + s["n_answer_tokens"] > 0 for s in samples)
    direct = [s for s in samples if s["policy"] == "direct"]
    routed = [s for s in samples if s["policy"] == "heuristic"]
    assert all(s["n_thinking_tokens"] == 0 and s["strategy"] == "native" for s in direct)
    # GSM8K is math: the router thinks, and SmolLM2, which cannot think natively, is scaffolded.
    assert all(s["route"] == "think" and s["strategy"] == "scaffold" for s in routed)
    assert all(s["n_thinking_tokens"] > 0 for s in routed)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["policy"] for s in summary] == ["direct", "heuristic"]
    assert summary[1]["think_share"] == 1.0 and summary[0]["think_share"] == 0.0
    assert "accuracy" in out.stdout and "to thinking" in out.stdout and "Pareto front" in out.stdout
    assert (tmp_path / "tradeoff.png").read_bytes().startswith(b"\x89PNG")
    # Energy per sample and per policy, never without its source.
    assert all(s["energy_j"] > 0 and s["energy_source"].split(":")[0] in ("measured", "estimated") for s in samples)
    assert all(p["mean_energy_j"] > 0 and p["energy_source"] for p in summary)
    assert "energy per question: " in out.stdout
    # Every generation is in the session log, with the policy's route and reasons.
    from app.store import SessionLog

    with SessionLog.open(tmp_path / "log.db") as log:
        records = list(log.records())
    assert len(records) == 4 and {r["run"]["status"] for r in records} == {"ok"}
    assert [r["run"]["route"] for r in records] == ["direct", "think", "direct", "think"]
    assert records[0]["run"]["route_reasons"] == ["policy direct"]
    assert all(r["prompt"]["text"].endswith("The answer is <number>.") for r in records)  # the suite's question


@pytest.mark.parametrize(
    "args, words",
    [
        (["--policies", "direct,oracle"], "unknown policy oracle"),
        (["--policies", ","], "unknown policy (none given)"),
        (["--suite", "mmlu"], "known suites are gsm8k"),
        (["--min-thinking", "64", "--thinking-budget", "32"], "--min-thinking 64 is longer than --thinking-budget 32"),
    ],
)
def test_bad_eval_options_exit_2_with_a_clear_line(args, words):
    out = fastslow("eval", *args)
    assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr


def test_empty_and_malformed_suite_files_exit_2(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": \n')
    assert "has no problems" in fastslow("eval", "--suite-file", str(empty)).stderr
    out = fastslow("eval", "--suite-file", str(broken))
    assert out.returncode == 2 and "broken.jsonl, line 2 is not valid JSON" in out.stderr


def test_plan_per_policy():
    assert plan("direct", "What is 2+2?", 64)[0] == "direct"
    route, reasons, request = plan("think", "What is 2+2?", 64, budget=32)
    assert route == "think" and request.thinking and request.thinking_budget == 32
    assert not request.cache_prompt and request.sampling.temperature == 0.0
    assert plan("heuristic", "Tom has 3 bags of 12 apples and eats 5. How many are left?", 64)[0] == "think"
    route, reasons, request = plan("classifier", "Tom has 3 bags of 12 apples and eats 5. How many are left?", 64)
    assert route == "think" and request.thinking and request.thinking_budget and reasons
    assert plan("classifier", "What is the capital of Peru?", 64)[0] == "direct"
    assert parse_policies("direct, think") == ["direct", "think"]


def test_a_minimum_thought_goes_with_thinking_requests_and_never_past_their_budget():
    route, _, request = plan("think", "What is 2+2?", 64, budget=32, minimum=16)
    assert (request.thinking_budget, request.thinking_min) == (32, 16)
    assert plan("direct", "What is 2+2?", 64, minimum=16)[2].thinking_min is None
    routed = plan("heuristic", "Tom has 3 bags of 12 apples and eats 5. How many are left?", 64, minimum=5000)[2]
    assert routed.thinking_min == routed.thinking_budget  # the router chose less than the minimum


def test_summary_counts_unparsed_and_failed():
    def sample(policy, predicted, correct, status="ok"):
        return Sample("p", policy, "m", "direct", "native", [], "1", predicted, correct, status, None, "none",
                      0, 5, False, 1.0, 0.1, "", energy_j=2.0 if predicted else None, energy_source="estimated:tdp")
    [s] = summarise([sample("direct", "1", True), sample("direct", None, False), sample("direct", None, False, "failed")])
    assert (s.n, s.accuracy, s.failed, s.unparsed) == (3, 1 / 3, 1, 1)
    assert (s.mean_energy_j, s.energy_source) == (2.0, "estimated:tdp")  # over the samples with a figure


def test_cascade_and_self_consistency_keep_every_generation(tmp_path):
    out = fastslow("eval", "--limit", "1", "--policies", "cascade,self-consistency", "--k", "2",
                   "--max-tokens", "16", "--output", str(tmp_path), "-m", "smollm2-135m")
    assert out.returncode == 0, out.stderr
    cascade, consistency = (json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines())
    assert cascade["n_generations"] in (2, 3)
    assert cascade["reasons"][0].startswith("two direct samples agree") == (cascade["n_generations"] == 2)
    assert consistency["n_generations"] == 2 and consistency["route"] == "think"
    assert "of 2 samples agree" in consistency["reasons"][0] or "no readable answer" in consistency["reasons"][0]


def test_k_of_zero_is_refused():
    out = fastslow("eval", "--k", "0")
    assert out.returncode == 2 and "must be a positive number" in out.stderr


def test_cascade_on_logprobs_escalates_only_when_the_direct_answer_is_unsure(tmp_path):
    # Threshold 0: any direct answer is sure enough; threshold 1: none is, so it always thinks.
    for threshold, generations, route in (("0", 1, "direct"), ("1", 2, "think")):
        out = fastslow("eval", "--limit", "1", "--policies", "cascade-logprob", "--max-tokens", "12",
                       "--cascade-threshold", threshold, "--output", str(tmp_path / threshold), "-m", "smollm2-135m")
        assert out.returncode == 0, out.stderr
        [sample] = [json.loads(line) for line in (tmp_path / threshold / "samples.jsonl").read_text().splitlines()]
        assert sample["n_generations"] == generations and sample["route"] == route
        assert "mean token probability is 0." in sample["reasons"][0]
    assert fastslow("eval", "--cascade-threshold", "1.5").returncode == 2


def test_eval_with_a_minimum_thought_forces_it_and_counts_the_waits(smollm2_spec):
    import dataclasses

    from app.eval.harness import run_eval
    from app.eval.suites import load_suite, suite_path
    from app.session import Session
    from tests.engines.test_thinking_budget import THINKING_TEMPLATE

    spec = dataclasses.replace(smollm2_spec, chat_template=THINKING_TEMPLATE, thinking="think-tags")
    problem = load_suite(suite_path("gsm8k"), limit=2)[1:]  # left alone, SmolLM2 ends its turn mid-thought here
    with Session([spec]) as session:
        session.load()
        free, forced = (run_eval(session, problem, ["think"], 160, minimum=minimum)[0] for minimum in (None, 150))
    assert free.thinking_extended == 0 and free.n_thinking_tokens < 150
    assert forced.status == "ok" and forced.thinking_extended >= 1
    assert forced.n_thinking_tokens > free.n_thinking_tokens


# -- the issue "Nothing lost, nothing let in": results are never made only to be lost ---------------

def test_an_output_that_is_a_file_is_refused_before_the_model_loads(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("mine")
    out = fastslow("eval", "--limit", "1", "--policies", "direct", "-m", "smollm2-135m", "--output", str(blocker),
                   "--db", str(tmp_path / "log.db"))
    assert out.returncode == 2
    assert out.stderr == f"fastslow: --output {blocker} is a file, not a folder: choose a folder for the results\n"
    assert out.stdout == "" and not (tmp_path / "log.db").exists()  # nothing loaded, nothing ran
    assert blocker.read_text() == "mine"


def test_an_output_that_cannot_be_created_is_refused_before_the_model_loads(tmp_path):
    out = fastslow("eval", "--limit", "1", "--policies", "direct", "-m", "smollm2-135m",
                   "--output", "/proc/self/fastslow-results", "--db", str(tmp_path / "log.db"))
    assert out.returncode == 2
    assert out.stderr.startswith("fastslow: --output /proc/self/fastslow-results cannot be created (")
    assert out.stderr.endswith("): choose a folder you can write to\n") and out.stdout == ""


def test_an_output_folder_that_cannot_be_written_is_refused_before_the_model_loads(tmp_path, monkeypatch, capsys):
    import errno
    import os

    import app.cli
    import app.session

    def read_only(folder):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))

    def never(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(app.cli, "_write_probe", read_only)
    monkeypatch.setattr(app.session.Session, "load", never)
    assert app.cli.main(["eval", "--limit", "1", "--output", str(tmp_path), "--db", str(tmp_path / "log.db")]) == 2
    assert capsys.readouterr().err == (f"fastslow: --output {tmp_path} cannot be written to "
                                       f"({os.strerror(errno.EROFS)}): choose a folder you can write to\n")


def test_a_read_only_samples_file_is_refused_before_the_model_loads():
    # As an unprivileged user meets it, even when the tests run as root (root writes through it).
    import contextlib
    import io
    import os
    import tempfile

    import app.eval.harness  # noqa: F401 — what `eval` imports, before the child that may not (unprivileged.py)
    from app.cli import main
    from unprivileged import as_nobody

    def refused(output: str) -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["eval", "--limit", "1", "--output", output, "--no-log"])
        return code, err.getvalue()

    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)  # a folder the unprivileged child may write in; only the file is read-only
        samples = os.path.join(tmp, "samples.jsonl")
        with open(samples, "w") as handle:
            handle.write("{}\n")
        os.chmod(samples, 0o444)
        code, err = as_nobody(lambda: refused(tmp))
    assert code == 2 and "cannot be written to (it is read-only)" in err, err


def test_a_crash_mid_eval_keeps_every_sample_that_ran(tmp_path):
    import os
    import signal

    child = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "eval", "--limit", "5", "--policies", "direct", "--max-tokens", "24",
         "-m", "smollm2-135m", "--output", str(tmp_path), "--no-log"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    shown = []
    for line in child.stdout:
        if line.startswith("  test_dev:"):
            shown.append(line.split()[0])
            if len(shown) == 2:
                child.send_signal(signal.SIGKILL)  # no cleanup at all: what is in the file is what was flushed
                break
    child.wait()
    child.stdout.close()
    assert len(shown) == 2, "the eval never produced two samples"
    kept = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [s["problem_id"] for s in kept][:2] == shown and all(s["status"] == "ok" for s in kept)


def test_the_sample_file_holds_each_sample_as_soon_as_it_is_written(tmp_path):
    from app.eval.harness import SampleFile

    first = Sample("p1", "direct", "m", "direct", "native", [], "1", "1", True, "ok", None, "none",
                   0, 5, False, 1.0, 0.1, "The answer is 1.")
    with SampleFile(tmp_path / "samples.jsonl") as samples:
        samples.write(first)
        assert json.loads((tmp_path / "samples.jsonl").read_text()) == first.to_dict()  # before close


def test_self_consistency_decodes_its_k_samples_together_and_logs_each(tmp_path):
    # One request of k samples: the prompt once, the samples in one batch; each is a run of its own in
    # the log, its time and energy shares of the batch's, so the question costs the batch once.
    from app.store import SessionLog

    db = tmp_path / "log.db"
    out = fastslow("eval", "--limit", "1", "--policies", "self-consistency", "--k", "4", "--max-tokens", "24",
                   "--output", str(tmp_path / "out"), "-m", "smollm2-135m", "--db", str(db))
    assert out.returncode == 0, out.stderr
    [sample] = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    with SessionLog.open(db, read_only=True) as log:
        runs = [log.get_run(r.id) for r in log.list_runs()]
    assert sorted(r.conditions.sample for r in runs) == [0, 1, 2, 3]
    assert {r.conditions.n_samples for r in runs} == {4} and len({r.thinking + r.text for r in runs}) >= 2
    assert all("shared by tokens with the 4 samples decoded together" in r.energy_source for r in runs)
    assert sample["n_generations"] == 4
    assert sample["latency_s"] == pytest.approx(max(r.total_s for r in runs))  # the batch's time, once
    assert sample["energy_j"] == pytest.approx(sum(r.energy_j for r in runs))


def test_auto_routes_each_question_by_the_models_record_of_the_other_questions(tmp_path):
    # direct and think first for every question, then auto: the first question has no other checked
    # question yet (the prompt decides); the later ones know SmolLM2's record of those before them.
    suite = tmp_path / "shop.jsonl"
    suite.write_text("".join(json.dumps({"question": f"A shop sells {n} boxes of {n + 4} pens each and then "
                                                     f"sells {n} more pens. How many pens did it sell in total?",
                                         "answer": f"#### {n * (n + 4) + n}"}) + "\n" for n in (3, 5, 7)))
    out = fastslow("eval", "--suite-file", str(suite), "--policies", "direct,think,auto", "--max-tokens", "32",
                   "--output", str(tmp_path / "out"), "-m", "smollm2-135m", "--db", str(tmp_path / "log.db"))
    assert out.returncode == 0, out.stderr
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    auto = [s for s in samples if s["policy"] == "auto"]
    assert len(auto) == 3
    assert auto[0]["reasons"][0] == ("no checked multi-step arithmetic question of smollm2-135m answered both ways "
                                     "yet: the prompt alone decides")
    for n, sample in enumerate(auto[1:], start=1):  # only the questions before it: never its own runs
        assert sample["reasons"][0].endswith(f" of {n} checked multi-step arithmetic question{'s' * (n > 1)} here")
