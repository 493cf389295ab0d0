"""Tests of the OpenAI chat completions provider against a real ModelServer on loopback."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agentlease.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
    StreamInterrupted,
)
from agentlease.messages import ChatChunk, ChatRequest, Message, ToolCall, ToolSpec
from agentlease.providers import ChatProvider, OpenAIProvider, RouteAuth, api_key_source
from agentlease.providers._http import transport_error
from agentlease.routing import Route
from agentlease.testing import ModelServer, Reply

ADD_TOOL = ToolSpec(
    name="add",
    description="Add two integers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)


@pytest.fixture(scope="module")
def running_server() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture
def server(running_server: ModelServer) -> ModelServer:
    running_server.reset()
    return running_server


@pytest.fixture
def route(server: ModelServer) -> Route:
    return Route(name="local", base_url=server.url, model="model-a")


@pytest.fixture
def provider() -> Iterator[OpenAIProvider]:
    with OpenAIProvider(trust_env=False) as provider:
        yield provider


@pytest.fixture
def auth() -> RouteAuth:
    return RouteAuth(lambda: "token-1")


def ask(text: str = "Hello", **fields: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], **fields)


def sent_body(server: ModelServer) -> dict[str, Any]:
    return server.requests[-1].json


async def collect(provider: OpenAIProvider, route: Route, request: ChatRequest) -> list[ChatChunk]:
    auth = RouteAuth(lambda: "token-1")
    return [chunk async for chunk in provider.astream(route, request, auth=auth)]


def merged_arguments(chunks: list[ChatChunk]) -> dict[int, str]:
    merged: dict[int, str] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls:
            merged[delta.index] = merged.get(delta.index, "") + delta.arguments
    return merged


# Requests


def test_provider_implements_protocol() -> None:
    with OpenAIProvider(trust_env=False) as provider:
        assert isinstance(provider, ChatProvider)


def test_chat_sends_route_model(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    provider.chat(route, ask(model="another-model"), auth=auth)

    assert server.requests[-1].path == "/v1/chat/completions"
    assert sent_body(server)["model"] == "model-a"
    assert "stream" not in sent_body(server)


def test_chat_sends_sampling_parameters(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    request = ask(temperature=0.5, max_tokens=20, stop=["END"], response_format={"type": "text"})

    provider.chat(route, request, auth=auth)

    body = sent_body(server)
    assert body["temperature"] == 0.5
    assert body["max_tokens"] == 20
    assert body["stop"] == ["END"]
    assert body["response_format"] == {"type": "text"}


def test_chat_sends_single_stop_string(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    provider.chat(route, ask(stop="END"), auth=auth)

    assert sent_body(server)["stop"] == ["END"]


def test_chat_merges_extra_without_overriding(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    extra: dict[str, Any] = {"seed": 7, "model": "evil", "messages": [], "stream": True}

    provider.chat(route, ask(extra=extra), auth=auth)

    body = sent_body(server)
    assert body["seed"] == 7
    assert body["model"] == "model-a"
    assert body["messages"] == [{"role": "user", "content": "Hello"}]
    assert "stream" not in body


def test_chat_sends_tools(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    provider.chat(route, ask(tools=[ADD_TOOL]), auth=auth)

    assert sent_body(server)["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two integers.",
                "parameters": dict(ADD_TOOL.parameters),
            },
        }
    ]


@pytest.mark.parametrize(
    ("tool_choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("any", "required"),
        ("add", {"type": "function", "function": {"name": "add"}}),
    ],
)
def test_chat_translates_tool_choice(
    provider: OpenAIProvider,
    route: Route,
    server: ModelServer,
    auth: RouteAuth,
    tool_choice: str,
    wire: Any,
) -> None:
    provider.chat(route, ask(tools=[ADD_TOOL], tool_choice=tool_choice), auth=auth)

    assert sent_body(server)["tool_choice"] == wire


def test_chat_sends_tool_history(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    call = ToolCall(id="call_1", name="add", arguments={"a": 1, "b": 2})
    messages = [
        Message(role="system", content="Be brief."),
        Message(role="user", content="What is 1 + 2?", name="ada"),
        Message(role="assistant", tool_calls=(call,)),
        Message(role="tool", content="3", tool_call_id="call_1", name="add"),
    ]

    provider.chat(route, ChatRequest(messages=messages, tools=[ADD_TOOL]), auth=auth)

    wire = sent_body(server)["messages"]
    assert wire[1] == {"role": "user", "content": "What is 1 + 2?", "name": "ada"}
    assert wire[2]["content"] is None
    assert wire[2]["tool_calls"][0]["id"] == "call_1"
    assert json.loads(wire[2]["tool_calls"][0]["function"]["arguments"]) == {"a": 1, "b": 2}
    assert wire[3] == {"role": "tool", "content": "3", "tool_call_id": "call_1"}


def test_chat_passes_content_parts_through(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    parts = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]

    provider.chat(route, ChatRequest(messages=[Message(role="user", content=parts)]), auth=auth)

    assert sent_body(server)["messages"][0]["content"] == parts


# Responses


def test_chat_returns_text_and_usage(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.text("Hi there", usage=(5, 2)))

    response = provider.chat(route, ask(), auth=auth)

    assert response.message.role == "assistant"
    assert response.message.content == "Hi there"
    assert response.finish_reason == "stop"
    assert response.model == "model-a"
    assert response.route == "local"
    assert response.provider == "openai"
    assert response.id is not None
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (5, 2)
    assert response.usage.total_tokens == 7


def test_chat_returns_tool_calls(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.tool_call("add", {"a": 1, "b": 2}, id="call_9"))

    response = provider.chat(route, ask(tools=[ADD_TOOL]), auth=auth)

    assert response.message.tool_calls == (
        ToolCall(id="call_9", name="add", arguments={"a": 1, "b": 2}),
    )
    assert response.finish_reason == "tool_calls"


def test_chat_returns_structured_output(
    provider: OpenAIProvider, route: Route, auth: RouteAuth
) -> None:
    schema = {
        "type": "object",
        "properties": {"setup": {"type": "string"}, "rating": {"type": "integer"}},
        "required": ["setup", "rating"],
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "Joke", "schema": schema}}

    response = provider.chat(route, ask(response_format=response_format), auth=auth)

    assert isinstance(response.message.content, str)
    assert json.loads(response.message.content) == {"setup": "example", "rating": 3}


def test_chat_joins_text_parts_of_answer(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    message = {
        "role": "assistant",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }
    body = {
        "id": "x",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    server.script(Reply.raw(json.dumps(body).encode()))

    response = provider.chat(route, ask(), auth=auth)

    assert response.message.content == "ab"
    assert response.usage is None


def test_chat_returns_refusal_as_content(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    message = {"role": "assistant", "content": None, "refusal": "I cannot help with that."}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    server.script(Reply.raw(json.dumps({"model": "m", "choices": [choice]}).encode()))

    response = provider.chat(route, ask(), auth=auth)

    assert response.message.content == "I cannot help with that."


async def test_achat_returns_text(provider: OpenAIProvider, route: Route, auth: RouteAuth) -> None:
    response = await provider.achat(route, ask("Hi"), auth=auth)

    assert response.message.content == "This is a scripted answer to: Hi"


# Streams


def test_stream_yields_words_then_final_chunk(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.text("one two three", usage=(4, 3)))

    chunks = list(provider.stream(route, ask(), auth=auth))

    assert [chunk.content for chunk in chunks[:-1]] == ["one ", "two ", "three"]
    assert all(chunk.usage is None and chunk.finish_reason is None for chunk in chunks[:-1])
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.input_tokens == 4
    assert chunks[-1].model == "model-a"
    assert chunks[-1].route == "local"


def test_stream_asks_for_usage(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    list(provider.stream(route, ask(extra={"stream_options": {"other": 1}}), auth=auth))

    body = sent_body(server)
    assert body["stream"] is True
    assert body["stream_options"] == {"other": 1, "include_usage": True}


def test_stream_sends_request_when_iterated(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    chunks = provider.stream(route, ask(), auth=auth)
    assert server.requests == []

    list(chunks)

    assert len(server.requests) == 1


def test_stream_tool_call_deltas_merge(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.tool_calls([("add", {"a": 1, "b": 2}), ("add", {"a": 5, "b": 6})]))

    chunks = list(provider.stream(route, ask(tools=[ADD_TOOL]), auth=auth))

    heads = [delta for chunk in chunks for delta in chunk.tool_calls if delta.name]
    assert [(delta.index, delta.name) for delta in heads] == [(0, "add"), (1, "add")]
    assert all(delta.id for delta in heads)
    merged = merged_arguments(chunks)
    assert json.loads(merged[0]) == {"a": 1, "b": 2}
    assert json.loads(merged[1]) == {"a": 5, "b": 6}
    assert chunks[-1].finish_reason == "tool_calls"


async def test_astream_yields_words_then_final_chunk(
    provider: OpenAIProvider, route: Route, server: ModelServer
) -> None:
    server.script(Reply.text("one two"))

    chunks = await collect(provider, route, ask())

    assert [chunk.content for chunk in chunks] == ["one ", "two", ""]
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None


async def test_astream_tool_call_deltas_merge(
    provider: OpenAIProvider, route: Route, server: ModelServer
) -> None:
    server.script(Reply.tool_call("add", {"a": 1, "b": 2}))

    chunks = await collect(provider, route, ask(tools=[ADD_TOOL]))

    assert json.loads(merged_arguments(chunks)[0]) == {"a": 1, "b": 2}


# Error mapping


@pytest.mark.parametrize(
    ("status", "error_type", "retriable"),
    [
        (429, ProviderRateLimited, True),
        (401, ProviderAuthError, False),
        (403, ProviderAuthError, False),
        (500, ProviderResponseError, True),
        (503, ProviderResponseError, True),
        (400, ProviderResponseError, False),
        (404, ProviderResponseError, False),
    ],
)
def test_chat_maps_error_status(
    provider: OpenAIProvider,
    route: Route,
    server: ModelServer,
    auth: RouteAuth,
    status: int,
    error_type: type[ProviderError],
    retriable: bool,
) -> None:
    server.script(Reply.error(status, "model is overloaded"))

    with pytest.raises(error_type) as caught:
        provider.chat(route, ask(), auth=auth)

    assert type(caught.value) is error_type
    assert caught.value.retriable is retriable
    assert caught.value.status_code == status
    assert caught.value.route == "local"
    assert "model is overloaded" in str(caught.value)


def test_chat_maps_redirect_to_response_error(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.raw(b"", status=307))

    with pytest.raises(ProviderResponseError) as caught:
        provider.chat(route, ask(), auth=auth)

    assert caught.value.retriable is False


def test_error_message_truncates_provider_text(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.error(400, "x" * 1000))

    with pytest.raises(ProviderResponseError) as caught:
        provider.chat(route, ask(), auth=auth)

    assert "x" * 297 + "..." in str(caught.value)
    assert "x" * 298 not in str(caught.value)


def test_error_message_omits_request_credential(
    provider: OpenAIProvider, route: Route, server: ModelServer
) -> None:
    server.script(Reply.error(401, "invalid credential"))

    with pytest.raises(ProviderAuthError) as caught:
        provider.chat(route, ask(), auth=RouteAuth(lambda: "secret-value-123"))

    assert "secret-value-123" not in str(caught.value)


def test_error_message_redacts_echoed_token(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    echoed = "Bad header: Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    server.script(Reply.error(401, echoed))

    with pytest.raises(ProviderAuthError) as caught:
        provider.chat(route, ask(), auth=auth)

    assert "eyJ" not in str(caught.value)
    assert "[redacted]" in str(caught.value)


def test_chat_unparseable_body_raises_response_error(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.raw(b"<html>oops</html>", content_type="text/html"))

    with pytest.raises(ProviderResponseError, match="not a chat completion"):
        provider.chat(route, ask(), auth=auth)


def test_chat_error_body_with_ok_status_raises(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.raw(b'{"error": {"message": "upstream failed"}}'))

    with pytest.raises(ProviderResponseError, match="upstream failed"):
        provider.chat(route, ask(), auth=auth)


def test_chat_invalid_tool_arguments_name_tool(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "add", "arguments": "{not json"}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    body = {
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
    }
    server.script(Reply.raw(json.dumps(body).encode()))

    with pytest.raises(ProviderResponseError, match="'add'") as caught:
        provider.chat(route, ask(), auth=auth)

    assert caught.value.retriable is False


def test_chat_disconnect_raises_unavailable(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.disconnect())

    with pytest.raises(ProviderUnavailable) as caught:
        provider.chat(route, ask(), auth=auth)

    assert caught.value.retriable is True


def test_chat_refused_connection_raises_unavailable(
    provider: OpenAIProvider, auth: RouteAuth
) -> None:
    with ModelServer() as closed:
        url = closed.url
    route = Route(name="gone", base_url=url, model="m")

    with pytest.raises(ProviderUnavailable, match="'gone'"):
        provider.chat(route, ask(), auth=auth)


async def test_achat_disconnect_raises_unavailable(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.disconnect())

    with pytest.raises(ProviderUnavailable):
        await provider.achat(route, ask(), auth=auth)


async def test_achat_maps_error_status(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.error(429))

    with pytest.raises(ProviderRateLimited):
        await provider.achat(route, ask(), auth=auth)


def test_stream_error_status_raises_mapped_error(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.error(429, "slow down"))

    with pytest.raises(ProviderRateLimited, match="slow down"):
        list(provider.stream(route, ask(), auth=auth))


def test_stream_cut_before_output_raises_unavailable(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.cut_stream(0))

    with pytest.raises(ProviderUnavailable):
        list(provider.stream(route, ask(), auth=auth))


def test_stream_cut_after_output_raises_interrupted(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.cut_stream(2, Reply.text("one two three")))
    received: list[str] = []
    chunks = provider.stream(route, ask(), auth=auth)

    with pytest.raises(StreamInterrupted) as caught:
        received.extend(chunk.content for chunk in chunks)

    assert received == ["one ", "two "]
    assert caught.value.retriable is False
    assert caught.value.route == "local"


def test_stream_cut_tool_call_raises_interrupted(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.cut_stream(1, Reply.tool_call("add", {"a": 1, "b": 2})))

    with pytest.raises(StreamInterrupted):
        list(provider.stream(route, ask(tools=[ADD_TOOL]), auth=auth))


async def test_astream_cut_after_output_raises_interrupted(
    provider: OpenAIProvider, route: Route, server: ModelServer
) -> None:
    server.script(Reply.cut_stream(1, Reply.text("one two three")))

    with pytest.raises(StreamInterrupted):
        await collect(provider, route, ask())


async def test_astream_error_status_raises_mapped_error(
    provider: OpenAIProvider, route: Route, server: ModelServer
) -> None:
    server.script(Reply.error(503))

    with pytest.raises(ProviderResponseError) as caught:
        await collect(provider, route, ask())

    assert caught.value.retriable is True


def test_stream_error_event_before_output_raises(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    body = b'data: {"error": {"message": "overloaded"}}\n\n'
    server.script(Reply.raw(body, content_type="text/event-stream"))

    with pytest.raises(ProviderResponseError, match="overloaded") as caught:
        list(provider.stream(route, ask(), auth=auth))

    assert type(caught.value) is ProviderResponseError


def test_stream_unfinished_after_output_raises_interrupted(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    event = {"id": "x", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}
    body = b"data: " + json.dumps(event).encode() + b"\n\n"
    server.script(Reply.raw(body, content_type="text/event-stream"))

    with pytest.raises(StreamInterrupted):
        list(provider.stream(route, ask(), auth=auth))


def test_stream_unparseable_event_raises_response_error(
    provider: OpenAIProvider, route: Route, server: ModelServer, auth: RouteAuth
) -> None:
    server.script(Reply.raw(b"data: {oops\n\n", content_type="text/event-stream"))

    with pytest.raises(ProviderResponseError, match="not JSON"):
        list(provider.stream(route, ask(), auth=auth))


@pytest.mark.parametrize(
    "error_type",
    [
        error_type
        for error_type in vars(httpx).values()
        if inspect.isclass(error_type) and issubclass(error_type, httpx.RequestError)
    ],
)
def test_every_httpx_request_error_is_mapped(error_type: type[httpx.RequestError]) -> None:
    mapped = transport_error(error_type("boom"), route="r")

    assert isinstance(mapped, ProviderError)
    unavailable = (
        httpx.TimeoutException,
        httpx.NetworkError,
        httpx.RemoteProtocolError,
        httpx.ProxyError,
    )
    assert isinstance(mapped, ProviderUnavailable) is issubclass(error_type, unavailable)


# Credentials


def test_auth_calls_token_source_per_request(
    provider: OpenAIProvider, route: Route, server: ModelServer
) -> None:
    tokens = iter(["first-token", "second-token"])
    auth = RouteAuth(lambda: next(tokens))

    provider.chat(route, ask(), auth=auth)
    provider.chat(route, ask(), auth=auth)

    headers = [recorded.headers["authorization"] for recorded in server.requests]
    assert headers == ["Bearer first-token", "Bearer second-token"]


def test_auth_calls_token_source_when_stream_starts(
    provider: OpenAIProvider, route: Route, server: ModelServer
) -> None:
    calls: list[str] = []

    def token_source() -> str:
        calls.append("called")
        return "stream-token"

    chunks = provider.stream(route, ask(), auth=RouteAuth(token_source))
    assert calls == []

    list(chunks)

    assert calls == ["called"]
    assert server.requests[-1].headers["authorization"] == "Bearer stream-token"


async def test_auth_sends_token_on_async_calls(
    provider: OpenAIProvider, route: Route, server: ModelServer
) -> None:
    await provider.achat(route, ask(), auth=RouteAuth(lambda: "async-token"))

    assert server.requests[-1].headers["authorization"] == "Bearer async-token"


def test_auth_propagates_token_source_errors(provider: OpenAIProvider, route: Route) -> None:
    def token_source() -> str:
        raise ConfigurationError("no credential")

    with pytest.raises(ConfigurationError, match="no credential"):
        provider.chat(route, ask(), auth=RouteAuth(token_source))


@pytest.mark.parametrize("token", ["", "abc\r\nX-Injected: 1", "two words", "caf\u00e9"])
def test_header_injection_through_token_is_rejected(
    provider: OpenAIProvider, route: Route, server: ModelServer, token: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        provider.chat(route, ask(), auth=RouteAuth(lambda: token))

    assert server.requests == []
    assert not token or token not in str(caught.value)


def test_api_key_source_reads_variable_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    route = Route(
        name="keyed",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        credential="api_key",
        api_key_env="AGENTLEASE_TEST_KEY",
    )
    monkeypatch.setenv("AGENTLEASE_TEST_KEY", "key-1")
    source = api_key_source(route)

    monkeypatch.setenv("AGENTLEASE_TEST_KEY", "key-2")

    assert source() == "key-2"


def test_api_key_source_missing_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    route = Route(
        name="keyed",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        credential="api_key",
        api_key_env="AGENTLEASE_TEST_KEY",
    )
    monkeypatch.delenv("AGENTLEASE_TEST_KEY", raising=False)
    source = api_key_source(route)

    with pytest.raises(ConfigurationError, match="AGENTLEASE_TEST_KEY") as caught:
        source()

    assert "'keyed'" in str(caught.value)


def test_api_key_source_rejects_route_without_variable() -> None:
    route = Route(name="plain", base_url="http://127.0.0.1:9/v1", model="m")

    with pytest.raises(ConfigurationError, match="api_key_env"):
        api_key_source(route)


# Connection lifecycle


def test_async_clients_close_with_their_loops(route: Route, auth: RouteAuth) -> None:
    provider = OpenAIProvider(trust_env=False)

    async def call() -> str:
        response = await provider.achat(route, ask("Hi"), auth=auth)
        return str(response.message.content)

    answers = [asyncio.run(call()) for _ in range(2)]
    provider.close()

    assert answers == ["This is a scripted answer to: Hi"] * 2


async def test_aclose_closes_running_loop_client(route: Route, auth: RouteAuth) -> None:
    provider = OpenAIProvider(trust_env=False)
    await provider.achat(route, ask(), auth=auth)

    await provider.aclose()

    response = await provider.achat(route, ask("again"), auth=auth)
    await provider.aclose()
    assert response.message.content == "This is a scripted answer to: again"
