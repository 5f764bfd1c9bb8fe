"""What a pane's model picker offers beyond the catalog and the local files, and what a choice loads.

Models other tools keep (Ollama's blobs, LM Studio's files) are picked by their store name
(`ollama:qwen3:1.7b`, `lmstudio:<publisher>/<repo>/<file>`); models a running Ollama or LM Studio
server serves, as `remote:<base URL>#<model id>` on its OpenAI-compatible base (…:11434/v1,
…:1234/v1). These names are what a pane's settings remember: none carries an API key (a URL with a
user or password is refused; the key is read from the keyring or FASTSLOW_API_KEY by the worker).

No Qt here: the window lays these out; `discover` and `served_models` ask the network and are run
off the GUI thread by the caller.
"""

from __future__ import annotations

from dataclasses import replace

from app.catalog import resolve
from app.engines.openai_stream import Timeouts, endpoint, get_json
from app.engines.remote_request import KEY_ENV, KEYRING_SERVICE, REMOTE_PREFIX, api_key, parse_remote_name, served_ids
from app.engines.types import EngineError, ModelSpec
from app.local_stores import LM_STUDIO, LM_STUDIO_SERVER, OLLAMA, OLLAMA_SERVER, SOURCES, Discovery, lookup

PICK_SERVED = "\x00served-model"  # the picker's "Served model…" entry: opens a dialog, names no model
SERVED_LABEL = "Served model…"
LIST_TIMEOUTS = Timeouts(connect_s=3.0, idle_s=5.0)  # the dialog's "List models": a server that hangs is said, soon
KEY_NOTE = (f"No API key is stored by FastSlow: a server that needs one gets it from the keyring "
            f"(keyring set {KEYRING_SERVICE} <base URL>) or from {KEY_ENV}.")


def openai_base(server_url: str) -> str:
    """An Ollama or LM Studio server's OpenAI-compatible base: http://host:11434 → http://host:11434/v1."""
    url = server_url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def remote_name(url: str, model: str) -> str:
    """remote:<base URL>#<model id>, the URL checked (no network) and normalised; EngineError, one
    sentence, for a bad URL or a missing model id."""
    base = endpoint(url).url  # refuses a user or password in the URL, so no key is ever remembered
    model = (model or "").strip()
    if not model:
        raise EngineError("give the model's id as the server lists it (press List models)", kind="unknown_model")
    if "#" in base or any(c.isspace() or not c.isprintable() for c in model):
        raise EngineError(f"the model id {model!r} must be printable and have no spaces", kind="unknown_model")
    return f"{REMOTE_PREFIX}{base}#{model}"


def store_choices(found: Discovery) -> list[tuple[str, str]]:
    """(label, key) for each usable model Ollama or LM Studio keeps, then each one their servers serve;
    each label says where the model comes from."""
    kept, served = [], []
    for model in found.models:
        where = SOURCES.get(model.source, model.source)
        if model.source in (OLLAMA, LM_STUDIO) and model.path is not None and not model.problem and model.ref:
            kept.append((f"{model.name} — {where}", model.ref))
        elif model.source in (OLLAMA_SERVER, LM_STUDIO_SERVER) and model.served:
            served.append((f"{model.name} — {where} ({_host(model.store)})",
                           f"{REMOTE_PREFIX}{openai_base(model.store)}#{model.name}"))
    return kept + served


def label_for(key: str) -> str:
    """How the picker shows a remembered model it has not (yet) found: a served or store model by name."""
    if key.lower().startswith(REMOTE_PREFIX):
        try:
            url, model = parse_remote_name(key)
            return f"{model} — served ({_host(url)})"
        except EngineError:
            return key
    prefix, sep, name = key.partition(":")
    if sep and prefix.lower() in ("ollama", "lmstudio"):
        return f"{name} — {SOURCES[OLLAMA if prefix.lower() == 'ollama' else LM_STUDIO]}"
    return key


def resolve_pick(key: str, **options) -> ModelSpec:
    """What a picker's key loads: a store name becomes its checked GGUF (named by its store name, as
    the CLI's -m does it), anything else is catalog.resolve's (a catalog id, a path, remote:…)."""
    found = lookup(key)
    if found is None:
        return resolve(key, **options)
    return replace(resolve(str(found.path), **options), name=found.ref)


def served_models(url: str) -> tuple[str, list[str]]:
    """(the normalised base URL, the model ids its GET /models lists). Network: call it off the GUI
    thread. EngineError in one sentence when the URL is bad or the server cannot be asked. The key, if
    the keyring or FASTSLOW_API_KEY has one, is sent and kept nowhere."""
    ep = endpoint(url)
    ep = endpoint(url, api_key(ep.url))
    answer, _ = get_json(ep, "/models", LIST_TIMEOUTS)
    ids = [i for i in served_ids(answer) if i.isprintable() and 0 < len(i) <= 300]
    return ep.url, ids


def _host(url: str) -> str:
    try:
        return endpoint(url).where
    except EngineError:
        return url
