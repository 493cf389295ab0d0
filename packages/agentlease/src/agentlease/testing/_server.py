"""The scripted OpenAI-compatible model server on the loopback interface."""

from __future__ import annotations

import contextlib
import http
import ipaddress
import logging
import socket
import socketserver
import sys
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from agentlease.errors import ConfigurationError
from agentlease.messages import ToolCall
from agentlease.providers._http import json_dumps, json_loads
from agentlease.testing._replies import RecordedRequest, Reply, Responder, to_json_text
from agentlease.testing._responder import (
    count_request_words,
    count_words,
    default_reply,
    split_in_two,
    split_words,
)

__all__ = ["ModelServer"]

logger = logging.getLogger(__name__)

_CREATED = 1_700_000_000
"""The fixed `created` timestamp of every response, so that responses are deterministic."""

_JOIN_TIMEOUT = 5.0
"""Seconds `ModelServer.stop` waits for each connection thread after closing its socket."""


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
            input_tokens = count_request_words(request)
            output_tokens = count_words(reply.content) + sum(
                count_words(to_json_text(call.arguments)) for call in calls
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
                    "function": {"name": call.name, "arguments": to_json_text(call.arguments)},
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
        deltas: list[dict[str, Any]] = [{"content": piece} for piece in split_words(self.content)]
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
            for piece in split_in_two(to_json_text(call.arguments)):
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
