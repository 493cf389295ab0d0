"""Replies the scripted model server can send, the requests it records, and a test clock."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agentlease.messages import ToolCall
from agentlease.providers._http import json_dumps

__all__ = ["FrozenClock", "RecordedRequest", "Reply"]

logger = logging.getLogger(__name__)


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
        return cls.text(to_json_text(value))

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


def to_json_text(value: Any) -> str:
    return json_dumps(value).decode()
