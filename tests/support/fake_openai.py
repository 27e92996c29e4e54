"""A small OpenAI-compatible chat completions server for tests (standard library only).

Start it, point the real ``openai`` client at it, and count what reaches "the LLM"::

    with FakeOpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        reply = client.chat.completions.create(model="m", messages=messages)
        assert reply.choices[0].message.content == "answer #1 to: hi"
        assert server.calls == 1

``POST /v1/chat/completions``, ``/v1/embeddings`` (see ``tests/support/fake_embeddings.py``) and
``/v1/responses`` (see ``tests/support/fake_responses.py``) are served; every other path answers an
OpenAI-style 404. ``calls`` and ``requests`` count the requests of every path.

Answers are deterministic and carry the server's call number, so a cached answer is
distinguishable from a fresh one: call N answers ``"answer #N to: <last user message>"``
(choice ``i > 0`` of ``n`` says ``"answer #N (choice i) to: ..."``).  The request decides
the shape of the reply:

* ``tools`` (unless ``tool_choice`` is ``"none"``): one call of the first function tool (or of
  the one named by ``tool_choice``), ``content`` null, finish_reason ``"tool_calls"``; its JSON
  ``arguments`` fill each schema property by type (string: the prompt, integer: N, ...).
* ``max_tokens`` / ``max_completion_tokens`` below 5: the answer is cut to that many words and
  finish_reason is ``"length"``.
* ``response_format={"type": "json_object"}``: the content is a JSON object string.
* ``stream=True``: Server-Sent Events over chunked transfer encoding; the word-sized content
  deltas concatenate to exactly the non-streamed content; tool-call arguments arrive in several
  deltas; ``stream_options={"include_usage": True}`` adds a final chunk with empty ``choices``
  and ``usage``; the stream ends with ``data: [DONE]``.

Failure knobs, all thread-safe and cleared by :meth:`FakeOpenAIServer.reset`:

* :meth:`FakeOpenAIServer.fail_next` makes the next requests answer an HTTP error status.  The
  ``openai`` client retries 408/409/429/5xx twice by default (with a backoff of about half a
  second), so tests that count calls must build clients with ``max_retries=0``.  The client
  raises the status's ``openai.APIStatusError`` subclass, e.g. ``openai.InternalServerError``
  for 500 or ``openai.RateLimitError`` for 429.
* :meth:`FakeOpenAIServer.break_stream_next` makes the next streamed response send a few chunks
  and then drop the connection without finishing the chunked body.  The client yields those
  chunks and then raises ``openai.APIConnectionError`` from its iterator (sync and async).
* :attr:`FakeOpenAIServer.delay` waits before answering (a slow LLM; combine with the client's
  ``timeout=`` to get ``openai.APITimeoutError``); :attr:`FakeOpenAIServer.chunk_delay` waits
  before each streamed event, so a test can abandon a stream halfway.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol

JSONDict = dict[str, Any]

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
SYSTEM_FINGERPRINT = "fp_fake_openai"
_LENGTH_LIMIT = 5  # max_tokens below this cuts the answer short (finish_reason "length")
_ARGUMENT_PIECE = 8  # characters of tool-call arguments per streamed delta
_WORD = re.compile(r"\S*\s*")


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after_ms: float | None


@dataclass(frozen=True)
class _Admission:
    """What the server decided for one chat completions request."""

    call: int
    failure: _Failure | None
    break_after: int | None


@dataclass(frozen=True)
class _Reply:
    """One choice: either text content or a single tool call."""

    content: str | None
    tool_call: JSONDict | None
    finish_reason: str
    tokens: int


def sse_data(chunks: list[JSONDict]) -> list[str]:
    """Server-Sent Events of ``data:`` lines only, ended by ``data: [DONE]`` (OpenAI's style)."""
    return [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]


class Route(Protocol):
    """What a path answers: a JSON body, or the text of its Server-Sent Events."""

    def answer(self, body: JSONDict, call: int) -> JSONDict: ...

    def stream(self, body: JSONDict, call: int) -> list[str]: ...


class _ChatCompletions:
    def answer(self, body: JSONDict, call: int) -> JSONDict:
        return _completion(body, call)

    def stream(self, body: JSONDict, call: int) -> list[str]:
        return sse_data(_stream_chunks(body, call))


def _openai_routes() -> dict[str, Route]:
    from tests.support.fake_embeddings import Embeddings
    from tests.support.fake_responses import Responses

    return {
        CHAT_COMPLETIONS_PATH: _ChatCompletions(),
        "/v1/embeddings": Embeddings(),
        "/v1/responses": Responses(),
    }


class FakeOpenAIServer:
    """An OpenAI-compatible HTTP server on a free loopback port, run in a daemon thread."""

    base_path = "/v1"
    """What `base_url` adds to the server's address (the client posts below it)."""

    def routes(self) -> dict[str, Route]:
        """The paths served, and how each answers."""
        return _openai_routes()

    def error_body(self, message: str, kind: str, code: str | None) -> JSONDict:
        """The JSON body of an error answer."""
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def __init__(self) -> None:
        self.delay: float = 0.0
        """Seconds to wait before answering each chat completions request."""
        self.chunk_delay: float = 0.0
        """Seconds to wait before sending each streamed event."""
        self._lock = threading.Lock()
        self._calls = 0
        self._requests: list[JSONDict] = []
        self._failures: deque[_Failure] = deque()
        self._breaks: deque[int] = deque()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("FakeOpenAIServer is already running")
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        httpd.routes = self.routes()
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections (idempotent)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The URL to pass as ``base_url`` to the openai client, e.g. ``http://127.0.0.1:PORT/v1``."""
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running; call start() first")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{self.base_path}"

    # -- observation and control ---------------------------------------------------------------

    @property
    def calls(self) -> int:
        """How many chat completions requests arrived (failed and broken ones included)."""
        with self._lock:
            return self._calls

    @property
    def requests(self) -> list[JSONDict]:
        """A copy of the JSON bodies of the chat completions requests, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget calls and requests and cancel pending failures and stream breaks."""
        with self._lock:
            self._calls = 0
            self._requests.clear()
            self._failures.clear()
            self._breaks.clear()

    def fail_next(
        self, status: int = 500, times: int = 1, *, retry_after_ms: float | None = None
    ) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` and an OpenAI error body.

        ``retry_after_ms`` adds a ``retry-after-ms`` header, which the openai client obeys
        instead of its own backoff (handy for fast retry tests).
        """
        with self._lock:
            self._failures.extend([_Failure(status, retry_after_ms)] * times)

    def break_stream_next(self, after_chunks: int = 2) -> None:
        """Make the next streamed response drop the connection after ``after_chunks`` chunks."""
        with self._lock:
            self._breaks.append(after_chunks)

    # -- used by the request handler -----------------------------------------------------------

    def _admit(self, body: JSONDict) -> _Admission:
        with self._lock:
            self._calls += 1
            self._requests.append(body)
            failure = self._failures.popleft() if self._failures else None
            broken = failure is None and bool(body.get("stream")) and bool(self._breaks)
            return _Admission(self._calls, failure, self._breaks.popleft() if broken else None)

    def _track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; returns False if the server is stopping."""
        return seconds <= 0 or not self._stopping.wait(seconds)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: FakeOpenAIServer
    routes: dict[str, Route]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops its keep-alive connection is no error of the server's."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, open_=False)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            self._not_found()
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send_error(400, "We could not parse the JSON body of your request.")
            return
        owner = self.server.owner
        admission = owner._admit(body)
        try:
            if not owner._wait(owner.delay):
                self.close_connection = True
            elif admission.failure is not None:
                self._send_failure(admission.failure, admission.call)
            elif body.get("stream"):
                self._send_stream(admission, route.stream(body, admission.call))
            else:
                self._send_json(200, route.answer(body, admission.call), admission.call)
        except OSError:  # the client went away (timeout, abandoned stream)
            self.close_connection = True

    def do_GET(self) -> None:
        self._not_found()

    def do_DELETE(self) -> None:
        self._not_found()

    def _not_found(self) -> None:
        message = f"Invalid URL ({self.command} {self.path})"
        self._send_error(404, message, code="unknown_url")

    def _send_failure(self, failure: _Failure, call: int) -> None:
        kind = "server_error" if failure.status >= 500 else "invalid_request_error"
        message = f"Injected failure: HTTP {failure.status}"
        headers = {}
        if failure.retry_after_ms is not None:
            headers["retry-after-ms"] = str(failure.retry_after_ms)
        self._send_error(failure.status, message, kind=kind, call=call, headers=headers)

    def _send_error(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        call: int = 0,
        headers: dict[str, str] | None = None,
    ) -> None:
        error = self.server.owner.error_body(message, kind, code)
        self._send_json(status, error, call, headers)

    def _send_json(
        self,
        status: int,
        payload: JSONDict,
        call: int = 0,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_fake_{call}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_stream(self, admission: _Admission, events: list[str]) -> None:
        owner = self.server.owner
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_fake_{admission.call}")
        self.end_headers()
        for sent, event in enumerate(events):
            if sent == admission.break_after or not owner._wait(owner.chunk_delay):
                # Drop the connection without the terminating zero-length chunk.
                self.close_connection = True
                return
            self._write_chunk(event.encode())
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


# -- building answers ------------------------------------------------------------------------


def _text(content: object) -> str:
    """The text of a message ``content``: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def _messages(body: JSONDict) -> list[JSONDict]:
    messages = body.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _prompt(body: JSONDict) -> str:
    """The text of the last user message."""
    users = [m for m in _messages(body) if m.get("role") == "user"]
    return _text(users[-1].get("content")) if users else ""


def _tokens(text: str) -> int:
    """A plausible token count: about four characters per token."""
    return len(text) // 4 + 1


def _words(text: str) -> list[str]:
    """Split ``text`` into word pieces (trailing whitespace kept) that join back to ``text``."""
    return [piece for piece in _WORD.findall(text) if piece]


def _chosen_tool(body: JSONDict) -> JSONDict | None:
    """The function tool the fake model calls, or None to answer with text."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or choice == "none":
        return None
    functions = [
        tool["function"]
        for tool in tools
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        named = [f for f in functions if f.get("name") == choice["function"].get("name")]
        functions = named or functions
    return functions[0] if functions else None


def _arguments(function: JSONDict, prompt: str, call: int) -> str:
    """JSON arguments with one plausible value per property of the tool's parameter schema."""
    parameters = function.get("parameters")
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    by_type: dict[str, object] = {
        "integer": call,
        "number": float(call),
        "boolean": True,
        "array": [],
        "object": {},
    }
    values: dict[str, object] = {}
    for name, schema in (properties or {}).items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        values[name] = by_type.get(kind, prompt) if isinstance(kind, str) else prompt
    return json.dumps(values)


def _length_limit(body: JSONDict) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and value < _LENGTH_LIMIT:
            return max(value, 1)
    return None


def _replies(body: JSONDict, call: int) -> list[_Reply]:
    """The ``n`` choices the fake model answers for request number ``call``."""
    prompt = _prompt(body)
    tool = _chosen_tool(body)
    limit = _length_limit(body)
    response_format = body.get("response_format")
    wants_json = isinstance(response_format, dict) and response_format.get("type") == "json_object"
    n = body.get("n")
    replies: list[_Reply] = []
    for index in range(n if isinstance(n, int) and n > 0 else 1):
        if tool is not None:
            arguments = _arguments(tool, prompt, call)
            function = {"name": str(tool.get("name", "")), "arguments": arguments}
            tool_call = {"id": f"call_{call}_{index}", "type": "function", "function": function}
            replies.append(_Reply(None, tool_call, "tool_calls", _tokens(arguments)))
            continue
        label = f"#{call}" if index == 0 else f"#{call} (choice {index})"
        text = f"answer {label} to: {prompt}"
        if wants_json:
            text = json.dumps({"answer": text, "call": call})
        if limit is None:
            replies.append(_Reply(text, None, "stop", _tokens(text)))
        else:
            replies.append(_Reply("".join(_words(text)[:limit]).rstrip(), None, "length", limit))
    return replies


def _usage(body: JSONDict, replies: list[_Reply]) -> JSONDict:
    messages = _messages(body)
    prompt_tokens = sum(_tokens(_text(m.get("content"))) + 3 for m in messages)
    completion_tokens = sum(reply.tokens for reply in replies)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _envelope(body: JSONDict, call: int, kind: str) -> JSONDict:
    return {
        "id": f"chatcmpl-{call}",
        "object": kind,
        "created": int(time.time()),
        "model": str(body.get("model", "")),
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "service_tier": "default",
    }


def _completion(body: JSONDict, call: int) -> JSONDict:
    """A ``chat.completion`` object answering request number ``call``."""
    replies = _replies(body, call)
    choices = []
    for index, reply in enumerate(replies):
        message: JSONDict = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_call is not None:
            message["tool_calls"] = [reply.tool_call]
        choice = {"index": index, "message": message, "logprobs": None}
        choices.append({**choice, "finish_reason": reply.finish_reason})
    envelope = _envelope(body, call, "chat.completion")
    return {**envelope, "choices": choices, "usage": _usage(body, replies)}


def _stream_chunks(body: JSONDict, call: int) -> list[JSONDict]:
    """The ``chat.completion.chunk`` objects streaming the answer to request ``call``."""
    replies = _replies(body, call)
    envelope = _envelope(body, call, "chat.completion.chunk")
    stream_options = body.get("stream_options")
    include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))

    def chunk(index: int, delta: JSONDict, finish_reason: str | None = None) -> JSONDict:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        extra: JSONDict = {"usage": None} if include_usage else {}
        return {**envelope, "choices": [choice], **extra}

    chunks: list[JSONDict] = []
    for index, reply in enumerate(replies):
        if reply.tool_call is None:
            chunks.append(chunk(index, {"role": "assistant", "content": "", "refusal": None}))
            chunks += [chunk(index, {"content": word}) for word in _words(reply.content or "")]
        else:
            function = reply.tool_call["function"]
            head = {**reply.tool_call, "index": 0, "function": {**function, "arguments": ""}}
            delta = {"role": "assistant", "content": None, "tool_calls": [head]}
            chunks.append(chunk(index, delta))
            arguments = function["arguments"]
            for start in range(0, len(arguments), _ARGUMENT_PIECE):
                piece = {"arguments": arguments[start : start + _ARGUMENT_PIECE]}
                chunks.append(chunk(index, {"tool_calls": [{"index": 0, "function": piece}]}))
        chunks.append(chunk(index, {}, reply.finish_reason))
    if include_usage:
        chunks.append({**envelope, "choices": [], "usage": _usage(body, replies)})
    return chunks
