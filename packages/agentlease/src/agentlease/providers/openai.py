"""The OpenAI-compatible chat completions protocol over httpx.

`OpenAIProvider` serves every route whose `protocol` is ``"openai"``: OpenAI, Azure OpenAI's
compatible endpoint, Mistral, Groq, vLLM, Ollama and most gateways. It translates the neutral
`ChatRequest` to a `POST {base_url}/chat/completions` body and the response back to a
`ChatResponse` or a stream of `ChatChunk`s. The hot path uses plain dictionaries and the fastest
JSON codec available, with no validation layer in between.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, cast

import httpx

from agentlease.errors import ProviderError, ProviderResponseError, StreamInterrupted
from agentlease.messages import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Message,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from agentlease.providers._http import (
    HttpClients,
    json_dumps,
    json_loads,
    provider_error_text,
    status_error,
    transport_error,
)
from agentlease.routing import Route

__all__ = ["OpenAIProvider", "build_body", "parse_completion"]

logger = logging.getLogger(__name__)

_RESERVED_KEYS = frozenset({"model", "messages", "stream"})
_JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}
_STREAM_HEADERS = {"content-type": "application/json", "accept": "text/event-stream"}


class OpenAIProvider:
    """The chat provider for routes with protocol ``"openai"``.

    One instance keeps one pooled `httpx.Client` and one `httpx.AsyncClient` per event loop for
    its lifetime; share it between routes and threads.

    Args:
        timeout: The client's default timeout in seconds; each call uses its route's `timeout`.
        limits: Connection pool limits.
        trust_env: Whether httpx reads proxy settings and certificates from the environment.

    Example:
        ```python
        provider = OpenAIProvider()
        response = provider.chat(route, request, auth=RouteAuth(token_source))
        provider.close()
        ```
    """

    protocol = "openai"

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        limits: httpx.Limits | None = None,
        trust_env: bool = True,
    ) -> None:
        self._clients = HttpClients(timeout=timeout, limits=limits, trust_env=trust_env)
        self._urls: dict[str, httpx.URL] = {}

    def __repr__(self) -> str:
        return "OpenAIProvider()"

    def __enter__(self) -> OpenAIProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> OpenAIProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def close(self) -> None:
        """Close the synchronous connection pool."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the connection pools of the running event loop and the synchronous one."""
        await self._clients.aclose()

    def _url(self, route: Route) -> httpx.URL:
        # A parsed URL is reused as is, where a string would be parsed again on every request.
        url = self._urls.get(route.base_url)
        if url is None:
            url = httpx.URL(route.base_url.rstrip("/") + "/chat/completions")
            self._urls[route.base_url] = url
        return url

    def chat(self, route: Route, request: ChatRequest, *, auth: httpx.Auth) -> ChatResponse:
        """Send `request` to `route` and return the complete response.

        Raises:
            ProviderError: The call failed. Its subclass shows why, and `retriable` whether
                another route may help.
        """
        client = self._clients.sync
        http_request = client.build_request(
            "POST",
            self._url(route),
            content=json_dumps(build_body(route, request, stream=False)),
            headers=_JSON_HEADERS,
            extensions=self._clients.timeout_extension(route.timeout),
        )
        try:
            response = client.send(http_request, auth=auth)
        except httpx.HTTPError as error:
            raise _log(transport_error(error, route=route.name)) from error
        return _completion(response, route)

    async def achat(self, route: Route, request: ChatRequest, *, auth: httpx.Auth) -> ChatResponse:
        """Send `request` to `route` and return the complete response, asynchronously.

        Raises:
            ProviderError: The call failed. Its subclass shows why, and `retriable` whether
                another route may help.
        """
        client = await self._clients.get_async()
        http_request = client.build_request(
            "POST",
            self._url(route),
            content=json_dumps(build_body(route, request, stream=False)),
            headers=_JSON_HEADERS,
            extensions=self._clients.timeout_extension(route.timeout),
        )
        try:
            response = await client.send(http_request, auth=auth)
        except httpx.HTTPError as error:
            raise _log(transport_error(error, route=route.name)) from error
        return _completion(response, route)

    def stream(
        self, route: Route, request: ChatRequest, *, auth: httpx.Auth
    ) -> Iterator[ChatChunk]:
        """Send `request` to `route` and yield the response as it arrives.

        The request is sent when iteration starts. Content and tool-call deltas come as they
        arrive; one last chunk carries `finish_reason` and `usage`.

        Raises:
            StreamInterrupted: The stream failed after its first content or tool-call delta.
            ProviderError: The call failed before any output. Its subclass shows why, and
                `retriable` whether another route may help.
        """
        client = self._clients.sync
        http_request = client.build_request(
            "POST",
            self._url(route),
            content=json_dumps(build_body(route, request, stream=True)),
            headers=_STREAM_HEADERS,
            extensions=self._clients.timeout_extension(route.timeout),
        )
        state = _StreamState(route)
        try:
            response = client.send(http_request, auth=auth, stream=True)
        except httpx.HTTPError as error:
            raise _log(transport_error(error, route=route.name)) from error

        try:
            if not response.is_success:
                raise status_error(response.status_code, response.read(), route=route.name)
            decoder = _SseDecoder()
            for data in response.iter_bytes():
                for payload in decoder.feed(data):
                    chunk = state.event(payload)
                    if chunk is not None:
                        yield chunk
            for payload in decoder.flush():
                chunk = state.event(payload)
                if chunk is not None:
                    yield chunk
            yield state.finish()
        except httpx.HTTPError as error:
            raise _log(state.failure(transport_error(error, route=route.name))) from error
        except ProviderError as error:
            failure = _log(state.failure(error))
            if failure is error:
                raise
            raise failure from error
        finally:
            response.close()

    async def astream(
        self, route: Route, request: ChatRequest, *, auth: httpx.Auth
    ) -> AsyncIterator[ChatChunk]:
        """Send `request` to `route` and yield the response as it arrives, asynchronously.

        Raises:
            StreamInterrupted: The stream failed after its first content or tool-call delta.
            ProviderError: The call failed before any output. Its subclass shows why, and
                `retriable` whether another route may help.
        """
        client = await self._clients.get_async()
        http_request = client.build_request(
            "POST",
            self._url(route),
            content=json_dumps(build_body(route, request, stream=True)),
            headers=_STREAM_HEADERS,
            extensions=self._clients.timeout_extension(route.timeout),
        )
        state = _StreamState(route)
        try:
            response = await client.send(http_request, auth=auth, stream=True)
        except httpx.HTTPError as error:
            raise _log(transport_error(error, route=route.name)) from error

        try:
            if not response.is_success:
                body = await response.aread()
                raise status_error(response.status_code, body, route=route.name)
            decoder = _SseDecoder()
            async for data in response.aiter_bytes():
                for payload in decoder.feed(data):
                    chunk = state.event(payload)
                    if chunk is not None:
                        yield chunk
            for payload in decoder.flush():
                chunk = state.event(payload)
                if chunk is not None:
                    yield chunk
            yield state.finish()
        except httpx.HTTPError as error:
            raise _log(state.failure(transport_error(error, route=route.name))) from error
        except ProviderError as error:
            failure = _log(state.failure(error))
            if failure is error:
                raise
            raise failure from error
        finally:
            await response.aclose()


def _log(error: ProviderError) -> ProviderError:
    logger.debug("Route %s failed: %s", error.route, error)
    return error


# Request translation


def build_body(route: Route, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """Translate a neutral request to a chat completions request body for `route`.

    The body always names `route.model`: the model client has already resolved any per-call
    model override to the route that serves it. Keys of `request.extra` are merged last, except
    ``model``, ``messages`` and ``stream``, which they never override.
    """
    body: dict[str, Any] = {
        "model": route.model,
        "messages": [_wire_message(message) for message in request.messages],
    }
    if request.tools:
        body["tools"] = [_wire_tool(tool) for tool in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = _wire_tool_choice(request.tool_choice)
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.stop:
        stop = request.stop
        body["stop"] = [stop] if isinstance(stop, str) else list(stop)

    for key, value in request.extra.items():
        if key in _RESERVED_KEYS:
            logger.debug("Ignoring extra parameter %r: it would override the request.", key)
            continue
        body[key] = value

    if stream:
        body["stream"] = True
        options = body.get("stream_options")
        body["stream_options"] = {
            **(cast("Mapping[str, Any]", options) if isinstance(options, Mapping) else {}),
            "include_usage": True,
        }
    return body


def _wire_message(message: Message) -> dict[str, Any]:
    content = message.content
    wire: dict[str, Any] = {
        "role": message.role,
        "content": content if isinstance(content, str) else list(content),
    }
    if message.name and message.role != "tool":
        wire["name"] = message.name  # the API defines no name on tool results
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json_dumps(call.arguments).decode()},
            }
            for call in message.tool_calls
        ]
        if not content:
            wire["content"] = None
    return wire


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _wire_tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    if choice == "any":
        return "required"
    return {"type": "function", "function": {"name": choice}}


# Response translation


def _completion(response: httpx.Response, route: Route) -> ChatResponse:
    body = response.content
    if not response.is_success:
        raise _log(status_error(response.status_code, body, route=route.name))
    try:
        data = json_loads(body)
    except ValueError:
        raise _log(_unreadable(route, "its body is not JSON")) from None
    return parse_completion(data, route)


def parse_completion(data: Any, route: Route) -> ChatResponse:
    """Translate a parsed chat completions response body to a `ChatResponse`.

    Raises:
        ProviderResponseError: The body is not a chat completion, or a tool call's arguments
            are not a JSON object.
    """
    if not isinstance(data, dict):
        raise _log(_unreadable(route, "its body is not a JSON object"))
    body = cast("dict[str, Any]", data)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        if "error" in body:
            raise _log(_error_body(route, json_dumps(body)))
        raise _log(_unreadable(route, "it has no choices"))

    choice: Any = cast("list[Any]", choices)[0]
    try:
        message = choice["message"]
        content = _text(message.get("content")) or _text(message.get("refusal"))
        calls = message.get("tool_calls") or ()
        finish_reason = choice.get("finish_reason")
    except (KeyError, TypeError, AttributeError):
        raise _log(_unreadable(route, "its first choice has no message")) from None
    tool_calls = tuple(_parse_tool_call(call, route) for call in calls)

    return ChatResponse(
        message=Message(role="assistant", content=content, tool_calls=tool_calls),
        model=body.get("model") or route.model,
        route=route.name,
        provider=route.provider,
        finish_reason=finish_reason,
        usage=_parse_usage(body.get("usage")),
        id=body.get("id"),
    )


def _parse_tool_call(call: Any, route: Route) -> ToolCall:
    try:
        function = call["function"]
        name: str = function["name"]
        text: str = function.get("arguments") or ""
        call_id: str = call.get("id") or ""
    except (KeyError, TypeError, AttributeError):
        raise _log(_unreadable(route, "a tool call has no function name")) from None
    try:
        arguments: Any = json_loads(text) if text.strip() else {}
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise _log(
            ProviderResponseError(
                f"Route {route.name!r} returned a call of tool {name!r} whose arguments are not "
                "a JSON object; retry the request or use a model that follows the tool schema.",
                route=route.name,
                retriable=False,
            )
        )
    return ToolCall(id=call_id, name=name, arguments=cast("dict[str, Any]", arguments))


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part_text(part) for part in cast("list[Any]", content))
    raise TypeError("content is neither text nor a list of parts")


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        fields = cast("dict[str, Any]", part)
        text = fields.get("text")
        if fields.get("type") == "text" and isinstance(text, str):
            return text
    return ""


def _parse_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    counts = cast("dict[str, Any]", usage)
    input_tokens: int = counts.get("prompt_tokens") or 0
    output_tokens: int = counts.get("completion_tokens") or 0
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=counts.get("total_tokens") or input_tokens + output_tokens,
        cache_read_tokens=_detail(counts.get("prompt_tokens_details"), "cached_tokens"),
        reasoning_tokens=_detail(counts.get("completion_tokens_details"), "reasoning_tokens"),
    )


def _detail(details: Any, key: str) -> int | None:
    if isinstance(details, dict):
        value = cast("dict[str, Any]", details).get(key)
        if isinstance(value, int):
            return value
    return None


def _unreadable(route: Route, reason: str) -> ProviderResponseError:
    return ProviderResponseError(
        f"The response of route {route.name!r} is not a chat completion ({reason}); "
        "check that the route's base_url serves the OpenAI chat completions API.",
        route=route.name,
        retriable=False,
    )


def _error_body(route: Route, body: bytes) -> ProviderResponseError:
    return ProviderResponseError(
        f"The provider of route {route.name!r} returned an error "
        f"({provider_error_text(body)}); retry later or add a fallback route.",
        route=route.name,
        retriable=True,
    )


# Streaming


class _SseDecoder:
    """Split a server-sent events byte stream into the data of each event."""

    __slots__ = ("_data", "_tail")

    def __init__(self) -> None:
        self._tail = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """Consume bytes and return the data of every event they complete."""
        lines = (self._tail + chunk if self._tail else chunk).split(b"\n")
        self._tail = lines.pop()
        events: list[bytes] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
        return events

    def flush(self) -> list[bytes]:
        """Return the data of an event that the stream ended without a blank line after."""
        events = self.feed(b"\n\n") if self._tail or self._data else []
        return events


class _StreamState:
    """The state of one streamed response: what was seen, and whether output has begun."""

    __slots__ = ("done", "finish_reason", "id", "model", "route", "started", "usage")

    def __init__(self, route: Route) -> None:
        self.route = route
        self.started = False
        self.done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str = route.model
        self.id: str | None = None

    def event(self, payload: bytes) -> ChatChunk | None:
        """Translate the data of one event; return a chunk when it carries a delta."""
        if payload == b"[DONE]":
            self.done = True
            return None
        if self.done:
            return None
        try:
            parsed: Any = json_loads(payload)
        except ValueError:
            raise _unreadable(self.route, "a stream event is not JSON") from None
        if not isinstance(parsed, dict):
            raise _unreadable(self.route, "a stream event is not a JSON object")
        data = cast("dict[str, Any]", parsed)
        if "error" in data:
            raise _error_body(self.route, payload)

        model = data.get("model")
        if model:
            self.model = model
        if self.id is None:
            self.id = data.get("id")
        usage = data.get("usage")
        if usage:
            self.usage = _parse_usage(usage)
        choices: Any = data.get("choices")
        if not choices:
            return None

        try:
            choice = choices[0]
            finish_reason = choice.get("finish_reason")
            if finish_reason:
                self.finish_reason = finish_reason
            delta: Any = choice.get("delta") or {}
            content = _text(delta.get("content"))
            tool_calls = tuple(
                ToolCallDelta(
                    index=item.get("index", position),
                    id=item.get("id"),
                    name=(item.get("function") or {}).get("name"),
                    arguments=(item.get("function") or {}).get("arguments") or "",
                )
                for position, item in enumerate(delta.get("tool_calls") or ())
            )
        except (AttributeError, TypeError, IndexError):
            raise _unreadable(self.route, "a stream event has no delta") from None
        if not content and not tool_calls:
            return None

        self.started = True
        return ChatChunk(
            content=content,
            tool_calls=tool_calls,
            model=self.model,
            route=self.route.name,
            provider=self.route.provider,
            id=self.id,
        )

    def finish(self) -> ChatChunk:
        """Return the last chunk, with `finish_reason` and `usage`.

        Raises:
            ProviderError: The stream ended with neither ``[DONE]`` nor a finish reason.
        """
        if not self.done and self.finish_reason is None:
            raise transport_error(
                httpx.RemoteProtocolError("the stream ended before the response was complete"),
                route=self.route.name,
            )
        return ChatChunk(
            finish_reason=self.finish_reason or "stop",
            usage=self.usage,
            model=self.model,
            route=self.route.name,
            provider=self.route.provider,
            id=self.id,
        )

    def failure(self, error: ProviderError) -> ProviderError:
        """Return `error`, or `StreamInterrupted` when output has already begun."""
        if not self.started or isinstance(error, StreamInterrupted):
            return error
        return StreamInterrupted(
            f"The stream from route {self.route.name!r} failed after output had begun "
            f"({type(error).__name__}); the partial answer is incomplete, so send the request "
            "again.",
            route=self.route.name,
            status_code=error.status_code,
            retriable=False,
        )
