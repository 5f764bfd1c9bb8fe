"""Talking to an OpenAI-compatible server (llama-server, vLLM, SGLang, Ollama, LM Studio): its base URL,
a JSON GET, and a streamed chat completion read as server-sent events.

Stdlib only (http.client): the worker imports nothing large for a served model, and we control the
socket, so a cancel can shut it at once (EventStream.close) and a silent server is a timeout, not a hang.
Every failure is an EngineError with one sentence naming the server and what to do; the API key goes
in the Authorization header and nowhere else (not in a message, a repr or the URL).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlsplit

from app.engines.types import EngineError, now

TIMEOUT_ENV = "FASTSLOW_REMOTE_TIMEOUT_S"  # the longest silence allowed, for a slow server or a long prompt


@dataclass(frozen=True)
class Endpoint:
    """A server's base URL, checked and taken apart once."""

    url: str  # normalised: "http://127.0.0.1:8080/v1", no trailing slash
    secure: bool
    host: str
    port: int
    prefix: str  # the path every call goes under: "/v1"
    api_key: str | None = field(default=None, repr=False)  # never printed

    @property
    def where(self) -> str:
        """The host as a pane names it ("gpu-box:8000")."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 10.0
    # A server may be silent a long while before its first byte: loading a model, or evaluating a long
    # prompt on a busy GPU. Past this, the run ends with a sentence saying so.
    idle_s: float = 300.0

    @classmethod
    def from_env(cls) -> "Timeouts":
        raw = os.environ.get(TIMEOUT_ENV, "").strip()
        try:
            idle = float(raw) if raw else cls.idle_s
        except ValueError:
            idle = cls.idle_s
        idle = idle if idle > 0 else cls.idle_s
        return cls(connect_s=min(cls.connect_s, idle), idle_s=idle)


EXAMPLE_URL = "http://127.0.0.1:8080/v1"


def endpoint(url: str, api_key: str | None = None) -> Endpoint:
    """The URL's shape checked, no network; EngineError (kind "bad_url") in one sentence if it is wrong.
    An empty path becomes /v1, where every OpenAI-compatible server serves."""
    text = (url or "").strip()
    bad = lambda why: EngineError(f"the server URL {text!r} {why}, e.g. {EXAMPLE_URL}", kind="bad_url")  # noqa: E731
    if not text or any(c.isspace() for c in text):
        raise bad("is empty or has spaces")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise bad("must start with http:// or https://")
    if parts.username or parts.password:  # it would be written to settings and logs with the URL
        raise EngineError("the server URL must not carry a user or password: keep the API key in the keyring "
                          f"(keyring set fastslow {parts.scheme}://{parts.hostname}…) or FASTSLOW_API_KEY",
                          kind="bad_url")
    try:
        port = parts.port
    except ValueError:
        raise bad("has a port that is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise bad("names no host")
    if parts.query or parts.fragment:
        raise bad("must not have a query or fragment")
    prefix = parts.path.rstrip("/") or "/v1"
    secure = parts.scheme == "https"
    port = port or (443 if secure else 80)
    host = parts.hostname
    shown_host = f"[{host}]" if ":" in host else host
    return Endpoint(f"{parts.scheme}://{shown_host}:{port}{prefix}", secure, host, port, prefix, api_key)


def _connection(ep: Endpoint, timeouts: Timeouts) -> http.client.HTTPConnection:
    if ep.secure:
        return http.client.HTTPSConnection(ep.host, ep.port, timeout=timeouts.connect_s,
                                           context=ssl.create_default_context())
    return http.client.HTTPConnection(ep.host, ep.port, timeout=timeouts.connect_s)


def _headers(ep: Endpoint, body: bool) -> dict[str, str]:
    headers = {"Accept": "application/json, text/event-stream", "User-Agent": "fastslow"}
    if body:
        headers["Content-Type"] = "application/json"
    if ep.api_key:
        headers["Authorization"] = f"Bearer {ep.api_key}"
    return headers


def _open(ep: Endpoint, method: str, path: str, body: dict | None, timeouts: Timeouts):
    """Connect, send, and wait for the status line: (connection, response). Raises EngineError."""
    conn = _connection(ep, timeouts)
    return conn, _send(conn, ep, method, path, body, timeouts)


def _send(conn: http.client.HTTPConnection, ep: Endpoint, method: str, path: str, body: dict | None,
          timeouts: Timeouts) -> http.client.HTTPResponse:
    """Connect `conn`, send, and wait for the status line; the response, or EngineError (conn closed)."""
    try:
        try:
            conn.connect()
        except (socket.timeout, TimeoutError):
            raise EngineError(f"{ep.url} did not accept a connection within {timeouts.connect_s:g} s: check the "
                              "host and port, and that no firewall is in the way", kind="timeout") from None
        conn.sock.settimeout(timeouts.idle_s)  # from here on, the longest silence allowed
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, ep.prefix + path, body=payload, headers=_headers(ep, body is not None))
        response = conn.getresponse()
    except EngineError:
        conn.close()
        raise
    except (socket.timeout, TimeoutError):
        conn.close()
        raise silent(ep, timeouts.idle_s) from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise unreachable(ep, exc) from None
    if response.status >= 400:
        detail = _detail(response)
        conn.close()
        raise http_refusal(ep, path, response.status, detail)
    return response


def silent(ep: Endpoint, idle_s: float) -> EngineError:
    return EngineError(f"the server at {ep.url} sent nothing for {idle_s:g} s: it may be overloaded or still "
                       f"loading the model; try again, or allow it longer with {TIMEOUT_ENV}", kind="timeout")


def unreachable(ep: Endpoint, exc: BaseException) -> EngineError:
    if isinstance(exc, ConnectionRefusedError):
        return EngineError(f"nothing answers at {ep.url} (connection refused): is the server running, on that "
                           "port?", kind="unreachable")
    if isinstance(exc, socket.gaierror):
        return EngineError(f"the host {ep.host!r} of {ep.url} cannot be found: check the URL", kind="unreachable")
    if isinstance(exc, ssl.SSLError):
        return EngineError(f"the TLS handshake with {ep.url} failed ({exc.reason or exc}): is it http rather than "
                           "https?", kind="unreachable")
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine)):
        return EngineError(f"the server at {ep.url} closed the connection without an answer: is it an "
                           "OpenAI-compatible server, and is it still running?", kind="unreachable")
    return EngineError(f"could not reach {ep.url}: {exc}", kind="unreachable")


def http_refusal(ep: Endpoint, path: str, status: int, detail: str) -> EngineError:
    said = f": {detail}" if detail else ""
    if status in (401, 403):
        key = "the API key" if ep.api_key else "a request without an API key"
        return EngineError(f"the server at {ep.url} refused {key} (HTTP {status}): store the right key with "
                           f"`keyring set fastslow {ep.url}` or set FASTSLOW_API_KEY", kind="refused_key")
    if status == 404:
        return EngineError(f"the server at {ep.url} has no {ep.prefix}{path} (HTTP 404{said}): an "
                           "OpenAI-compatible base URL usually ends in /v1", kind="not_found")
    return EngineError(f"the server at {ep.url} answered HTTP {status} to {ep.prefix}{path}{said}",
                       kind="server_error")


def _detail(response: http.client.HTTPResponse) -> str:
    """The server's own words for a refusal, short: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}."""
    try:
        raw = response.read(4096).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    try:
        data = json.loads(raw)
    except ValueError:
        return " ".join(raw.split())[:200]
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", ""))
        if isinstance(error, dict):
            error = error.get("message", "")
        return " ".join(str(error).split())[:200]
    return ""


def get_json(ep: Endpoint, path: str, timeouts: Timeouts) -> tuple[Any, float]:
    """GET `path` under the base URL: (its JSON, seconds from sending to the whole answer)."""
    t0 = now()
    conn, response = _open(ep, "GET", path, None, timeouts)
    try:
        raw = response.read()
    except (socket.timeout, TimeoutError):
        raise silent(ep, timeouts.idle_s) from None
    except (OSError, http.client.HTTPException) as exc:
        raise unreachable(ep, exc) from None
    finally:
        conn.close()
    try:
        return json.loads(raw), now() - t0
    except ValueError:
        raise EngineError(f"the server at {ep.url} answered {ep.prefix}{path} with something that is not JSON: "
                          "is it an OpenAI-compatible server?", kind="server_error") from None


class EventStream:
    """One streamed request's server-sent events: `events()` yields (arrival time, JSON) for each
    `data:` line until [DONE], once start() has sent the request; close() shuts the socket from any
    thread, ending a blocked read (or the wait for the first byte) at once."""

    def __init__(self, ep: Endpoint, path: str, body: dict, timeouts: Timeouts) -> None:
        self.ep, self.timeouts, self._path, self._body = ep, timeouts, path, body
        self._conn = _connection(ep, timeouts)  # made before any I/O, so close() can reach it at once
        self._response: http.client.HTTPResponse | None = None
        self.done = False  # [DONE] came: the server ended the stream itself

    def start(self) -> None:
        """Connect, send the request, and wait for the server's status line (EngineError if refused)."""
        self._response = _send(self._conn, self.ep, "POST", self._path, self._body, self.timeouts)
        kind = (self._response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "text/event-stream":  # a proxy's page, or a server that ignores "stream": true
            self._conn.close()
            raise EngineError(f"the server at {self.ep.url} answered {self.ep.prefix}{self._path} without streaming "
                              f"(Content-Type: {kind or 'none'}): a pane needs a server that streams chat completions",
                              kind="server_error")

    def events(self) -> Iterator[tuple[float, dict]]:
        while True:
            try:
                line = self._response.readline()
            except (socket.timeout, TimeoutError):
                raise silent(self.ep, self.timeouts.idle_s) from None
            except (OSError, ValueError, http.client.HTTPException):
                line = b""  # reset, cut short, or closed by a cancel: the caller says which
            t = now()  # when it arrived here: TTFT and tokens/s are this side's figures
            if not line:
                return  # ended without [DONE]: the caller decides whether that was a loss
            text = line.decode("utf-8", "replace").strip()
            if not text.startswith("data:"):
                continue  # a blank separator, a comment (": ping"), an event name
            data = text[5:].strip()
            if data == "[DONE]":
                self.done = True
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                continue  # a line we cannot read is skipped, not fatal
            if isinstance(chunk, dict) and chunk.get("error"):
                error = chunk["error"]
                message = error.get("message", "") if isinstance(error, dict) else str(error)
                raise EngineError(f"the server at {self.ep.url} stopped the reply: {' '.join(message.split())[:200]}",
                                  kind="server_error")
            if isinstance(chunk, dict):
                yield t, chunk

    def close(self) -> None:
        """Shut the connection now (a cancel): the server sees the client go and stops generating."""
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._conn.close()
