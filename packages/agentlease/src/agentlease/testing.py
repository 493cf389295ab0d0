"""Helpers for testing code that uses agentlease, offline: a scripted model server and a clock.

`ModelServer` is a real HTTP/1.1 server on the loopback interface that speaks OpenAI chat
completions, streamed or not. Tests queue exact replies with `ModelServer.script`. When the
queue is empty, `default_reply` responds well enough for tool-calling agents, structured output
and LangChain's standard chat model tests:

```python
from agentlease.testing import ModelServer, Reply

with ModelServer() as server:
    server.script(Reply.text("Hello!"), Reply.error(429))
    ...  # point a route's base_url at server.url
```
"""

from __future__ import annotations

import contextlib
import http
import ipaddress
import json
import logging
import math
import re
import socket
import socketserver
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from agentlease.errors import ConfigurationError
from agentlease.messages import ToolCall
from agentlease.providers._http import json_dumps, json_loads

__all__ = [
    "FrozenClock",
    "ModelServer",
    "RecordedRequest",
    "Reply",
    "Responder",
    "default_reply",
]

logger = logging.getLogger(__name__)

_CREATED = 1_700_000_000
"""The fixed `created` timestamp of every response, so that responses are deterministic."""

_JOIN_TIMEOUT = 5.0
"""Seconds `ModelServer.stop` waits for each connection thread after closing its socket."""


class FrozenClock:
    """A settable clock for code that takes `clock=time.time`, moved only by `advance` and `set`.

    Args:
        start: The initial time in seconds since the epoch.

    Example:
        ```python
        clock = FrozenClock(1000.0)
        clock.advance(30)
        assert clock() == 1030.0
        ```
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time

    def __repr__(self) -> str:
        return f"FrozenClock({self.time!r})"

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds` and return the new time."""
        self.time += seconds
        return self.time

    def set(self, value: float) -> None:
        """Set the clock to `value` seconds since the epoch."""
        self.time = value


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request that a `ModelServer` received.

    Attributes:
        path: The URL path, such as ``/v1/chat/completions``.
        headers: The request headers, with lower-case names.
        json: The parsed JSON body, or None when the body was empty or not JSON.
    """

    path: str
    headers: Mapping[str, str]
    json: Any


ReplyKind = Literal["answer", "error", "disconnect", "raw", "cut"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer of a `ModelServer`; build it with the class methods.

    A scripted answer is sent as given: unlike `default_reply`, the server does not apply the
    request's `stop` or `max_tokens` to it. It is streamed when the request asks for a stream.
    """

    kind: ReplyKind
    content: str = ""
    calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    status: int = 200
    message: str = ""
    body: bytes = b""
    content_type: str = "application/json"
    after_chunks: int = 0
    inner: Reply | None = field(default=None, repr=False)

    @classmethod
    def text(cls, content: str, *, usage: tuple[int, int] | None = None) -> Reply:
        """Answer with text; `usage` overrides the counted (input, output) tokens."""
        return cls(kind="answer", content=content, finish_reason="stop", usage=usage)

    @classmethod
    def tool_call(cls, name: str, arguments: Mapping[str, Any], *, id: str | None = None) -> Reply:
        """Answer with one tool call; the server assigns an id when `id` is None."""
        return cls.tool_calls([ToolCall(id=id or "", name=name, arguments=arguments)])

    @classmethod
    def tool_calls(cls, calls: Iterable[ToolCall | tuple[str, Mapping[str, Any]]]) -> Reply:
        """Answer with several tool calls, given as `ToolCall`s or `(name, arguments)` pairs."""
        normalized = tuple(
            call if isinstance(call, ToolCall) else ToolCall(id="", name=call[0], arguments=call[1])
            for call in calls
        )
        return cls(kind="answer", calls=normalized, finish_reason="tool_calls")

    @classmethod
    def json(cls, value: Any) -> Reply:
        """Answer with `value` serialized as JSON text, as a structured-output model does."""
        return cls.text(_to_json_text(value))

    @classmethod
    def error(cls, status: int, message: str = "The scripted model server failed.") -> Reply:
        """Answer with an HTTP error status and an OpenAI-style error body."""
        return cls(kind="error", status=status, message=message)

    @classmethod
    def disconnect(cls) -> Reply:
        """Close the connection without answering."""
        return cls(kind="disconnect")

    @classmethod
    def cut_stream(cls, after_chunks: int, reply: Reply | None = None) -> Reply:
        """Send `reply` (or the default answer) and close the connection part way.

        A streamed answer stops after `after_chunks` events, before ``[DONE]``; an answer that
        is not streamed stops half way through its body.
        """
        return cls(kind="cut", after_chunks=after_chunks, inner=reply)

    @classmethod
    def raw(
        cls, body: bytes, *, status: int = 200, content_type: str = "application/json"
    ) -> Reply:
        """Answer with exactly `body`, for testing how clients handle malformed responses."""
        return cls(kind="raw", body=body, status=status, content_type=content_type)


Responder = Callable[[Mapping[str, Any]], Reply]
"""A function from a chat completions request body to the reply to send."""


class ModelServer:
    """A scripted OpenAI-compatible model server on 127.0.0.1, in a daemon thread.

    Any path that ends in ``/chat/completions`` is served, so several routes can point at
    ``/a/v1`` and ``/b/v1`` of one server. Requests are answered from the scripted queue of
    their path prefix first, then from the queue without a prefix, then by the responder.

    Args:
        host: A loopback address to listen on.
        port: The port; 0 picks a free one.
        model: The model name reported when a request names none.
        responder: Answers requests that no scripted reply covers; `default_reply` if None.

    Raises:
        ConfigurationError: `host` is not a loopback address.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "scripted-model",
        responder: Responder | None = None,
    ) -> None:
        if not _is_loopback(host):
            raise ConfigurationError(
                f"ModelServer host {host!r} is not a loopback address; use 127.0.0.1 or ::1."
            )
        self.host = host
        self.model = model
        self._port = port
        self._responder = responder or default_reply
        self._lock = threading.Lock()
        self._queues: dict[str | None, deque[Reply]] = {}
        self._requests: list[RecordedRequest] = []
        self._sequence = 0
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = self.url if self._httpd is not None else "stopped"
        return f"ModelServer({state})"

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on; known once started."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL to give a route, such as ``http://127.0.0.1:8000/v1``."""
        return self.base_url("/v1")

    def base_url(self, prefix: str = "/v1") -> str:
        """Return the base URL for a path prefix, such as ``/a/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}{prefix}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def start(self) -> ModelServer:
        """Start listening; calling it on a running server does nothing."""
        if self._httpd is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        httpd = _HttpServer((self.host, self._port), self, family)
        self._port = httpd.server_address[1]
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"agentlease-model-server-{self._port}",
            daemon=True,
        )
        self._httpd = httpd
        self._thread = thread
        thread.start()
        logger.info("Model server listening on %s.", self.url)
        return self

    def stop(self) -> None:
        """Stop the server, close every open connection and wait for its threads."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        thread.join()
        httpd.close_connections()
        httpd.server_close()
        logger.info("Model server on port %d stopped.", self._port)

    def script(self, *replies: Reply, prefix: str | None = None) -> None:
        """Queue replies, sent in order to the next requests.

        Args:
            replies: The replies to queue.
            prefix: A path prefix such as ``/a/v1``; the replies then go only to requests under
                it. Without one they go to any path whose own queue is empty.
        """
        with self._lock:
            self._queues.setdefault(prefix, deque()).extend(replies)

    def reset(self) -> None:
        """Drop every queued reply and recorded request."""
        with self._lock:
            self._queues.clear()
            self._requests.clear()

    def _receive(self, request: RecordedRequest) -> tuple[Reply | None, int]:
        with self._lock:
            self._requests.append(request)
            self._sequence += 1
            for prefix, queue in self._queues.items():
                if queue and prefix is not None and request.path.startswith(prefix):
                    return queue.popleft(), self._sequence
            queue = self._queues.get(None)
            return (queue.popleft() if queue else None), self._sequence

    def _respond(self, body: Mapping[str, Any]) -> Reply:
        return self._responder(body)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _HttpServer(ThreadingHTTPServer):
    """The HTTP server of a `ModelServer`; it tracks connections so that it can stop cleanly."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: ModelServer, family: int) -> None:
        self.address_family = family
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.handler_threads: list[threading.Thread] = []
        self.connection_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which may query a DNS server.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"agentlease-model-server-{self.server_address[1]}-connection",
            daemon=True,
        )
        with self.connection_lock:
            self.connections.add(request)
            self.handler_threads = [t for t in self.handler_threads if t.is_alive()]
            self.handler_threads.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self.connection_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection and wait for the threads that served them."""
        with self.connection_lock:
            connections = list(self.connections)
            threads = list(self.handler_threads)
        for connection in connections:
            with contextlib.suppress(OSError):  # the peer may have closed it already
                connection.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)
            if thread.is_alive():
                logger.warning(
                    "A model server connection thread did not stop within %.0f s.",
                    _JOIN_TIMEOUT,
                )

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            logger.debug("Connection from %s failed: %r", client_address, error)
        else:
            logger.error("Model server failed serving %s.", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 300

    @property
    def owner(self) -> ModelServer:
        return cast("_HttpServer", self.server).owner

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.endswith("/models"):
            model = self.owner.model
            listing = {"object": "list", "data": [{"id": model, "object": "model"}]}
            self._send(200, json_dumps(listing))
        else:
            self._send_error(404, _not_found(path))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = self.headers.get("content-length", "")
        if not length.isdigit():
            self.close_connection = True
            self._send_error(411, "A valid Content-Length header is required.")
            return
        raw = self.rfile.read(int(length))
        try:
            body: Any = json_loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        scripted, sequence = self.owner._receive(RecordedRequest(path, headers, body))  # pyright: ignore[reportPrivateUsage]

        if not path.endswith("/chat/completions"):
            self._send_error(404, _not_found(path))
            return
        if not isinstance(body, dict):
            self._send_error(400, "The request body is not a JSON object.")
            return
        request = cast("dict[str, Any]", body)
        try:
            reply = scripted or self.owner._respond(request)  # pyright: ignore[reportPrivateUsage]
        except Exception:
            logger.exception("The model server's responder failed.")
            self._send_error(500, "The responder of the scripted model server failed.")
            return
        self._send_reply(reply, request, sequence)

    def _send_reply(self, reply: Reply, request: dict[str, Any], sequence: int) -> None:
        if reply.kind == "disconnect":
            self.close_connection = True
            return
        if reply.kind == "error":
            self._send_error(reply.status, reply.message)
            return
        if reply.kind == "raw":
            self._send(reply.status, reply.body, reply.content_type)
            return

        cut = reply.kind == "cut"
        answer = reply.inner if cut else reply
        if answer is None:
            answer = self.owner._respond(request)  # pyright: ignore[reportPrivateUsage]
        if answer.kind != "answer":
            self._send_reply(answer, request, sequence)
            return

        model = request.get("model")
        model = model if isinstance(model, str) and model else self.owner.model
        completion = _Completion.build(answer, request, model, sequence)
        if request.get("stream"):
            options = request.get("stream_options")
            include_usage = isinstance(options, dict) and bool(
                cast("dict[str, Any]", options).get("include_usage")
            )
            events = completion.events(include_usage=include_usage)
            self._send_stream(events, cut_after=reply.after_chunks if cut else None)
        else:
            payload = json_dumps(completion.body())
            self._send(200, payload, cut=cut)

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str = "application/json",
        *,
        cut: bool = False,
    ) -> None:
        head = (
            f"HTTP/1.1 {status} {_phrase(status)}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode("latin-1")
        if cut:
            self.close_connection = True
            self.wfile.write(head + payload[: len(payload) // 2])
            return
        self.wfile.write(head + payload)

    def _send_error(self, status: int, message: str) -> None:
        kind = "rate_limit_exceeded" if status == 429 else "invalid_request_error"
        if status >= 500:
            kind = "server_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
        self._send(status, json_dumps(body))

    def _send_stream(self, events: list[bytes], *, cut_after: int | None) -> None:
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        if cut_after is not None:
            events = events[:cut_after]
            self.close_connection = True
        for event in events:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(event), event))
        if cut_after is None:
            self.wfile.write(b"0\r\n\r\n")


def _not_found(path: str) -> str:
    return f"No resource at {path}; POST to a path ending in /chat/completions."


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# Rendering an answer as a chat completion or as stream events


@dataclass(frozen=True, slots=True)
class _Completion:
    id: str
    model: str
    content: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    input_tokens: int
    output_tokens: int

    @classmethod
    def build(
        cls, reply: Reply, request: Mapping[str, Any], model: str, sequence: int
    ) -> _Completion:
        calls = tuple(
            call if call.id else ToolCall(f"call_{sequence:06d}_{i}", call.name, call.arguments)
            for i, call in enumerate(reply.calls)
        )
        if reply.usage is not None:
            input_tokens, output_tokens = reply.usage
        else:
            input_tokens = _count_request_words(request)
            output_tokens = _count_words(reply.content) + sum(
                _count_words(_to_json_text(call.arguments)) for call in calls
            )
        finish_reason = reply.finish_reason or ("tool_calls" if calls else "stop")
        return cls(
            id=f"chatcmpl-{sequence:06d}",
            model=model,
            content=reply.content,
            tool_calls=calls,
            finish_reason=finish_reason,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }

    def body(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["content"] = self.content or None
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": _to_json_text(call.arguments)},
                }
                for call in self.tool_calls
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": _CREATED,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": self.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": self.usage(),
        }

    def events(self, *, include_usage: bool) -> list[bytes]:
        """Return the server-sent events of the streamed answer, ``[DONE]`` included."""
        deltas: list[dict[str, Any]] = [{"content": piece} for piece in _split_words(self.content)]
        for index, call in enumerate(self.tool_calls):
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            for piece in _split_in_two(_to_json_text(call.arguments)):
                deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        if not deltas:
            deltas.append({"content": ""})
        deltas[0] = {"role": "assistant", **deltas[0]}

        events = [
            self._event([{"index": 0, "delta": delta, "finish_reason": None}]) for delta in deltas
        ]
        events.append(self._event([{"index": 0, "delta": {}, "finish_reason": self.finish_reason}]))
        if include_usage:
            events.append(self._event([], usage=self.usage()))
        events.append(b"data: [DONE]\n\n")
        return events

    def _event(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return b"data: " + json_dumps(chunk) + b"\n\n"


_WORD_PIECES = re.compile(r"\s*\S+\s*|\s+")


def _split_words(text: str) -> list[str]:
    return _WORD_PIECES.findall(text)


def _split_in_two(text: str) -> list[str]:
    middle = max(1, len(text) // 2)
    return [text[:middle], text[middle:]] if len(text) > 1 else [text]


def _count_words(text: str) -> int:
    return len(text.split())


def _count_request_words(request: Mapping[str, Any]) -> int:
    total = 0
    for message in _messages(request):
        total += _count_words(_text_of(message.get("content")))
        for call in _as_list(message.get("tool_calls")):
            arguments = _as_dict(_as_dict(call).get("function")).get("arguments")
            total += _count_words(arguments if isinstance(arguments, str) else "")
    return total


def _to_json_text(value: Any) -> str:
    return json_dumps(value).decode()


# The default responder


def default_reply(request: Mapping[str, Any]) -> Reply:
    """Answer a chat completions request the way a cooperative model would, deterministically.

    The rules, in order:

    1. When the request offers tools, `tool_choice` is not ``"none"`` and the last message is
       not a tool result, call one tool: the one `tool_choice` names, else the first tool whose
       name appears in the last user message, else the first tool. Its arguments follow its
       JSON schema (see below).
    2. When `response_format` is ``json_schema``, answer with JSON that matches the schema; for
       ``json_object``, answer with an object whose keys are the quoted words of the last user
       message (or ``{"answer": ...}`` when it quotes none).
    3. When the last message is a tool result, answer with text that includes every trailing
       tool result.
    4. Otherwise answer ``This is a scripted answer to: <last user text>``.

    Text and JSON answers are cut at the first `stop` sequence, and after `max_tokens`
    whitespace-separated words (finish reason ``length``).

    Generated values: required properties, plus optional ones that declare a default; `const`,
    then `default`, then the first `enum` value; integers 3 and numbers 3.0 (moved inside any
    minimum or maximum); booleans true; arrays of `minItems` items (at least one). A string, an
    integer or a number takes the value written after its name in the last user message
    (``city: Paris``, ``count=5``, ``name is "Ada"``); otherwise each string takes the next quoted
    phrase of that message, and ``"example"`` when none is left.
    """
    messages = _messages(request)
    last = messages[-1] if messages else {}
    prompt = _last_user_text(messages)
    after_tool = last.get("role") == "tool"
    tools = _tool_functions(request.get("tools"))
    tool_choice = request.get("tool_choice")

    if tools and not after_tool and tool_choice != "none":
        tool = _pick_tool(tools, tool_choice, prompt)
        if tool is None:
            return Reply.error(400, "tool_choice names a tool that is not in tools.")
        schema = _as_dict(tool.get("parameters"))
        arguments = _as_dict(_ValueGenerator(schema, prompt).value(schema, None, 0))
        return Reply.tool_call(tool["name"], arguments)

    response_format = _as_dict(request.get("response_format"))
    format_type = response_format.get("type")
    if format_type == "json_schema":
        schema = _as_dict(_as_dict(response_format.get("json_schema")).get("schema"))
        content = _to_json_text_spaced(_ValueGenerator(schema, prompt).value(schema, None, 0))
    elif format_type == "json_object":
        keys = _quoted_phrases(prompt)
        value = dict.fromkeys(keys, "example") if keys else {"answer": _echo(prompt)}
        content = _to_json_text_spaced(value)
    elif after_tool:
        results = [
            _text_of(message.get("content")) for message in _trailing_tool_messages(messages)
        ]
        content = "The tool returned: " + "; ".join(results)
    else:
        content = _echo(prompt)

    content, finish_reason = _apply_limits(content, request)
    return Reply(kind="answer", content=content, finish_reason=finish_reason)


def _echo(prompt: str) -> str:
    return f"This is a scripted answer to: {prompt}" if prompt else "This is a scripted answer."


def _to_json_text_spaced(value: Any) -> str:
    # The default separators put spaces in the JSON, so a stream carries it in several pieces.
    return json.dumps(value, ensure_ascii=False)


def _apply_limits(content: str, request: Mapping[str, Any]) -> tuple[str, str]:
    stop = request.get("stop")
    sequences: list[Any] = [stop] if isinstance(stop, str) else _as_list(stop)
    positions = [content.find(s) for s in sequences if isinstance(s, str) and s]
    positions = [p for p in positions if p >= 0]
    if positions:
        content = content[: min(positions)]

    limit = request.get("max_tokens") or request.get("max_completion_tokens")
    if isinstance(limit, int) and limit >= 0:
        words = list(re.finditer(r"\S+", content))
        if len(words) > limit:
            end = words[limit - 1].end() if limit else 0
            return content[:end], "length"
    return content, "stop"


def _messages(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [_as_dict(m) for m in _as_list(request.get("messages")) if isinstance(m, dict)]


def _as_list(value: Any) -> list[Any]:
    return cast("list[Any]", value) if isinstance(value, list) else []


def _as_dict(value: Any) -> dict[str, Any]:
    return cast("dict[str, Any]", value) if isinstance(value, dict) else {}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in _as_list(content):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(text := _as_dict(part).get("text"), str):
            texts.append(text)
    return " ".join(texts)


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _trailing_tool_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    trailing: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing.append(message)
    return trailing[::-1]


def _tool_functions(tools: Any) -> list[dict[str, Any]]:
    functions = [_as_dict(_as_dict(tool).get("function")) for tool in _as_list(tools)]
    return [function for function in functions if isinstance(function.get("name"), str)]


def _pick_tool(tools: list[dict[str, Any]], tool_choice: Any, prompt: str) -> dict[str, Any] | None:
    if isinstance(tool_choice, dict):
        forced = _as_dict(_as_dict(tool_choice).get("function")).get("name")
        return next((tool for tool in tools if tool["name"] == forced), None)

    lowered = prompt.lower()
    mentioned = [
        (position, tool)
        for tool in tools
        if (position := lowered.find(cast("str", tool["name"]).lower())) >= 0
    ]
    if mentioned:
        return min(mentioned, key=lambda item: item[0])[1]
    return tools[0]


_QUOTED = re.compile(
    r"\"([^\"\n]+)\"|(?<!\w)'([^'\n]+)'(?!\w)|\u201c([^\u201d\n]+)\u201d|\u2018([^\u2019\n]+)\u2019"
)


def _quoted_phrases(text: str) -> list[str]:
    return [next(group for group in match.groups() if group) for match in _QUOTED.finditer(text)]


_STRING_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "http://127.0.0.1/example",
    "url": "http://127.0.0.1/example",
    "uuid": "00000000-0000-4000-8000-000000000000",
}

_MAX_DEPTH = 8


class _ValueGenerator:
    """Generates a value that matches a JSON schema, preferring values found in the prompt."""

    def __init__(self, root: Mapping[str, Any], prompt: str) -> None:
        self.root = root
        self.prompt = prompt
        self.quoted = _quoted_phrases(prompt)
        self.next_quote = 0

    def value(self, schema: Mapping[str, Any], name: str | None, depth: int) -> Any:
        schema = self.resolve(schema)
        if depth > _MAX_DEPTH:
            return None
        if "const" in schema:
            return schema["const"]
        if "default" in schema:
            return schema["default"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return cast("list[Any]", enum)[0]
        for key in ("anyOf", "oneOf"):
            options = _as_list(schema.get(key))
            if options:
                return self.value(self.pick_option(options), name, depth + 1)
        if "allOf" in schema:
            return self.value(self.merge(_as_list(schema["allOf"])), name, depth + 1)

        kind = self.kind(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind == "string":
            return self.string(schema, name)
        if kind == "integer":
            return int(self.number(schema, name, integer=True))
        if kind == "number":
            return self.number(schema, name, integer=False)
        if kind == "boolean":
            return True
        return None

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        for _ in range(_MAX_DEPTH):
            reference = schema.get("$ref")
            if not isinstance(reference, str) or not reference.startswith("#"):
                return schema
            target: Any = self.root
            for part in reference[1:].split("/"):
                if part:
                    key = part.replace("~1", "/").replace("~0", "~")
                    target = _as_dict(target).get(key)
            if not isinstance(target, dict):
                return {}
            schema = {
                **cast("dict[str, Any]", target),
                **{k: v for k, v in schema.items() if k != "$ref"},
            }
        return schema

    def pick_option(self, options: list[Any]) -> Mapping[str, Any]:
        resolved = [self.resolve(_as_dict(o)) for o in options if isinstance(o, dict)]
        for option in resolved:
            if option.get("type") != "null":
                return option
        return resolved[0] if resolved else {}

    def merge(self, parts: list[Any]) -> Mapping[str, Any]:
        merged: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        required: list[Any] = []
        for part in parts:
            if not isinstance(part, dict):
                continue
            resolved = self.resolve(_as_dict(part))
            merged.update(resolved)
            properties.update(_as_dict(resolved.get("properties")))
            required.extend(_as_list(resolved.get("required")))
        if properties:
            merged["properties"] = properties
            merged["required"] = required
        return merged

    @staticmethod
    def kind(schema: Mapping[str, Any]) -> str | None:
        declared = schema.get("type")
        if isinstance(declared, list):
            kinds = [k for k in cast("list[Any]", declared) if k != "null"]
            declared = kinds[0] if kinds else "null"
        if isinstance(declared, str):
            return declared
        if "properties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        required = set(_as_list(schema.get("required")))
        result: dict[str, Any] = {}
        for key, subschema in cast("dict[str, Any]", properties).items():
            if not isinstance(subschema, dict):
                continue
            sub = self.resolve(cast("dict[str, Any]", subschema))
            if key in required:
                result[key] = self.value(sub, key, depth + 1)
            elif "default" in sub:
                result[key] = sub["default"]
        return result

    def array(self, schema: Mapping[str, Any], name: str | None, depth: int) -> list[Any]:
        prefix = [_as_dict(p) for p in _as_list(schema.get("prefixItems")) if isinstance(p, dict)]
        if prefix:
            return [self.value(p, name, depth + 1) for p in prefix]
        items = _as_dict(schema.get("items"))
        count = schema.get("minItems")
        count = count if isinstance(count, int) and count > 1 else 1
        maximum = schema.get("maxItems")
        if isinstance(maximum, int):
            count = min(count, maximum)
        return [self.value(items, name, depth + 1) for _ in range(count)]

    def string(self, schema: Mapping[str, Any], name: str | None) -> str:
        text = self.after_name(name, number=False)
        if text is None and self.next_quote < len(self.quoted):
            text = self.quoted[self.next_quote]
            self.next_quote += 1
        if text is None:
            text = _STRING_FORMATS.get(str(schema.get("format")), "example")
        min_length = schema.get("minLength")
        if isinstance(min_length, int) and len(text) < min_length:
            text = text.ljust(min_length, "x")
        max_length = schema.get("maxLength")
        if isinstance(max_length, int):
            text = text[:max_length]
        return text

    def number(self, schema: Mapping[str, Any], name: str | None, *, integer: bool) -> float:
        found = self.after_name(name, number=True)
        value = float(found) if found is not None else 3.0
        step = 1.0 if integer else 0.5
        minimum = _number(schema.get("minimum"))
        exclusive_minimum = _number(schema.get("exclusiveMinimum"))
        maximum = _number(schema.get("maximum"))
        exclusive_maximum = _number(schema.get("exclusiveMaximum"))
        if minimum is not None and value < minimum:
            value = math.ceil(minimum) if integer else minimum
        if exclusive_minimum is not None and value <= exclusive_minimum:
            value = math.floor(exclusive_minimum) + step if integer else exclusive_minimum + step
        if maximum is not None and value > maximum:
            value = math.floor(maximum) if integer else maximum
        if exclusive_maximum is not None and value >= exclusive_maximum:
            value = math.ceil(exclusive_maximum) - step if integer else exclusive_maximum - step
        return float(math.floor(value)) if integer else float(value)

    def after_name(self, name: str | None, *, number: bool) -> str | None:
        if not name or not self.prompt:
            return None
        spelled = re.escape(name).replace("_", "[_ ]")
        value = r"(-?\d+(?:\.\d+)?)" if number else r"(?:\"([^\"]*)\"|'([^']*)'|([^\s,;!?]+))"
        pattern = rf"(?<!\w){spelled}(?!\w)\s*(?:[:=]|\s+is\s)\s*{value}"
        match = re.search(pattern, self.prompt, flags=re.IGNORECASE)
        if match is None:
            return None
        found = next(group for group in match.groups() if group is not None)
        return found if number else found.rstrip(".")


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
