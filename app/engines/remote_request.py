"""What a served model is asked, in the words each server takes: the chat request's JSON body, the
server's kind from its model list, the API key's lookup, and the `-m remote:<url>#<model>` name.

Servers differ only in how they take the thinking switch: vLLM, SGLang and llama-server pass
`chat_template_kwargs: {"enable_thinking": …}` to the template, Ollama takes `think`, gpt-oss takes
`reasoning_effort`. None of them holds a thinking budget of a number of tokens: `max_tokens` caps the
whole reply, and `budget_note` says so plainly instead of pretending.
"""

from __future__ import annotations

import os

from app.engines.types import EngineError, GenerationRequest

REMOTE_PREFIX = "remote:"
KEYRING_SERVICE = "fastslow"  # the key is kept under (service "fastslow", username = the base URL)
KEY_ENV = "FASTSLOW_API_KEY"

# What each server writes in /v1/models' `owned_by`: how it is told apart without another call.
SERVER_KINDS = {"vllm": "vLLM", "sglang": "SGLang", "llamacpp": "llama-server", "library": "Ollama",
                "ollama": "Ollama", "organization_owner": "LM Studio", "me": "llama-cpp-python"}
GENERIC = "OpenAI-compatible server"


def parse_remote_name(text: str) -> tuple[str, str]:
    """"remote:http://gpu-box:8000/v1#Qwen/Qwen3-8B" → (base URL, model id). EngineError, one sentence,
    when the model is missing (the URL's shape is the preflight's to check)."""
    rest = text.strip()[len(REMOTE_PREFIX):] if text.strip().lower().startswith(REMOTE_PREFIX) else text.strip()
    url, _, model = rest.partition("#")
    if not url.strip() or not model.strip():
        raise EngineError(f"a served model is named remote:<base URL>#<model id>, e.g. "
                          f"remote:http://127.0.0.1:8080/v1#qwen3-8b (the id as GET /v1/models lists it), not {text!r}",
                          kind="unknown_model")
    return url.strip(), model.strip()


def api_key(base_url: str) -> str | None:
    """The API key for `base_url`: $FASTSLOW_API_KEY, else the OS keyring's (service "fastslow",
    username the base URL); None when neither has one. Read in the worker at load, so the key never
    crosses the pipe, the settings file or the log."""
    key = os.environ.get(KEY_ENV, "").strip()
    if key:
        return key
    try:
        import keyring
        import keyring.errors
    except ImportError:  # the `remote` extra is not installed: no keyring, the environment only
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, base_url) or None
    except (keyring.errors.KeyringError, RuntimeError):  # no usable keyring on this machine
        return None


def server_kind(models: object) -> str:
    """The server's kind from its /v1/models answer ("vLLM", "Ollama"…), else GENERIC."""
    rows = models.get("data") if isinstance(models, dict) else None
    for row in rows if isinstance(rows, list) else ():
        kind = SERVER_KINDS.get(str(row.get("owned_by", "")).lower()) if isinstance(row, dict) else None
        if kind:
            return kind
    return GENERIC


def served_ids(models: object) -> list[str]:
    rows = models.get("data") if isinstance(models, dict) else None
    return [str(r["id"]) for r in rows if isinstance(r, dict) and "id" in r] if isinstance(rows, list) else []


def is_gpt_oss(model: str) -> bool:
    return "gpt-oss" in model.lower()


# Families that think in <think> tags, by a served model's id: servers other than llama-server do not
# show the chat template a local model's style is read from. An id none of these match is taken not
# to think, so a Thinking pane scaffolds it (prompts it to reason first) rather than waiting on tags
# that never come; a spec's `thinking` overrides the guess.
THINKING_FAMILIES = ("qwen3", "qwq", "deepseek-r1", "r1-distill", "phi-4-reasoning", "magistral", "exaone-deep",
                     "think", "reason", "granite-3.2", "smallthinker", "openthinker", "skywork-o1")


def guess_style(model: str) -> str:
    """A served model's thinking style from its id: "harmony" (gpt-oss), "think-tags" or "none"."""
    name = model.lower()
    if is_gpt_oss(name):
        return "harmony"
    return "think-tags" if any(family in name for family in THINKING_FAMILIES) else "none"


def effort(budget: int | None) -> str:
    """gpt-oss's only knob on its thought: an effort, not a count. Budgets map onto it coarsely."""
    if budget is None:
        return "medium"
    return "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


def chat_body(kind: str, model: str, request: GenerationRequest, stop: tuple[str, ...] = ()) -> dict:
    """The streamed chat completion's JSON body for this server."""
    s = request.sampling
    body: dict = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},  # the server's token counts in its last chunk
        "max_tokens": request.max_tokens,
        "temperature": s.temperature, "top_p": s.top_p, "seed": request.seed,
        # Not OpenAI's, but what llama-server, vLLM, SGLang and Ollama read; others ignore them.
        "top_k": s.top_k, "min_p": s.min_p,
    }
    if s.repeat_penalty != 1.0:
        body.update(repeat_penalty=s.repeat_penalty, repetition_penalty=s.repeat_penalty)
    if stop or request.stop:
        body["stop"] = list(dict.fromkeys(stop + request.stop))
    if request.logprobs:
        body["logprobs"] = True
    if is_gpt_oss(model):
        if request.thinking is not None or request.thinking_budget is not None:
            body["reasoning_effort"] = "low" if request.thinking is False else effort(request.thinking_budget)
    elif request.thinking is not None:
        if kind == "Ollama":
            body["think"] = request.thinking
        body["chat_template_kwargs"] = {"enable_thinking": request.thinking}
    return body


def budget_note(model: str, request: GenerationRequest) -> str:
    """What the server does with the request's thinking budget, in a sentence; "" without one. Each
    run carries it (Finished.limits_note → ThoughtControl.thought_note), shown with the run."""
    budget = request.thinking_budget
    if budget is None:
        return ""
    if is_gpt_oss(model):
        return (f"the thinking budget of {budget} tokens was sent as reasoning_effort={effort(budget)}: the "
                f"server holds no count of thought tokens, and max tokens ({request.max_tokens}) caps the whole reply")
    return (f"the server cannot hold a thinking budget ({budget} tokens): max tokens ({request.max_tokens}) "
            "caps only the whole reply, thought and answer together")
