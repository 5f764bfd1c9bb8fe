"""Train the classifier router: `python -m app.eval.train_router` rewrites app/routing/classifier.json.

Data, all in the repository. Trained on: the first half of GSM8K's questions, data/router/think.txt
and direct.txt (templated), and data/router/train/<kind>.txt, a file of prompts per kind of prompt
(routing/concepts.py: a proof, code, small talk…), each labelled by the way its kind goes. Held
out, never trained or tuned on: GSM8K's second half and data/router/heldout/<kind>.txt, written
apart from the router and its training prompts; agreement is reported per kind. These labels say
what kind of prompt it is, not what thinking measurably gained a model: that is each model's own
record (routing/evidence.py). `--from-samples` takes a `fastslow eval` samples.jsonl instead and
labels a problem "think" where thinking was right and the direct answer wrong (RouteLLM's
preference labels), for a model where that can be measured.
Deterministic: fixed split, fixed order, full-batch gradient descent; the same data gives the same file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
from pathlib import Path

from app.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from app.eval.suites import GSM8K_PATH, load_suite
from app.routing import concepts, heuristic
from app.routing.classifier import WEIGHTS_PATH, encode, ready
from app.routing.classifier import decide as classifier_decide

DATA = Path(__file__).resolve().parents[2] / "data" / "router"
BUCKETS = 1024
EPOCHS = 300
RATE = 0.1
L2 = 1e-3


def expand(line: str) -> list[str]:
    """'What is {a|b}?' -> ['What is a?', 'What is b?'] (every combination of every brace)."""
    parts = re.split(r"\{([^{}]*)\}", line)
    choices = [[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)]
    return ["".join(combo) for combo in itertools.product(*choices)]


def templated(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [prompt for line in lines if line and not line.startswith("#") for prompt in expand(line)]


Example = tuple[str, int, str]  # prompt, 1 = think / 0 = direct, where it came from


def by_kind(folder: Path) -> list[Example]:
    """Every prompt of folder/<kind>.txt, labelled by the way its kind goes, its source the kind."""
    examples = []
    for kind in concepts.KINDS:
        path = folder / f"{kind.name}.txt"
        if path.exists():
            examples += [(prompt, int(kind.leans == concepts.THINK), kind.name) for prompt in templated(path)]
    return examples


def dataset() -> tuple[list[Example], list[Example]]:
    """(train, holdout)."""
    gsm8k = [p.question for p in load_suite(GSM8K_PATH)]
    half = len(gsm8k) // 2
    train = [(q, 1, "gsm8k") for q in gsm8k[:half]]
    holdout = [(q, 1, "gsm8k") for q in gsm8k[half:]]
    for label, name in ((1, "think.txt"), (0, "direct.txt")):
        train += [(prompt, label, name) for prompt in templated(DATA / name)]
    return train + by_kind(DATA / "train"), holdout + by_kind(DATA / "heldout")


def from_samples(path: Path) -> list[Example]:
    """Preference labels from `fastslow eval` samples with the direct and think policies."""
    by_problem: dict[str, dict[str, bool]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        sample = json.loads(line)
        by_problem.setdefault(sample["problem_id"], {})[sample["policy"]] = sample["correct"]
    questions = {f"{GSM8K_PATH.stem}:{n}": p.question for n, p in enumerate(load_suite(GSM8K_PATH), start=1)}
    labelled = []
    for problem_id, outcome in by_problem.items():
        if "direct" in outcome and "think" in outcome and problem_id in questions:
            labelled.append((questions[problem_id], int(outcome["think"] and not outcome["direct"]), "samples"))
    return labelled


def _step(weight: float, gradient: float, acc: dict, key) -> float:
    acc[key] = acc.get(key, 0.0) + gradient * gradient
    return weight - RATE * gradient / (math.sqrt(acc[key]) + 1e-8)


def train(examples: list[Example]) -> dict:
    names = list(heuristic.features("").keys())
    # Each source weighs the same: GSM8K's 500 questions would otherwise teach "long and numeric
    # means think, anything short means direct", and a short proof or a coding task would go direct.
    per_source = {source: sum(s == source for *_, s in examples) for *_, source in examples}
    encoded = []
    for prompt, label, source in examples:
        named, hashed = encode(prompt, BUCKETS)
        encoded.append((named, list(hashed), label, len(examples) / (len(per_source) * per_source[source])))
    bias, wf, wt = 0.0, dict.fromkeys(names, 0.0), [0.0] * BUCKETS
    acc: dict = {}  # each weight's summed squared gradients
    for _ in range(EPOCHS):
        g_bias, g_f, g_t = 0.0, dict.fromkeys(names, 0.0), [0.0] * BUCKETS
        for named, hashed, label, weight in encoded:
            z = bias + sum(wf[n] * v for n, v in named.items()) + sum(wt[b] for b in hashed)
            error = (1.0 / (1.0 + math.exp(-max(min(z, 40), -40))) - label) * weight
            g_bias += error
            for n, v in named.items():
                g_f[n] += error * v
            for b in hashed:
                g_t[b] += error
        m = len(encoded)
        # AdaGrad: each weight's step shrinks with its own gradient history, so a word seen in a
        # handful of prompts learns as fast as a feature seen in every one (plain gradient descent
        # left the words near zero and "short" decided everything).
        bias = _step(bias, g_bias / m, acc, "bias")
        for n in names:
            wf[n] = _step(wf[n], g_f[n] / m + L2 * wf[n], acc, n)
        for b in range(BUCKETS):
            wt[b] = _step(wt[b], g_t[b] / m + L2 * wt[b], acc, b)
    return {
        "version": 1,
        "buckets": BUCKETS,
        "threshold": 0.5,
        "bias": round(bias, 6),
        "features": {n: round(w, 6) for n, w in wf.items()},
        "tokens": {str(b): round(w, 6) for b, w in enumerate(wt) if abs(w) >= 1e-4},
    }


def accuracy(weights: dict, examples: list[Example], decide) -> dict[str, float]:
    """Agreement with the labels, per source (a single figure would be GSM8K's)."""
    out = {}
    for source in dict.fromkeys(s for *_, s in examples):
        mine = [(p, label) for p, label, s in examples if s == source]
        out[source] = round(sum((decide(p, weights) == "think") == bool(label) for p, label in mine) / len(mine), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.eval.train_router", description=__doc__.splitlines()[0])
    parser.add_argument("--from-samples", type=Path, help="a `fastslow eval` samples.jsonl with direct and think")
    parser.add_argument("--output", type=Path, default=WEIGHTS_PATH)
    args = parser.parse_args(argv)
    train_set, holdout = dataset()
    if args.from_samples:
        train_set = from_samples(args.from_samples)
        if len({label for _, label, _s in train_set}) < 2:
            print("fastslow: those samples never show thinking winning (or never losing): nothing to learn",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
    weights = train(train_set)
    usable = ready(weights)
    ours = accuracy(usable, holdout, lambda p, w: classifier_decide(p, weights=w).route)
    theirs = accuracy(usable, holdout, lambda p, _w: heuristic.decide(p).route)
    weights["trained_on"] = {"examples": len(train_set), "think": sum(label for _, label, _s in train_set),
                             "holdout": len(holdout), "holdout_agreement": ours, "heuristic_holdout_agreement": theirs}
    args.output.write_text(json.dumps(weights, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"trained on {len(train_set)} prompts; held-out agreement with the labels, per source "
          f"({len(holdout)} prompts):")
    for source in ours:
        print(f"  {source:<11} classifier {ours[source]:.1%}   heuristic {theirs[source]:.1%}")
    print(f"wrote {args.output}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
