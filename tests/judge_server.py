"""A real local chat-completions endpoint for tests and benchmarks of the LLM judge.

Scripted per test: ``server.script(...)`` queues behaviours, consumed one per request;
when the queue is empty, ``server.default`` answers. A behaviour is a callable taking
the request's parsed JSON body (None if it was not JSON) and returning
``(status, headers, body)``; the body may be bytes, str, or a dict/list sent as JSON.
The factories below build the usual ones::

    judge_server.script(malformed_json(), ok(pass_=False, score=0.2))
    judge_server.default = lambda request_json: (200, {}, completion(...))

Every request is recorded (``server.requests``) before it is answered, so a callable
behaviour can look at the headers of the request it answers through ``server.requests[-1]``.
"""

import json
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Body = bytes | str | dict | list
Behaviour = Callable[[Any], tuple[int, dict[str, str], Body]]

DEFAULT_USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


# What the request being handled may look at: the server's stop event (so slow answers end with the test).
_handling = threading.local()


class Disconnect(Exception):
    """Raised by a behaviour to close the connection without answering."""


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = None  # the parsed body, None if it was not JSON


# Behaviours ----------------------------------------------------------------


def completion(content: str | None, *, usage: dict | None = DEFAULT_USAGE, cost: float | None = None, model: str = ""):
    """A chat-completions answer whose message content is ``content``."""
    envelope: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }
    if usage is not None:
        envelope["usage"] = {**usage, **({"cost": cost} if cost is not None else {})}
    return envelope


def answer(content: str | None, *, usage: dict | None = DEFAULT_USAGE, cost=None, model="judge-test") -> Behaviour:
    """HTTP 200 with ``content`` as the judge's message."""
    envelope = completion(content, usage=usage, cost=cost, model=model)
    return lambda request_json: (200, {}, envelope)


def verdict_json(pass_: bool = True, score: float = 0.9, rationale: str = "Looks right.") -> str:
    return json.dumps({"pass": pass_, "score": score, "rationale": rationale})


def ok(pass_=True, score=0.9, rationale="Looks right.", *, usage=DEFAULT_USAGE, cost=None, model="judge-test"):
    """A well-formed verdict."""
    return answer(verdict_json(pass_, score, rationale), usage=usage, cost=cost, model=model)


def fenced_ok(pass_=True, score=0.9, rationale="Looks right.", *, usage=DEFAULT_USAGE, cost=None, model="judge-test"):
    """A well-formed verdict wrapped in a ```json fence, as chat models like to."""
    content = f"```json\n{verdict_json(pass_, score, rationale)}\n```"
    return answer(content, usage=usage, cost=cost, model=model)


def malformed_json() -> Behaviour:
    """HTTP 200 whose body is not JSON (a proxy's HTML page, a truncated answer)."""
    return lambda request_json: (200, {"Content-Type": "text/html"}, "<html>upstream hiccup {")


def garbage_content(content='{"verdict": "good"}', *, usage=DEFAULT_USAGE) -> Behaviour:
    """A valid envelope whose content is not in the verdict shape."""
    return answer(content, usage=usage)


def no_choices() -> Behaviour:
    return lambda request_json: (200, {}, {"object": "chat.completion", "choices": []})


def status(code: int, body: Body | None = None, headers: dict[str, str] | None = None) -> Behaviour:
    """Any HTTP status, by default with an OpenAI-style error body."""
    payload = body if body is not None else {"error": {"message": f"test error {code}", "type": "test"}}
    return lambda request_json: (code, dict(headers or {}), payload)


def rate_limited(retry_after: float | str | None = 0) -> Behaviour:
    """HTTP 429, with a ``Retry-After`` header unless ``retry_after`` is None."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return status(429, {"error": {"message": "Rate limit reached", "type": "requests"}}, headers)


def slow(seconds: float, then: Behaviour | None = None) -> Behaviour:
    """Wait ``seconds`` before answering like ``then`` (to provoke client timeouts); wakes when the server stops."""
    then = then or ok()

    def behaviour(request_json):
        _handling.stopping.wait(seconds)
        return then(request_json)

    return behaviour


def disconnect() -> Behaviour:
    """Close the connection without answering."""

    def behaviour(request_json):
        raise Disconnect

    return behaviour


# The server ----------------------------------------------------------------


class JudgeServer:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1, on a free port, in a daemon thread."""

    def __init__(self, default: Behaviour | None = None):
        self.default: Behaviour = default or ok()
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The API root to configure as ``base_url``."""
        assert self._httpd is not None, "the server is not running"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *behaviours: Behaviour) -> "JudgeServer":
        """Queue behaviours for the next requests, in order."""
        with self._lock:
            self._queue.extend(behaviours)
        return self

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    def start(self) -> "JudgeServer":
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        # A short poll interval: shutdown() waits up to one interval, once per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="judge-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "JudgeServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that timed out and hung up is expected here; anything else is a bug worth printing.
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(server: JudgeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            server._record(RecordedRequest("POST", self.path, dict(self.headers.items()), raw, parsed))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {}, {"error": {"message": f"no route {self.path}"}})
                return
            _handling.stopping = server._stopping
            try:
                code, headers, body = server._next_behaviour()(parsed)
            except Disconnect:
                self.close_connection = True
                return
            self._send(code, headers, body)

        def do_GET(self):
            server._record(RecordedRequest("GET", self.path, dict(self.headers.items()), b""))
            self._send(404, {}, {"error": {"message": f"no route {self.path}"}})

        def _send(self, code: int, headers: dict[str, str], body: Body) -> None:
            if isinstance(body, dict | list):
                data, content_type = json.dumps(body).encode(), "application/json"
            else:
                data, content_type = (body.encode() if isinstance(body, str) else body), "text/plain"
            try:
                self.send_response(code)
                headers = {"Content-Type": content_type, **headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (timed out) first

        def log_message(self, format, *args):  # quiet: pytest shows failures, not access logs
            pass

    return Handler


@pytest.fixture(name="judge_server")
def judge_server_fixture():
    """The ``judge_server`` fixture: a running ``JudgeServer``, stopped after the test.

    Import ``judge_server_fixture`` into a test module or conftest to use it; the
    function's own name differs from the fixture's so that test arguments named
    ``judge_server`` do not shadow the import (ruff F811).
    """
    with JudgeServer() as server:
        yield server
