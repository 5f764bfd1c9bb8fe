"""The trained router: logistic regression over the heuristic's features and hashed words.

Its weights are data (classifier.json), written by `python -m app.eval.train_router` from prompts in
the repository; nothing is downloaded. A decision is the prompt's kind
(routing/concepts.py, ~1.7 ms on a long question) and a sparse dot product (tens of microseconds).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from functools import lru_cache
from pathlib import Path

from app.routing.heuristic import _REASONS, Decision, features, make_decision

WEIGHTS_PATH = Path(__file__).with_name("classifier.json")
WORDING_THINK = "worded like the questions it learned that need thought"
WORDING_DIRECT = "worded like the questions it learned that a direct answer serves"
_WORD = re.compile(r"[a-z]+|\d+")


def tokens(prompt: str) -> list[str]:
    """Words and adjacent pairs, lowercased; digits collapse to '#': the value of a number says little."""
    words = ["#" if w.isdigit() else w for w in _WORD.findall(prompt.lower())]
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def bucket(token: str, buckets: int) -> int:
    return zlib.crc32(token.encode("utf-8")) % buckets  # crc32, not hash(): the same in every process


def encode(prompt: str, buckets: int) -> tuple[dict[str, float], dict[int, str]]:
    """The named features, and each hashed bucket that fired with a token that fired it."""
    named = {name: value for name, value in features(prompt).items() if value}
    hashed: dict[int, str] = {}
    for token in tokens(prompt):
        hashed.setdefault(bucket(token, buckets), token)
    return named, hashed


@lru_cache(maxsize=4)
def load_weights(path: Path = WEIGHTS_PATH) -> dict:
    return ready(json.loads(path.read_text(encoding="utf-8")))


def ready(weights: dict) -> dict:
    """Weights as stored (JSON: string keys) -> as used (bucket numbers as keys)."""
    return {**weights, "tokens": {int(k): v for k, v in weights["tokens"].items()}}


def score(prompt: str, weights: dict | None = None) -> float:
    w = weights or load_weights()
    named, hashed = encode(prompt, w["buckets"])
    return _sigmoid(_logit(w, named, hashed))


def decide(prompt: str, threshold: float | None = None, budgets: tuple[int, int] = (256, 1024),
           weights: dict | None = None) -> Decision:
    """Route one prompt; reasons name the kinds and cues that weighed most (never a word piece)."""
    w = weights or load_weights()
    named, hashed = encode(prompt, w["buckets"])
    contributions = [(_REASONS[n].format(n=v), w["features"].get(n, 0.0) * v) for n, v in named.items()]
    # The words weigh together, as one reason in words: a word piece ("the word 'monday'") tells a
    # person nothing about why.
    words = sum(w["tokens"].get(b, 0.0) for b in hashed)
    contributions.append((WORDING_THINK if words > 0 else WORDING_DIRECT, words))
    return make_decision(_sigmoid(_logit(w, named, hashed)), contributions,
                         w["threshold"] if threshold is None else threshold, budgets)


def _logit(w: dict, named: dict[str, float], hashed: dict[int, str]) -> float:
    return (w["bias"] + sum(w["features"].get(n, 0.0) * v for n, v in named.items())
            + sum(w["tokens"].get(b, 0.0) for b in hashed))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 40.0), -40.0)))
