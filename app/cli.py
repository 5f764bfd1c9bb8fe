"""The `fastslow` command: compare models on one prompt, list models."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence, TextIO

from app import __version__, doctor
from app.exit_codes import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_FAILED
from app.cancellation import Cancellation
from app.catalog import DEFAULT_MODELS, resolve
from app.engines.types import (
    EngineError,
    ModelSpec,
    Sampling,
    Started,
)
from app.eval.harness import CASCADE_CONFIDENCE, SampleFile, parse_policies, run_eval, summarise
from app.eval.report import pareto_front, plot_tradeoff, tokens_per_question
from app.eval.suites import load_suite, suite_path
from app.expected_cost import expected_cost
from app.lanes import lanes_refused
from app.route_between import Between, route_between
from app.hardware import memory_state
from app.live import sources_said, thought_limits
from app.local_stores import SOURCES, Discovery, discover, lookup
from app.models_overview import gib, overview, store_rows
from app.plan import budget_problem, build_request
from app.model_record import record_for
from app.plan import route as ask_router
from app.routing.evidence import WORTH
from app.settings import (
    MAX_GPU_LAYERS, MAX_N_CTX, MAX_TDP_W, MAX_THINK_WORTH, MIN_TDP_W, MIN_THINK_WORTH, ROUTERS, logical_cpus,
)
from app.scaling import report as scaling_report
from app.scaling.sweep import SampleStore, SweepConfig, sweep_model
from app.selftest import run_self_test
from app.routing.heuristic import THINK
from app.runs import RunResult, RunUpdate, power_supply
from app.verdict import verdict
from app.store import MemoryLog, SessionLog, StoreError, open_log, resolve_db_path
from app.store.export import write_jsonl
from app.store.commands import add_log_commands
from app.thinking_styles import minimum_problem
from app.telemetry.commands import add_telemetry_command
from app.telemetry.load import background_now, threads_warning
from app.engines.offload import placement
from app.session import Pane, Session


# Failures caused by what the user asked for, rather than by something breaking while running.
INPUT_ERRORS = {
    "unknown_model",
    "missing_model_file",
    "bad_model_file",
    "unsupported_model",  # a GGUF of an architecture this llama.cpp cannot run
    "not_downloaded",
    "does_not_fit",
    "empty_prompt",
    "prompt_too_long",
    "bad_catalog",
    "bad_request",
    "bad_suite",
}

DEMO_PROMPT = "A train leaves at 3:40 pm and the trip takes 2 hours 35 minutes. When does it arrive?"
DEMO_ANSWER = "6:15 pm"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `fastslow … | head`: the reader left; no traceback for that
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:  # Ctrl-C: the log closes on the way out and marks what it left unfinished
        print("\nfastslow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EngineError as exc:
        print(f"fastslow: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if exc.kind in INPUT_ERRORS else EXIT_RUN_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastslow", description="A fast model and a thinking model, side by side, with honest numbers."
    )
    parser.add_argument("--version", action="version", version=f"fastslow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    compare = commands.add_parser("compare", help="run one prompt through several models")
    compare.add_argument("prompt", help="the prompt; '-' reads it from standard input")
    compare.add_argument(
        "-m", "--model", action="append", dest="models",
        help="catalog id, path to a .gguf, ollama:<name>, lmstudio:<publisher>/<file>, or a served model "
             "remote:<base URL>#<model id> (repeat for each pane; default: the bundled pair)",
    )
    how = compare.add_mutually_exclusive_group()
    how.add_argument("--fair", dest="mode", action="store_const", const="fair",
                     help="one pane after another, all cores each (default; clean numbers)")
    how.add_argument("--live", dest="mode", action="store_const", const="live",
                     help="all panes at once, cores split between them (see them race)")
    compare.set_defaults(mode="fair")
    compare.add_argument("--max-tokens", type=_tokens, default=256)
    compare.add_argument("--system", help="a system message to put before the prompt")
    compare.add_argument("--ctx", type=_context, help="context size (default: 4096 or the model's, if smaller)")
    compare.add_argument("--threads", type=_threads, help="CPU cores to use (default: all physical cores)")
    compare.add_argument("--gpu-layers", type=_gpu_layers, default=None, metavar="auto|N",
                         help="layers to offload to the GPU: auto (default: as many as fit), -1 all, 0 the CPU")
    compare.add_argument("--think", dest="thinking", action="store_true", default=None,
                         help="switch thinking on, for models with a switch (Qwen3, SmolLM3)")
    compare.add_argument("--no-think", dest="thinking", action="store_false",
                         help="switch thinking off, for models with a switch")
    compare.add_argument("--thinking-budget", type=_budget, metavar="N",
                         help="close the thought after N tokens and let the model answer")
    compare.add_argument("--min-thinking", type=_budget, metavar="N",
                         help="budget forcing: when the model ends its thought before N tokens, put in "
                              "\"Wait\" so it thinks on (up to 8 times)")
    compare.add_argument("--auto", action="store_true",
                         help="let the router decide thinking on/off and the budget for each model, from the "
                              "prompt and the model's own record of checked answers in the log (it says why)")
    compare.add_argument("--worth", type=_worth, default=WORTH, metavar="N",
                         help=f"--auto thinks when the right answers thinking adds pay for it: one more right "
                              f"answer is worth up to N direct answers' energy (default {WORTH:g})")
    compare.add_argument("--route-between", action="store_true",
                         help="two models, -m FAST -m SLOW: the router sends the prompt to one (FAST answers "
                              "directly, SLOW thinks), saying what each is expected to cost from its runs in the log")
    compare.add_argument("--router", choices=ROUTERS, default="heuristic",
                         help="which router --auto and --route-between ask: heuristic (hand-set) or classifier")
    compare.add_argument("--temperature", type=_temperature, default=Sampling.temperature,
                         help=f"sampling temperature, {MIN_TEMPERATURE:g} (greedy) to {MAX_TEMPERATURE:g}")
    compare.add_argument("--seed", type=_seed, default=0)
    compare.add_argument("--force", action="store_true", help="load even when the fit check says it will not fit")
    compare.add_argument("--tdp", type=_tdp, metavar="W",
                         help="your CPU's TDP in watts, for the energy estimate when no power counter is readable")
    compare.add_argument("--answer", metavar="KNOWN",
                         help="the known answer: each run is marked right or wrong, and the verdict says which")
    compare.add_argument("--json", action="store_true", help="print one JSON record per run instead of text")
    compare.add_argument("--db", metavar="PATH", help="session log (default: $FASTSLOW_DB or the data folder)")
    compare.add_argument("--no-log", action="store_true", help="do not write the runs to the session log")
    compare.set_defaults(func=cmd_compare)

    demo = commands.add_parser("demo", help="compare the two bundled models on a sample question")
    demo.add_argument("--live", dest="mode", action="store_const", const="live", default="fair")
    demo.set_defaults(func=cmd_demo)

    evaluate = commands.add_parser("eval", help="accuracy and cost of routing policies on a benchmark suite")
    source = evaluate.add_mutually_exclusive_group()
    source.add_argument("--suite", default="gsm8k", help="a bundled suite (default: gsm8k)")
    source.add_argument("--suite-file", help="any JSONL in GSM8K's question/answer format")
    evaluate.add_argument("--policies", default="direct,think,heuristic",
                          help="comma-separated: direct, think, heuristic, classifier, auto, cascade, cascade-logprob, "
                               "self-consistency")
    evaluate.add_argument("--limit", type=_limit, default=20, help="first N problems (default 20)")
    evaluate.add_argument("-m", "--model", default=DEFAULT_MODELS[0], help="catalog id or .gguf path")
    evaluate.add_argument("--max-tokens", type=_tokens, default=256)
    evaluate.add_argument("--thinking-budget", type=_budget, metavar="N")
    evaluate.add_argument("--min-thinking", type=_budget, metavar="N",
                          help="budget forcing on every thinking request: an earlier end of the thought is "
                               "refused with \"Wait\" (never past the budget)")
    evaluate.add_argument("--k", type=_samples, default=4, help="samples for self-consistency (default 4)")
    evaluate.add_argument("--cascade-threshold", type=_probability, default=CASCADE_CONFIDENCE, metavar="P",
                          help="cascade-logprob thinks when the direct answer's mean token probability is below P "
                               f"(default {CASCADE_CONFIDENCE})")
    evaluate.add_argument("--ctx", type=_context)
    evaluate.add_argument("--parallel", type=_parallel, default=1, metavar="N",
                          help="requests at once to a served model (remote:…), each a connection of its own")
    evaluate.add_argument("--threads", type=_threads)
    evaluate.add_argument("--output", default="eval-results", help="folder for samples.jsonl and summary.json")
    evaluate.add_argument("--tdp", type=_tdp, metavar="W", help="your CPU's TDP, for the energy estimate")
    evaluate.add_argument("--db", metavar="PATH", help="session log (default: $FASTSLOW_DB or the data folder)")
    evaluate.add_argument("--no-log", action="store_true", help="do not write the runs to the session log")
    evaluate.set_defaults(func=cmd_eval)

    scale = commands.add_parser("scale", help="accuracy against thinking compute and energy: budgets, samples, verifiers")
    source = scale.add_mutually_exclusive_group()
    source.add_argument("--suite", default="gsm8k", help="a bundled suite (default: gsm8k)")
    source.add_argument("--suite-file", help="any JSONL in GSM8K's question/answer format")
    scale.add_argument("--limit", type=_limit, default=10, help="first N problems (default 10)")
    scale.add_argument("-m", "--model", action="append", dest="models", help="catalog id or .gguf (repeat to compare)")
    scale.add_argument("--budgets", type=_int_list(0, MAX_N_CTX, "budgets"), default=(0, 64, 128, 256),
                       help="thinking budgets in tokens, comma-separated (default 0,64,128,256; 0 = direct)")
    scale.add_argument("--k", type=_int_list(1, MAX_SAMPLES, "k"), default=(1, 2, 4, 8), dest="ks",
                       help="samples per question for voting and best-of-N, comma-separated (default 1,2,4,8); "
                            "the largest k is generated once and shared by the others")
    scale.add_argument("--k-budget", type=_budget, help="thinking budget of the samples (default: the largest)")
    scale.add_argument("--verifiers", default="oracle,majority,program",
                       help="comma-separated: oracle (pass@k), majority, program (re-checks arithmetic), self (model judges)")
    scale.add_argument("--answer-tokens", type=_tokens, default=96,
                       help="tokens allowed for the answer after the thought (default 96)")
    scale.add_argument("--force", action="store_true", dest="force_budget",
                       help="budget forcing (s1): hold each thought to exactly its budget, an earlier end "
                            "refused with \"Wait\"")
    scale.add_argument("--seed", type=_seed, default=0)
    scale.add_argument("--ctx", type=_context)
    scale.add_argument("--parallel", type=_parallel, default=1, metavar="N",
                       help="requests at once to a served model (remote:…), each a connection of its own")
    scale.add_argument("--threads", type=_threads)
    scale.add_argument("--tdp", type=_tdp, metavar="W", help="your CPU's TDP, for the energy estimate")
    scale.add_argument("--output", default="scale-results",
                       help="folder for samples.jsonl (resumes from it), points.json, charts and reading.txt")
    scale.add_argument("--db", metavar="PATH", help="session log (default: $FASTSLOW_DB or the data folder)")
    scale.add_argument("--no-log", action="store_true", help="do not write the runs to the session log")
    scale.set_defaults(func=cmd_scale)

    route = commands.add_parser("route", help="show what the router decides for a prompt, and why")
    route.add_argument("prompt")
    route.add_argument("--between", nargs=2, metavar=("FAST", "SLOW"),
                       help="which of two models answers (FAST directly, SLOW thinking), with each one's "
                            "expected time and energy from its runs in the session log")
    route.add_argument("-m", "--model", metavar="MODEL",
                       help="route for this model: its record of checked answers in the session log moves the "
                            "decision, weighed against what thinking costs it")
    route.add_argument("--worth", type=_worth, default=WORTH, metavar="N",
                       help=f"one more right answer is worth up to N direct answers' energy (default {WORTH:g})")
    route.add_argument("--max-tokens", type=_tokens, default=256, help="the SLOW model's, so its budget fits")
    route.add_argument("--db", metavar="PATH", help="session log to read the models' runs from")
    route.add_argument("--json", action="store_true")
    route.add_argument("--router", choices=ROUTERS, default="heuristic",
                       help="heuristic (hand-set features) or classifier (trained: python -m app.eval.train_router)")
    route.set_defaults(func=cmd_route)

    add_log_commands(commands)
    add_telemetry_command(commands)

    checkup = commands.add_parser(
        "doctor", help="what llama.cpp was built for and sees, the GPUs here, MLX, energy sources, and every "
                       "mismatch with its fix",
        epilog="Exits 0 whenever the facts were read, mismatches or not (a mismatch is a finding, each with "
               "its fix); 1 only when the facts cannot be read.")
    checkup.add_argument("--json", action="store_true", help="one JSON object: the facts and the mismatches")
    checkup.set_defaults(func=cmd_doctor)

    selftest = commands.add_parser("self-test", help="check this installation works: load, generate, log (exit 0 if so)")
    selftest.set_defaults(func=lambda _args: run_self_test())

    models = commands.add_parser("models", help="list catalog and local models, with fit on this machine")
    models.add_argument("--ctx", type=_context, default=4096)
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)
    return parser


# -- the numeric flags: each an argparse type with its bounds; a value outside them is one sentence
# from argparse (exit 2), never a traceback, a NaN in the log or a thread count the machine lacks.

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.0, 5.0  # app/plan.py's PanePlan holds the same
MAX_SEED = 2**31 - 1  # a scale sweep adds its sample number to the seed: room left below 2**32
MAX_SAMPLES = 256  # self-consistency / best-of-N samples per question
MAX_LIMIT = 1_000_000  # problems of a suite
MAX_PARALLEL = 64  # requests at once to a served model: a worker and a connection each


def _whole(low: int, high, span: str | None = None):
    """An argparse type: a whole number from low to high; high is a number, or a function for a bound
    only known when the flag is read (the machine's CPUs). span: the range in words, when plainer."""
    def parse(text: str) -> int:
        top = high() if callable(high) else high
        words = span.format(top=top) if span else (
            {0: "0 or more", 1: "a positive number"}.get(low, f"{low} or more") + f", at most {top}")
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number ({words}), not {text!r}") from None
        if not low <= value <= top:
            raise argparse.ArgumentTypeError(f"must be {words}, not {value}")
        return value
    return parse


def _finite(low: float, high: float, words: str):
    """An argparse type: a finite number from low to high (NaN and infinity are refused)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {words}, not {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a finite number {words}, not {value:g}")
        return value
    return parse


_tokens = _whole(1, MAX_N_CTX)
_context = _whole(1, MAX_N_CTX)
_budget = _whole(0, MAX_N_CTX)
_limit = _whole(1, MAX_LIMIT)
_samples = _whole(1, MAX_SAMPLES)
_parallel = _whole(1, MAX_PARALLEL)
_seed = _whole(0, MAX_SEED)
_threads = _whole(1, logical_cpus, "from 1 to {top} (the logical CPUs of this machine)")
_gpu_layer_count = _whole(-1, MAX_GPU_LAYERS, "auto, -1 (all layers) or from 0 to {top}")


def _gpu_layers(text: str) -> int | None:
    """An argparse type: "auto" (None: as many layers as fit the GPU), -1 (all), 0 (the CPU) or N."""
    return None if text.strip().lower() == "auto" else _gpu_layer_count(text)


_temperature = _finite(MIN_TEMPERATURE, MAX_TEMPERATURE, f"from {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}")
_tdp = _finite(MIN_TDP_W, MAX_TDP_W, f"of watts from {MIN_TDP_W} to {MAX_TDP_W}")
_probability = _finite(0.0, 1.0, "from 0 to 1")
_worth = _finite(MIN_THINK_WORTH, MAX_THINK_WORTH, f"of direct answers from {MIN_THINK_WORTH:g} to {MAX_THINK_WORTH:g}")


def _int_list(minimum: int, maximum: int, what: str):
    """An argparse type: "0,64,128" -> (0, 64, 128), each from `minimum` to `maximum`, at least one."""
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be whole numbers separated by commas, not {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"give at least one value for {what}")
        if any(not minimum <= v <= maximum for v in values):
            raise argparse.ArgumentTypeError(f"{what} must be from {minimum} to {maximum}, not {text.strip()!r}")
        return tuple(sorted(set(values)))
    return parse


# -- compare ---------------------------------------------------------------------------------


def _min_thinking_refused(args: argparse.Namespace) -> bool:
    """Says on stderr what is wrong with --min-thinking beside the other thinking flags, if anything."""
    if args.min_thinking is None:
        return False
    problem = None
    if getattr(args, "thinking", None) is False:
        problem = "--min-thinking keeps a thought going, and --no-think switches thinking off: choose one"
    elif minimum_problem(args.min_thinking, args.thinking_budget):
        problem = (f"--min-thinking {args.min_thinking} is longer than --thinking-budget {args.thinking_budget}: "
                   "the minimum must fit in the budget")
    if problem:
        print(f"fastslow: {problem}", file=sys.stderr)
    return problem is not None


def _say_energy_fixes(session: Session) -> None:
    """A power counter this machine has but cannot read, and how to unlock it (`fastslow telemetry`
    lists every source)."""
    for name, reason in session.power.fixable if session.power else ():
        print(f"fastslow: note: energy could be measured, not estimated — {name}: {reason}", file=sys.stderr)


def _say_mismatches(session: Session, probe: doctor.GpuProbe) -> None:
    """A GPU here that the loaded llama.cpp's build leaves idle, and the command that fixes it
    (`fastslow doctor` lists every fact). The probe waits at most 0.3 s more after the load."""
    for mismatch in doctor.at_load([pane.info for pane in session.panes], probe.gpus()):
        print(f"fastslow: note: {mismatch.line}", file=sys.stderr)


def _say_busy_machine(session: Session) -> None:
    """Other programs' load now (a quarter second's reading), when it leaves fewer free CPUs than a
    pane's threads: llama.cpp's threads would wait on it and every figure read low."""
    threads = [pane.info.n_threads for pane in session.panes if pane.info is not None and pane.info.n_threads]
    if not threads:
        return
    background = background_now(ours=[pane.pid for pane in session.panes if pane.pid is not None])
    if said := threads_warning(max(threads), logical_cpus(), background):
        print(f"fastslow: warning: {said}", file=sys.stderr)


def _undecodable(raw: bytes, what: str) -> str | None:
    """Why raw is not text, in one sentence naming the first bad byte's offset; None when it is UTF-8."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (f"{what} is not valid UTF-8: the byte at offset {exc.start} (0x{raw[exc.start]:02x}) "
                "cannot be read as text; give it in UTF-8")
    return None


def _argument_bytes(text: str) -> bytes:
    """An argument as the bytes it was given: on POSIX, bytes that were not UTF-8 reach sys.argv as
    lone surrogates (surrogateescape) and go back to what they were; any other lone surrogate is
    kept as one (surrogatepass), which no UTF-8 decoder accepts either."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _read_prompt(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(prompt, None), or (None, why not): standard input is read as bytes and decoded strictly, and
    every text argument must be UTF-8 too, before any model loads or any row is written."""
    if args.prompt == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:  # a stand-in for standard input that holds text already
            prompt = sys.stdin.read()
            problem = _undecodable(_argument_bytes(prompt), "the prompt on standard input")
        else:
            raw = stdin.read()
            problem = _undecodable(raw, "the prompt on standard input")
            prompt = None if problem else raw.decode("utf-8")
    else:
        prompt = args.prompt
        problem = _undecodable(_argument_bytes(prompt), "the prompt")
    for flag, text in (("--system", args.system), ("--answer", args.answer)):
        if problem is None and text is not None:
            problem = _undecodable(_argument_bytes(text), f"the {flag} text")
    return (None, problem) if problem else (prompt, None)


def cmd_compare(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    prompt, problem = _read_prompt(args)
    if problem:
        print(f"fastslow: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not prompt.strip():
        print("fastslow: the prompt is empty: give a question to ask", file=sys.stderr)
        return EXIT_BAD_INPUT
    thinking, budget, decision = args.thinking, args.thinking_budget, None
    if _min_thinking_refused(args):
        return EXIT_BAD_INPUT
    if thinking is not False and (problem := budget_problem(budget, args.max_tokens)):
        print(f"fastslow: {problem.replace('max tokens', '--max-tokens')}", file=sys.stderr)
        return EXIT_BAD_INPUT
    models = args.models or list(DEFAULT_MODELS)
    if args.route_between:
        if problem := _between_problem(args, models):
            print(f"fastslow: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT
        decision = _route_between(args, prompt, models)
        thinking = decision.route == THINK
        budget = decision.budget if budget is None and thinking else budget if thinking else None
        models = [models[decision.pane]]  # the other model is never loaded: that is what routing saves
        if not args.json:
            print(f"router: {decision.banner()}", file=out)
    request = build_request(prompt, args.system, args.max_tokens, args.temperature, args.seed, thinking, budget,
                            args.min_thinking if thinking is not False else None)
    kinds = getattr(args, "pane_thinking", None)  # the demo: one model, direct in one pane and thinking in the other
    requests = ([replace(request, thinking=k, thinking_budget=budget if k else None) for k in kinds]
                if kinds else request)
    log, session = None, None
    try:
        log = _open_log(args)
        session = Session([], mode=args.mode, cores=args.threads, tdp_w=args.tdp, log=log)
        for name in models:
            session.panes.append(_pane_for(name, args))
        decisions = None if decision is None else [decision] * len(session.panes)
        if args.auto and not args.route_between:  # each model's own decision, knowing its record
            decisions = [ask_router(prompt, args.router, args.max_tokens, session.model_record(i), args.worth)
                         for i in range(len(session.panes))]
            requests = [replace(request, thinking=d.route == THINK, thinking_budget=(
                (budget if budget is not None else d.budget) if d.route == THINK else None),
                thinking_min=request.thinking_min if d.route == THINK else None) for d in decisions]
            for pane, d in zip(session.panes, decisions):
                if not args.json:
                    print(f"router{f' ({pane.label})' if len(session.panes) > 1 else ''}: {_describe(d)}", file=out)
        with session:
            printer = None if args.json else _StreamPrinter(session, out, kinds)
            if printer:
                printer.loading()
            probe = doctor.GpuProbe()  # the system's GPU tools answer while the models load
            session.load(force=args.force)
            _say_energy_fixes(session)
            _say_mismatches(session, probe)
            _say_busy_machine(session)
            for pane in session.panes:
                if pane.fit is not None and pane.fit.verdict != "fits" and pane.info is not None:
                    print(f"fastslow: warning: {pane.label} {pane.fit.message()}", file=sys.stderr)
            ran = _run_to_the_end(session, requests, printer, out, decisions=decisions, known_answer=args.answer)
            if ran.reader_left:  # `| head`: the runs are cancelled and logged; nobody reads the rest
                return EXIT_OK
            results = ran.results
            for lost in session.lost_sources():
                print(f"fastslow: warning: {lost}", file=sys.stderr)
            if args.json:
                for i, (pane, result) in enumerate(zip(session.panes, results)):
                    record = _record(pane, result)
                    record["router"] = None if decisions is None else asdict(decisions[i])
                    out.write(json.dumps(record) + "\n")
            else:
                printer.summary(results, args.answer)
            if ran.interrupted:
                out.flush()
                print("fastslow: interrupted: the runs not yet finished were cancelled", file=sys.stderr)
                return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # while loading (or a second Ctrl-C): no run is left behind as running
        print("\nfastslow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if session is not None:
            _close_log(log, session, str(resolve_db_path(args.db)))
        elif log is not None:
            log.close()
    return _exit_code(results)


@dataclass
class _Ran:
    """What came of one comparison's stream, read to its end."""

    results: list[RunResult] = field(default_factory=list)  # every pane's finished record, in pane order
    interrupted: bool = False  # Ctrl-C: the runs were cancelled
    reader_left: bool = False  # stdout's reader went away (`| head`): the runs were cancelled


def _run_to_the_end(session: Session, requests, printer: "_StreamPrinter | None", out: TextIO,
                    decisions=None, known_answer: str | None = None) -> _Ran:
    """Read the comparison's stream until every pane's closing update, whatever happens on the way.

    A Ctrl-C (SIGINT) or a reader that leaves (BrokenPipeError on stdout, `| head`) cancels the runs,
    and the stream is still read to its end: each pane's closing update comes after its log row is
    completed, so every row ends as what it was (cancelled, or finished), never left running. A
    second Ctrl-C quits at once (its rows are then marked interrupted)."""
    ran = _Ran()
    cancellation = Cancellation()
    results: dict[int, RunResult] = {}
    with _sigint_cancels(cancellation, ran):
        for update in session.stream(requests, decisions, cancellation=cancellation, known_answer=known_answer):
            if printer is not None and not ran.reader_left:
                try:
                    printer.on_update(update)
                except BrokenPipeError:
                    ran.reader_left = True
                    _silence(out)
                    cancellation.cancel()  # this thread holds none of the stream's locks here
            if update.closing:
                results[update.pane] = update.result
    ran.results = [results[i] for i in sorted(results)]
    return ran


@contextlib.contextmanager
def _sigint_cancels(cancellation: Cancellation, ran: _Ran):
    """While it is open, the first SIGINT cancels the comparison instead of raising KeyboardInterrupt
    (which would end the stream where it lands, its rows left running); a second raises it as usual."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread takes signals
        yield
        return
    before = signal.getsignal(signal.SIGINT)
    if before is signal.SIG_IGN or before is None:  # Ctrl-C ignored (a background job), or not Python's to set
        yield
        return

    def cancel(_signum, _frame) -> None:
        ran.interrupted = True
        signal.signal(signal.SIGINT, before if callable(before) else signal.default_int_handler)
        # From a thread: the signal may have stopped this one inside the cancellation's lock.
        threading.Thread(target=cancellation.cancel, name="fastslow-cancel", daemon=True).start()

    signal.signal(signal.SIGINT, cancel)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _silence(out: TextIO) -> None:
    """The reader of out went away: what is still written to it goes nowhere, quietly (no
    BrokenPipeError again, not even at exit's flush)."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _open_log(args: argparse.Namespace):
    """The session log of --db (or its default), None with --no-log; an unusable file only warns."""
    if args.no_log:
        return None
    log, log_error = open_log(args.db)
    if log_error is not None:
        print(f"fastslow: warning: {log_error}; runs are kept in memory only", file=sys.stderr)
    return log


LOG_WAIT_S = 60.0  # how long a finished run waits for a busy log file before it goes to a recovery file


def _close_log(log, session: Session, near: str | None = None) -> None:
    """Every finished run into the log file before the command ends. A busy file (locked by another
    program, a full disk) is waited for; runs it still refuses, or that were kept in memory, are
    saved to a recovery file beside it (else in the temporary folder), with the command to import them.
    near: where the log file was meant to be, when it could not be opened at all."""
    if log is not None and session.log_waiting:
        print(f"fastslow: the session log is busy ({session.log_error}); waiting up to {LOG_WAIT_S:.0f} s to "
              "write the finished runs…", file=sys.stderr)
    session.flush_log(LOG_WAIT_S if log is not None else 0.0)
    kept = session.log
    if log is not None and isinstance(kept, MemoryLog) and kept.list_runs():
        path = _save_recovery(kept, near or log.path)
        why = f"the session log failed ({session.log_error})" if session.log_error else "the session log could not be used"
        if path is not None:
            print(f"fastslow: warning: {why}; the runs are saved in {path}: `fastslow log import {path}` "
                  "puts them in a log", file=sys.stderr)
        else:
            print(f"fastslow: warning: {why}, and no file could take the runs: they are lost", file=sys.stderr)
    elif session.log_error is not None:
        print(f"fastslow: warning: the session log failed: {session.log_error}", file=sys.stderr)
    if log is not None:
        try:
            log.close()
        except StoreError as exc:  # every run is written or saved by now: closing may fail harmlessly
            print(f"fastslow: warning: {exc}", file=sys.stderr)


def _save_recovery(kept: MemoryLog, near: str) -> Path | None:
    """The runs kept in memory as JSONL beside the log file (or in the temporary folder); its path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folders = ([Path(near).parent] if near and near != ":memory:" else []) + [Path(tempfile.gettempdir())]
    for folder in folders:
        path = folder / f"fastslow-recovery-{stamp}-{os.getpid()}.jsonl"
        try:
            write_jsonl(kept, path, keep_home_paths=True)
            return path
        except (StoreError, OSError):
            continue
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    model = DEFAULT_MODELS[0]
    print(f"FastSlow demo: {model} answers one question directly, then thinking first ({args.mode} mode).\n")
    compare_args = _parser().parse_args(["compare", DEMO_PROMPT, f"--{args.mode}", "-m", model, "-m", model,
                                         "--thinking-budget", "160", "--answer", DEMO_ANSWER])
    compare_args.pane_thinking = (False, True)
    return cmd_compare(compare_args)


EVAL_FILES = ("samples.jsonl", "summary.json", "tradeoff.png")


def _output_problem(folder: Path, names: Sequence[str]) -> str | None:
    """Why the results cannot be written in folder, in one sentence; None when they can. The folder
    is created and written in (a scratch file, removed), so this is known before any generation."""
    if folder.exists() and not folder.is_dir():
        return f"--output {folder} is a file, not a folder: choose a folder for the results"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--output {folder} cannot be created ({exc.strerror or exc}): choose a folder you can write to"
    for name in names:
        if (folder / name).is_dir():
            return f"--output {folder} holds a folder named {name}, where a result file goes: choose another folder"
    try:
        _write_probe(folder)
    except OSError as exc:
        return f"--output {folder} cannot be written to ({exc.strerror or exc}): choose a folder you can write to"
    for name in names:
        if (folder / name).exists() and not os.access(folder / name, os.W_OK):
            return f"--output {folder / name} cannot be written to (it is read-only): choose another folder"
    return None


def _write_probe(folder: Path) -> None:
    """Create and remove a scratch file in folder; raises OSError when that cannot be done."""
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".fastslow-probe-"):
        pass


def cmd_eval(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        policies = parse_policies(args.policies)
    except ValueError as exc:
        print(f"fastslow: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if _min_thinking_refused(args):
        return EXIT_BAD_INPUT
    spec = _resolve(args.model, n_ctx=args.ctx, n_threads=args.threads)
    if refused := lanes_refused(spec, args.parallel):
        print(f"fastslow: {refused}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problems = load_suite(args.suite_file or suite_path(args.suite), limit=args.limit)
    folder = Path(args.output)
    if problem := _output_problem(folder, EVAL_FILES):  # before the model loads: no result is made to be lost
        print(f"fastslow: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    log = _open_log(args)
    session = Session([spec] * args.parallel, mode="fair", cores=args.threads, tdp_w=args.tdp, log=log)
    try:  # a model that fails to load still leaves the log closed, its session ended
        with session:
            probe = doctor.GpuProbe()
            pane = session.load_lanes() if args.parallel > 1 else session.load_single()
            _say_energy_fixes(session)
            _say_mismatches(session, probe)
            _say_busy_machine(session)
            try:  # opened once the model is loaded: a model that cannot load leaves the last eval's file
                samples_file = SampleFile(folder / "samples.jsonl")
            except OSError as exc:
                print(f"fastslow: --output {folder / 'samples.jsonl'} cannot be written ({exc.strerror or exc}): "
                      "choose a folder you can write to", file=sys.stderr)
                return EXIT_BAD_INPUT

            def kept(sample) -> None:  # in the file first: a sample on the screen is a sample kept
                samples_file.write(sample)
                out.write(f"  {sample.problem_id} {sample.policy:<9} {'✓' if sample.correct else '✗'} "
                          f"{sample.predicted} (ref {sample.reference})\n")
                out.flush()

            at_once = f", {args.parallel} requests at once" if args.parallel > 1 else ""
            out.write(f"{len(problems)} problems × {', '.join(policies)} on {pane.label} "
                      f"(thinking style: {pane.thinking_style}{at_once})\n")
            with samples_file:
                samples = run_eval(
                    session, problems, policies, args.max_tokens, args.thinking_budget, on_sample=kept,
                    k=args.k, cascade_confidence=args.cascade_threshold, minimum=args.min_thinking,
                    parallel=args.parallel,
                )
    finally:
        _close_log(log, session, str(resolve_db_path(args.db)))
    summaries = summarise(samples)
    (folder / "summary.json").write_text(json.dumps([vars(s) for s in summaries], indent=2))
    written = [folder / "samples.jsonl", folder / "summary.json"]
    try:
        title = f"{pane.label} on {len(problems)} problems of {Path(args.suite_file or args.suite).stem}"
        written.append(plot_tradeoff(summaries, folder / "tradeoff.png", title))
    except RuntimeError as exc:  # matplotlib is optional: the numbers matter more than the picture
        print(f"fastslow: no chart: {exc}", file=sys.stderr)
    front = pareto_front([(s.policy, tokens_per_question(s), s.accuracy) for s in summaries])
    out.write("\n" + format_summary(summaries) + f"\n\nPareto front (accuracy vs tokens): {', '.join(front)}\n")
    out.write(f"wrote {', '.join(str(p) for p in written)}\n")
    return EXIT_OK


def _sweep_models(args, specs, config: SweepConfig, problems, store: SampleStore, log, out: TextIO) -> list:
    """Each model of `fastslow scale` in turn; a session log that fails is said once, then left alone."""
    all_points = []
    per_question = len(config.budgets) + max(config.ks, default=0)
    for spec in specs:
        swept = sweep_model(
            spec, problems, config, store, log=log, tdp_w=args.tdp, cores=args.threads, parallel=args.parallel,
            on_loaded=lambda pane: out.write(
                f"{pane.label} (thinking: {pane.thinking_style}): {len(problems)} problems × {per_question} "
                f"generations ({len(config.budgets)} budgets + {max(config.ks, default=0)} shared samples)"
                f"{' + judges' if 'self' in config.verifiers else ''}\n"),
            on_generation=lambda g, new: out.write(
                f"  {g.problem_id} {g.kind:<6} budget {g.budget:<5} seed {g.seed:<3} "
                f"{'✓' if g.correct else '✗'} {g.predicted}{'' if new else '  (stored)'}\n"),
        )
        out.write(f"  {swept.ran} generated now, {len(store.done)} in the store\n")
        all_points += swept.points
        if swept.log_error is not None and log is not None:
            print(f"fastslow: warning: the session log failed: {swept.log_error}; the sweep goes on "
                  f"(samples.jsonl has every generation), unlogged", file=sys.stderr)
            log = None
    return all_points


def cmd_scale(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        config = SweepConfig(budgets=args.budgets, ks=args.ks, k_budget=args.k_budget,
                             verifiers=tuple(v.strip() for v in args.verifiers.split(",") if v.strip()),
                             seed=args.seed, max_answer_tokens=args.answer_tokens, force_budget=args.force_budget)
    except ValueError as exc:
        print(f"fastslow: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    specs = [_resolve(name, n_ctx=args.ctx, n_threads=args.threads) for name in args.models or [DEFAULT_MODELS[0]]]
    if refused := next(filter(None, (lanes_refused(spec, args.parallel) for spec in specs)), None):
        print(f"fastslow: {refused}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problems = load_suite(args.suite_file or suite_path(args.suite), limit=args.limit)
    folder = Path(args.output)
    if problem := _output_problem(folder, ("samples.jsonl", "points.json", "reading.txt")):
        print(f"fastslow: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    store = SampleStore.open(folder / "samples.jsonl")
    if store.done:
        out.write(f"resuming: {len(store.done)} generations already in {folder / 'samples.jsonl'}\n")
    log = _open_log(args)
    try:
        all_points = _sweep_models(args, specs, config, problems, store, log, out)
    finally:
        if log is not None:
            log.close()
    rows = scaling_report.table(all_points)
    out.write("\n" + _columns(rows[0], rows[1:]) + "\n")
    out.write("\n" + scaling_report.reading(all_points) + "\n")
    written = [folder / "samples.jsonl", *scaling_report.write_results(folder, all_points)]
    try:
        title = f"{len(problems)} problems of {Path(args.suite_file or args.suite).stem}"
        title += ", budget forcing" if config.force_budget else ""
        written += scaling_report.plot(all_points, folder, title)
    except RuntimeError as exc:
        print(f"fastslow: no charts: {exc}", file=sys.stderr)
    out.write(f"wrote {', '.join(str(p) for p in written)}\n")
    return EXIT_OK


def format_summary(summaries) -> str:
    headers = ["policy", "n", "accuracy", "to thinking", "thinking tok", "answer tok", "latency", "TTFT",
               "energy", "failed", "unparsed"]
    rows = [
        [s.policy, str(s.n), f"{s.accuracy:.1%}", f"{s.think_share:.0%}", f"{s.mean_thinking_tokens:.1f}",
         f"{s.mean_answer_tokens:.1f}", _secs(s.mean_latency_s), _ms(s.mean_ttft_s),
         "—" if s.mean_energy_j is None else f"{s.mean_energy_j:.1f} J", str(s.failed), str(s.unparsed)]
        for s in summaries
    ]
    sources = sorted({s.energy_source for s in summaries if s.energy_source})
    note = f"\nenergy per question: {' + '.join(sources)}" if sources else ""
    return _columns(headers, rows) + note


def _columns(headers: list[str], rows: list[list[str]]) -> str:
    """A plain text table: each column as wide as its widest cell, two spaces between."""
    widths = [max([len(h), *(len(row[c]) for row in rows)]) for c, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def cmd_route(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if not args.prompt.strip():
        print("fastslow: the prompt is empty: give a question to route", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.between:
        between = _route_between(args, args.prompt, list(args.between))
        out.write((json.dumps(asdict(between)) if args.json else between.banner()) + "\n")
        return EXIT_OK
    record = None
    if args.model:
        spec = _resolve(args.model)
        log = _read_log(args.db, "no model record: the prompt alone decides")
        try:
            record = record_for(log, spec)
        finally:
            if log is not None:
                log.close()
    decision = ask_router(args.prompt, args.router, record=record, worth=args.worth)
    out.write((json.dumps(vars(decision)) if args.json else _describe(decision)) + "\n")
    return EXIT_OK


def _read_log(db: str | None, without: str) -> SessionLog | None:
    """The session log opened read-only for what a command reads from it (routing writes nothing);
    None, with a warning saying what goes without it, when it cannot be read."""
    try:
        return SessionLog.open(db, read_only=True)
    except StoreError as exc:
        print(f"fastslow: warning: the session log cannot be read ({exc}): {without}", file=sys.stderr)
        return None


def _between_problem(args: argparse.Namespace, models: list[str]) -> str | None:
    """Why --route-between cannot route this command, in one sentence; None when it can."""
    if len(models) != 2:
        return (f"--route-between routes between two models, -m FAST -m SLOW, not {len(models)}: FAST answers "
                "directly, SLOW thinks")
    if args.auto or args.thinking is not None or getattr(args, "pane_thinking", None):
        return "--route-between decides thinking itself: drop --auto, --think and --no-think"
    return None


def _route_between(args: argparse.Namespace, prompt: str, models: list[str]) -> Between:
    """The router's choice between FAST (directly) and SLOW (thinking), with each one's expected cost
    read from the session log (read-only: routing writes nothing)."""
    fast, slow = (_resolve(name, n_ctx=getattr(args, "ctx", None)) for name in models)
    log = None if getattr(args, "no_log", False) else _read_log(args.db, "no expected costs")
    try:
        return route_between(prompt, expected_cost(log, fast, thinking=False), expected_cost(log, slow, thinking=True),
                             router=args.router, max_tokens=args.max_tokens)
    finally:
        if log is not None:
            log.close()


def _describe(decision) -> str:
    what = f"think (budget {decision.budget} tokens)" if decision.route == THINK else "answer directly"
    return f"{what}: {'; '.join(decision.reasons)} · confidence {decision.confidence:.2f}"


def _pane_for(name: str, args: argparse.Namespace) -> Pane:
    try:
        spec = _resolve(name, n_ctx=args.ctx, n_gpu_layers=args.gpu_layers, n_threads=args.threads)
        return Pane(spec)
    except EngineError as exc:
        return Pane(ModelSpec(path=name, name=name), load_error=exc)


def _exit_code(results: list[RunResult]) -> int:
    failed = [r for r in results if r.status == "failed"]
    if any(r.error_kind in INPUT_ERRORS for r in failed):
        return EXIT_BAD_INPUT
    return EXIT_RUN_FAILED if failed else EXIT_OK


def _record(pane: Pane, result: RunResult) -> dict:
    record = result.to_dict()
    record["model_info"] = None if pane.info is None else vars(pane.info).copy()
    record["fit"] = None if pane.fit is None else {**vars(pane.fit), "message": pane.fit.message()}
    return record


class _StreamPrinter:
    """Prints each pane's text as it streams: sections in fair mode, labelled lines in live mode."""

    def __init__(self, session: Session, out: TextIO, thinking: Sequence[bool] | None = None) -> None:
        self.session, self.out = session, out
        self.thinking = thinking  # each pane's mode, where they differ (the demo)
        self.live = session.mode == "live"
        self.pending = {i: "" for i in range(len(session.panes))}
        self.started: set[int] = set()
        self.channel: dict[int, str] = {}  # what each pane is streaming now: thinking or answer

    def loading(self) -> None:
        names = ", ".join(p.label for p in self.session.panes)
        self.out.write(f"loading {names} ...\n")
        self.out.flush()

    def _tag(self, i: int) -> str:
        mode = "" if self.thinking is None else (" thinking" if self.thinking[i] else " direct")
        return f"[{i + 1} {self.session.panes[i].label}{mode}]"

    def on_update(self, update: RunUpdate) -> None:
        i, event = update.pane, update.event
        if update.closing:
            r = update.result
            if r.status == "failed":
                self._finish_pane(i, f"error: {r.error}")
            elif r.status == "cancelled" and r.total_s is None:
                self._finish_pane(i, "cancelled before it started")
            else:
                self._finish_pane(i, None, f"no answer: {r.no_answer}" if r.no_answer and r.status == "ok" else None)
            return
        if isinstance(event, Started) and not self.live:
            self.out.write(f"\n── {self._tag(i)} {self._conditions(i)} ──\n")
            self.started.add(i)
        for piece in update.pieces:
            if piece.channel != self.channel.get(i, "answer"):
                self.channel[i] = piece.channel
                self._write_text(i, "[thinking] " if piece.channel == "thinking" else "\n[answer] ")
            self._write_text(i, piece.text)

    def _conditions(self, i: int) -> str:
        """Where the pane runs, with the threads this mode gives it, and the mode: "CPU · 2 threads,
        fair mode", "CUDA · H200 · 30/30 layers, fair mode", "remote · gpu-box:8000, live mode"."""
        info = self.session.panes[i].info
        if info is None:
            return f"{self.session.mode} mode"
        local = sum(1 for pane in self.session.panes if pane.uses_local_cores)
        threads = self.session.threads_per_pane(max(local, 1))
        where = placement(info.backend_used, info.device, info.n_gpu_layers_offloaded, info.n_layers, threads)
        return f"{where}, {self.session.mode} mode"

    def _write_text(self, i: int, text: str) -> None:
        if not text:
            return
        if not self.live:
            self.out.write(text)
            self.out.flush()
            return
        self.pending[i] += text
        *lines, self.pending[i] = self.pending[i].split("\n")
        for line in lines:
            self.out.write(f"{self._tag(i)} {line}\n")
        self.out.flush()

    def _finish_pane(self, i: int, error: str | None, note: str | None = None) -> None:
        if self.live:
            if self.pending[i]:
                self.out.write(f"{self._tag(i)} {self.pending[i]}\n")
                self.pending[i] = ""
            for line in (error, note):
                if line:
                    self.out.write(f"{self._tag(i)} {line}\n")
        else:
            if error and i not in self.started:
                self.out.write(f"\n── {self._tag(i)} ──\n")
            self.out.write(f"\n{error}\n" if error else "\n")
            if note:
                self.out.write(f"{note}\n")
        self.out.flush()

    def summary(self, results: list[RunResult], known_answer: str | None = None) -> None:
        self.out.write("\n" + format_table(results) + "\n")
        threads = self.session.threads_per_pane()
        how = "one after another" if self.session.mode == "fair" else "at the same time"
        self.out.write(f"{self.session.mode} mode: panes ran {how}, {threads} thread(s) each.\n")
        if known := [r for r in results if r.on_mains is not None]:  # a machine with a battery
            last = known[-1]
            advice = (": a laptop runs slower and draws less on battery; plug in for numbers comparable with "
                      "runs on mains") if last.on_mains is False else ""
            self.out.write(f"Ran {power_supply(last.on_mains, last.battery_percent)}{advice}.\n")
        for r in (r for r in results if r.placement):  # where each ran; whether others' load distorted it
            self.out.write(f"[{r.pane + 1} {r.model}] ran on {r.placement}"
                           + (f"; busy machine: {r.load_note}" if r.load_note else "") + ".\n")
        if self.session.mode == "live" and len(results) > 1:
            self.out.write("Energy of runs at once is shared by CPU time; fair mode (the default) measures each alone.\n")
        if line := verdict(results, known_answer):
            self.out.write(f"\nVerdict: {line}.\n")
        self.out.flush()


def format_table(results: list[RunResult]) -> str:
    headers = ["#", "model", "status", "prompt tok", "evaluated", "TTFT", "prompt tok/s",
               "generated", "thinking", "first answer", "decode tok/s", "total", "energy", "J/tok", "avg W",
               "finish"]
    rows = [
        [
            str(r.pane + 1),
            r.model,
            r.status,
            str(r.n_prompt_tokens),
            str(r.n_prompt_evaluated),
            _ms(r.ttft_s),
            _num(r.prompt_tps),
            str(r.n_generated),
            str(r.n_thinking_tokens) if r.thinking_style != "none" else "—",
            _ms(r.ttfat_s),
            _num(r.decode_tps),
            _secs(r.total_s),
            "—" if r.energy_j is None else f"{r.energy_j:.1f} J{'*' if r.energy_approximate else ''}",
            _num(r.j_per_token),
            _num(r.avg_w),
            r.finish_reason or (r.error_kind or ""),
        ]
        for r in results
    ]
    lines = [_columns(headers, rows)]
    for r in results:
        if r.status == "failed":
            lines.append(f"[{r.pane + 1}] {r.model}: {r.error}")
            continue
        if limits := thought_limits(r.thinking_extended, r.thinking_budget_hit):
            lines.append(f"[{r.pane + 1}] {r.model}: thought {limits}")
        if r.thought_note:
            lines.append(f"[{r.pane + 1}] {r.model}: thinking budget not held: {r.thought_note}")
        if r.no_answer:
            lines.append(f"[{r.pane + 1}] {r.model}: no answer: {r.no_answer}")
        if r.correct is not None:
            lines.append(f"[{r.pane + 1}] {r.model}: {'right' if r.correct else 'wrong'}")
    for source in dict.fromkeys(r.energy_source for r in results if r.energy_source):
        details = next(r.energy_detail.get("details") or {} for r in results if r.energy_source == source)
        said, why = sources_said(details)
        lines.append(f"energy: {source}" + (f" — {said}" if said else ""))
        lines += [f"  {line}" for line in why]
    approximate = [r for r in results if r.energy_approximate]
    if approximate:
        notes = approximate[0].energy_detail.get("notes") or ["see energy_detail"]
        lines.append(f"* approximate: {notes[0]}")
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f} ms"


def _secs(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.2f} s"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


# -- models ----------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        report = doctor.examine()
    except Exception as exc:  # noqa: BLE001 — doctor's one failure: the facts themselves cannot be read
        print(f"fastslow: doctor could not read this machine's facts: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
    out.write((json.dumps(doctor.as_dict(report)) if args.json else doctor.format_report(report)) + "\n")
    return EXIT_OK


def cmd_models(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    memory = memory_state()
    rows = overview(args.ctx, memory)
    found = discover()  # Ollama's and LM Studio's folders and servers, asked while nothing else waits
    stored = store_rows(found, args.ctx, memory)
    if args.json:
        for row in rows + stored:
            out.write(json.dumps(row) + "\n")
        for looked in found.looked:  # stdout stays one row per line; what went wrong goes beside it
            if looked.state == "failed":
                print(f"fastslow: note: {SOURCES[looked.source]}: {looked.message}", file=sys.stderr)
        return EXIT_OK
    headers = ["model", "params", "quant", "size", "thinking", "where", "fit"]
    table = [[row[h] if h != "size" else gib(row["size_bytes"]) for h in headers] for row in rows]
    table = [[str(v) if v is not None else "—" for v in line] for line in table]
    out.write(_columns(headers, table) + "\n")
    out.write(_store_sections(stored, found))
    out.write(f"\nfit at {args.ctx:,} context; {gib(memory.ram_available)} RAM available.\n")
    return EXIT_OK


def _store_sections(rows: list[dict], found: Discovery) -> str:
    """A section per store or server that exists here, a line for one that failed, then where nothing was."""
    text, absent = "", {}
    here = {looked.source for looked in found.looked if looked.state != "absent"}
    for looked in found.looked:
        label = f"{SOURCES[looked.source]} ({looked.where})"
        if looked.state == "absent":  # the service's folder beside a user's own is no news; none of them is
            if looked.source not in here:
                absent.setdefault(looked.source, []).append(looked.where)
            continue
        if looked.state == "failed":
            text += f"\n{label}: {looked.message}\n"
            continue
        mine = [r for r in rows if r["source"] == looked.source and r["store"] == looked.where]
        headers = ["model", "params", "quant", "size", "fit"]
        table = [[str(r[h]) if r[h] is not None else "—" for h in headers[:3]]
                 + [gib(r["size_bytes"]), "unusable (below)" if r["fit"].startswith("unusable") else r["fit"]]
                 for r in mine]
        lines = _columns(headers, table).splitlines() if mine else ["no models"]
        lines += [f"  {r['model']}: {r['fit_detail']}" for r in mine if r["fit"].startswith("unusable")]
        text += f"\n{label}\n" + "\n".join(line.rstrip() for line in lines) + "\n"
    if any(r["path"] for r in rows):
        text += "\n-m takes these by name (the model column) or by path; served models are listed, not run yet.\n"
    if absent:
        text += "\nnot here:\n" + "".join(
            f"  {SOURCES[source]}: {'not running at' if source.endswith('-server') else 'no folder at'} "
            f"{' or '.join(where)}\n" for source, where in absent.items())
    return text


def _resolve(name: str, **options) -> ModelSpec:
    """catalog.resolve, once a store name (ollama:qwen3:1.7b, lmstudio:<publisher>/<file>) is its GGUF's path."""
    found = lookup(name)
    if found is None:
        return resolve(name, **options)
    return replace(resolve(str(found.path), **options), name=found.ref)

if __name__ == "__main__":
    sys.exit(main())
