"""`fastslow scale` end to end on the bundled model: the machinery, not the (tiny) score."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.model  # runs the command or the app on a model (not in `make check`)

SMALL = ["--limit", "1", "--answer-tokens", "6", "--no-log"]


def fastslow(*args):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=600)


def stored(folder):
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


def test_a_sweep_writes_samples_points_charts_and_a_reading_and_resumes_where_it_stopped(tmp_path):
    args = ["scale", *SMALL, "--budgets", "0,8", "--k", "1,2", "--verifiers", "oracle,majority,program,self",
            "--output", str(tmp_path)]
    first = fastslow(*args)
    assert first.returncode == 0, first.stderr
    generations = stored(tmp_path)
    kinds = [g["kind"] for g in generations]
    assert kinds.count("budget") == 2 and kinds.count("sample") == 2 and kinds.count("judge") <= 1
    assert all(g["energy_source"].split(":")[0] in ("measured", "estimated") for g in generations)
    points = json.loads((tmp_path / "points.json").read_text())
    assert {(p["axis"], p["x"], p["verifier"]) for p in points} == {
        ("budget", 0, "greedy"), ("budget", 8, "greedy"),
        *{("k", k, v) for k in (1, 2) for v in ("oracle", "majority", "program", "self")},
    }
    assert all(0 <= p["ci_low"] <= p["accuracy"] <= p["ci_high"] <= 1 and p["n"] == 1 for p in points)
    budget8 = next(p for p in points if p["axis"] == "budget" and p["x"] == 8)
    assert budget8["mean_thinking_tokens"] > 0  # asked to think (scaffolded on SmolLM2), it did
    for chart in ("accuracy_vs_tokens.png", "accuracy_vs_energy.png", "verifiers.png"):
        assert (tmp_path / chart).read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "reading.txt").read_text().startswith("smollm2-135m ")
    assert "accuracy" in first.stdout and "95% CI" in first.stdout

    # Stopped mid-way: two generations kept, the third cut mid-line. The rerun does only the rest.
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    (tmp_path / "samples.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])
    second = fastslow(*args)
    assert second.returncode == 0, second.stderr
    assert "resuming: 2 generations already" in second.stdout
    assert f"{len(generations) - 2} generated now" in second.stdout
    keys = lambda gens: sorted((g["kind"], g["problem_id"], g["budget"], g["seed"], g["k"]) for g in gens)  # noqa: E731
    assert keys(g for g in stored(tmp_path) if g.get("kind")) == keys(generations)


def test_k_values_share_one_set_of_samples(tmp_path):
    out = fastslow("scale", *SMALL, "--answer-tokens", "4", "--budgets", "0", "--k", "1,2,4,8,16",
                   "--verifiers", "oracle,majority", "--output", str(tmp_path))
    assert out.returncode == 0, out.stderr
    samples = [g for g in stored(tmp_path) if g["kind"] == "sample"]
    assert len(samples) == 16  # the largest k once, not 1 + 2 + 4 + 8 + 16 = 31
    assert sorted(g["seed"] for g in samples) == list(range(16))  # fixed seeds
    assert "17 generated now" in out.stdout  # and one greedy answer at budget 0


@pytest.mark.parametrize(
    "args, words",
    [
        (["--budgets", ""], "give at least one value for budgets"),
        (["--budgets", "0,-64"], "budgets must be from 0 to 262144"),
        (["--budgets", "0,many"], "whole numbers separated by commas"),
        (["--k", "0"], "k must be from 1 to 256"),
        (["--verifiers", "oracle,psychic"], "unknown verifier psychic"),
    ],
)
def test_bad_sweeps_are_refused_with_a_clear_line(args, words, tmp_path):
    out = fastslow("scale", *SMALL, "--output", str(tmp_path), *args)
    assert out.returncode == 2 and words in out.stderr, out.stderr
    assert not (tmp_path / "samples.jsonl").exists()


def test_a_suite_file_with_no_answers_is_refused(tmp_path):
    suite = tmp_path / "no-answers.jsonl"
    suite.write_text('{"question": "What is 2 + 2?", "answer": "four, I think"}\n')
    out = fastslow("scale", *SMALL, "--suite-file", str(suite), "--output", str(tmp_path / "out"))
    assert out.returncode == 2 and "has no number to score against" in out.stderr


def test_a_session_log_that_fails_mid_sweep_is_reported_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    from app import cli
    from app.store import SessionLog, StoreError

    class FullDisk(SessionLog):
        def start_run(self, *args, **kwargs):
            raise StoreError("the disk holding the log is full", kind="full")

    monkeypatch.setattr(cli, "open_log", lambda db: (FullDisk.open(tmp_path / "log.db"), None))
    args = [a for a in SMALL if a != "--no-log"]
    assert cli.main(["scale", *args, "--budgets", "0", "--k", "1", "--output", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "the session log failed: the disk holding the log is full" in err and "unlogged" in err
    assert [s["kind"] for s in stored(tmp_path / "out")] == ["budget", "sample"]  # nothing lost


def test_eval_closes_its_session_log_when_the_model_fails_to_load(tmp_path, monkeypatch, capsys):
    from app import cli
    from app.store import SessionLog

    closed = []

    class Watched(SessionLog):
        def close(self):
            closed.append(True)
            super().close()

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model" * 100)
    monkeypatch.setattr(cli, "open_log", lambda db: (Watched.open(tmp_path / "log.db"), None))
    code = cli.main(["eval", "--limit", "1", "-m", str(broken), "--output", str(tmp_path / "out")])
    assert code != 0 and "GGUF" in capsys.readouterr().err
    assert closed == [True]


def test_budget_forcing_holds_each_thought_to_its_budget_and_is_an_experiment_of_its_own(tmp_path, smollm2_spec):
    import dataclasses

    from app.engines.thinking_budget import MAX_EXTENSIONS
    from app.eval.suites import load_suite, suite_path
    from app.scaling.sweep import SampleStore, SweepConfig, generation_key, sweep_model
    from tests.engines.test_thinking_budget import THINKING_TEMPLATE

    spec = dataclasses.replace(smollm2_spec, chat_template=THINKING_TEMPLATE, thinking="think-tags")
    problems = load_suite(suite_path("gsm8k"), limit=1)
    store = SampleStore.open(tmp_path / "samples.jsonl")
    for force in (True, False):
        swept = sweep_model(spec, problems, SweepConfig(budgets=(0, 96), ks=(), max_answer_tokens=8,
                                                        force_budget=force), store)
        assert swept.ran == 2  # forced and free generations are stored apart, never mistaken on resume
    forced, free = (store.done[generation_key("budget", swept.label, problems[0].id, 96, 0, 0, force)]
                    for force in (True, False))
    assert forced.forced and (forced.n_thinking_tokens == 96 or forced.thinking_extended == MAX_EXTENSIONS)
    assert not free.forced and free.thinking_extended == 0 and free.n_thinking_tokens <= 96
    assert [p.x for p in swept.points] == [0, 96]


def test_a_problems_samples_are_one_batch_and_a_resume_asks_only_for_the_missing(tmp_path, smollm2_spec):
    from app.eval.suites import load_suite, suite_path
    from app.scaling.sweep import SampleStore, SweepConfig, sweep_model
    from app.store import MemoryLog

    problems = load_suite(suite_path("gsm8k"), limit=1)
    config = SweepConfig(budgets=(), ks=(1, 2, 4), k_budget=0, max_answer_tokens=16)
    path, log = tmp_path / "samples.jsonl", MemoryLog.open()
    swept = sweep_model(smollm2_spec, problems, config, SampleStore.open(path), log=log)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert swept.ran == 4 and [g["seed"] for g in lines] == [0, 1, 2, 3]
    runs = log.list_runs()
    assert sorted(r.total_s is not None for r in runs) == [True] * 4
    # Each sample's time is its share of the batch's, by tokens: together, the batch's time once.
    assert sum(g["latency_s"] for g in lines) == pytest.approx(max(r.total_s for r in runs))
    path.write_text("".join(json.dumps(g) + "\n" for g in lines[:2]))  # samples 2 and 3 lost
    again = sweep_model(smollm2_spec, problems, config, SampleStore.open(path))
    assert again.ran == 2
    assert [json.loads(line)["seed"] for line in path.read_text().splitlines()] == [0, 1, 2, 3]


def test_a_problems_greedy_answers_at_its_thinking_budgets_are_one_batch_each_held_to_its_own(tmp_path, smollm2_spec):
    from app.eval.suites import load_suite, suite_path
    from app.scaling.sweep import SampleStore, SweepConfig, sweep_model
    from app.store import MemoryLog

    problems = load_suite(suite_path("gsm8k"), limit=1)
    config = SweepConfig(budgets=(0, 16, 48), ks=(), max_answer_tokens=12)
    path, log = tmp_path / "samples.jsonl", MemoryLog.open()
    assert sweep_model(smollm2_spec, problems, config, SampleStore.open(path), log=log).ran == 3
    gens = {g["budget"]: g for g in map(json.loads, path.read_text().splitlines())}
    assert gens[0]["n_thinking_tokens"] == 0
    for budget in (16, 48):  # each sample's thought held to its own budget (and its answer room after)
        assert 0 < gens[budget]["n_thinking_tokens"] <= budget
        assert gens[budget]["n_thinking_tokens"] + gens[budget]["n_answer_tokens"] <= budget + 12 + 20
    runs = [log.get_run(r.id) for r in log.list_runs()]
    batched = sorted((r.conditions.n_samples, r.thought.thinking_budget) for r in runs)
    assert batched == [(1, None), (2, 16), (2, 48)]  # the direct answer alone, the two thoughts together
    lines = path.read_text().splitlines()
    path.write_text("".join(line + "\n" for line in lines if json.loads(line)["budget"] != 48))
    assert sweep_model(smollm2_spec, problems, config, SampleStore.open(path)).ran == 1  # the lost one alone


def test_the_samples_and_the_greedy_answers_at_the_budgets_share_one_batch(tmp_path, smollm2_spec):
    from app.eval.suites import load_suite, suite_path
    from app.scaling.sweep import SampleStore, SweepConfig, sweep_model
    from app.store import MemoryLog

    problems = load_suite(suite_path("gsm8k"), limit=1)
    config = SweepConfig(budgets=(0, 16), ks=(1, 2), k_budget=24, max_answer_tokens=8)
    log = MemoryLog.open()
    assert sweep_model(smollm2_spec, problems, config, SampleStore.open(tmp_path / "s.jsonl"), log=log).ran == 4
    runs = [log.run_record(r.id)["run"] for r in log.list_runs()]
    together = sorted((r["sample"], r["params"]["sampling"]["temperature"], r["params"]["seed"], r["thinking_budget"])
                      for r in runs if r["n_samples"] == 3)
    assert together == [(0, 0.7, 0, 24), (1, 0.7, 1, 24), (2, 0.0, 2, 16)]  # two samples, then the greedy one
    assert [r["n_samples"] for r in runs if r["thinking_budget"] is None] == [1]  # the direct answer alone


def test_a_sweeps_answers_are_marked_in_the_log_as_the_models_record_and_its_judgements_are_not(tmp_path):
    db = tmp_path / "log.db"
    ran = fastslow("scale", "--limit", "2", "--answer-tokens", "6", "--budgets", "0,8", "--k", "1,2",
                   "--verifiers", "self", "--output", str(tmp_path / "out"), "--db", str(db))
    assert ran.returncode == 0, ran.stderr
    from app.catalog import resolve
    from app.model_record import record_for
    from app.store import SessionLog

    with SessionLog.open(db, read_only=True) as log:
        runs = log.list_runs()
        checked = log.list_runs(checked=True)
        record = record_for(log, resolve("smollm2-135m"))
    judges = [r for r in runs if r.prompt.startswith("Question:")]  # verifiers.judge_prompt
    answers = [r for r in runs if r not in judges]
    assert answers and {r.id for r in checked} == {r.id for r in answers if r.status == "ok"}
    assert all(r.correct is None for r in judges)  # a judge's reply is a judgement: never marked
    # Each question's direct answer and its budget-8 thought share the question's text: a pair each.
    assert sum(k.pairs for k in record.kinds.values()) == 2
