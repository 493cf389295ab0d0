"""Tests of agentlease.testing: the scripted model server, its default responder and the clock."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pydantic
import pytest

from agentlease.errors import ConfigurationError
from agentlease.messages import ToolCall
from agentlease.testing import FrozenClock, ModelServer, Reply, default_reply


@pytest.fixture(scope="module")
def running_server() -> Iterator[ModelServer]:
    with ModelServer(model="test-model") as server:
        yield server


@pytest.fixture
def server(running_server: ModelServer) -> ModelServer:
    running_server.reset()
    return running_server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False) as client:
        yield client


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def chat_body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **fields}


def tool(name: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": {"name": name, "parameters": schema}}


def post(http: httpx.Client, url: str, body: dict[str, Any]) -> httpx.Response:
    return http.post(url + "/chat/completions", json=body)


def sse_events(response: httpx.Response) -> list[Any]:
    events: list[Any] = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def tool_arguments(reply: Reply) -> dict[str, Any]:
    assert len(reply.calls) == 1
    return dict(reply.calls[0].arguments)


# The server


def test_server_rejects_non_loopback_host() -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        ModelServer(host="0.0.0.0")  # noqa: S104 - the value under test, rejected before binding


def test_server_url_names_loopback_port(server: ModelServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}/v1"
    assert server.port > 0


def test_server_answers_with_request_model(server: ModelServer, http: httpx.Client) -> None:
    response = post(http, server.url, chat_body(user("Hello")))

    assert response.status_code == 200
    assert response.json()["model"] == "m"


def test_server_defaults_to_its_model(server: ModelServer, http: httpx.Client) -> None:
    response = post(http, server.url, {"messages": [user("Hello")]})

    assert response.json()["model"] == "test-model"


def test_server_serves_any_path_prefix(server: ModelServer, http: httpx.Client) -> None:
    response = post(http, server.base_url("/a/v1"), chat_body(user("Hello")))

    assert response.status_code == 200
    assert server.requests[0].path == "/a/v1/chat/completions"


def test_server_unknown_path_returns_404(server: ModelServer, http: httpx.Client) -> None:
    response = http.post(server.url + "/embeddings", json={})

    assert response.status_code == 404
    assert "chat/completions" in response.json()["error"]["message"]


def test_server_rejects_non_json_body(server: ModelServer, http: httpx.Client) -> None:
    response = http.post(server.url + "/chat/completions", content=b"not json")

    assert response.status_code == 400


def test_server_lists_its_model(server: ModelServer, http: httpx.Client) -> None:
    response = http.get(server.url + "/models")

    assert response.json()["data"][0]["id"] == "test-model"


def test_server_records_requests(server: ModelServer, http: httpx.Client) -> None:
    body = chat_body(user("Hello"))
    http.post(server.url + "/chat/completions", json=body, headers={"X-Trace": "abc"})

    [recorded] = server.requests
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["x-trace"] == "abc"
    assert recorded.json == body


def test_server_script_replies_in_order(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.text("first"), Reply.text("second"))

    texts = [
        post(http, server.url, chat_body(user("Hi"))).json()["choices"][0]["message"]["content"]
        for _ in range(3)
    ]

    assert texts == ["first", "second", "This is a scripted answer to: Hi"]


def test_server_script_prefix_targets_path(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.text("for b"), prefix="/b/v1")

    a = post(http, server.base_url("/a/v1"), chat_body(user("Hi")))
    b = post(http, server.base_url("/b/v1"), chat_body(user("Hi")))

    assert a.json()["choices"][0]["message"]["content"] == "This is a scripted answer to: Hi"
    assert b.json()["choices"][0]["message"]["content"] == "for b"


def test_server_reset_drops_script_and_requests(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.text("scripted"))
    post(http, server.url, chat_body(user("Hi")))
    server.script(Reply.text("scripted"))

    server.reset()

    assert server.requests == []
    response = post(http, server.url, chat_body(user("Hi")))
    assert response.json()["choices"][0]["message"]["content"].startswith("This is")


def test_server_uses_custom_responder(http: httpx.Client) -> None:
    with ModelServer(responder=lambda body: Reply.text(str(len(body["messages"])))) as server:
        response = post(http, server.url, chat_body(user("a"), user("b")))

    assert response.json()["choices"][0]["message"]["content"] == "2"


def test_server_stop_closes_keepalive_connections(http: httpx.Client) -> None:
    server = ModelServer().start()
    post(http, server.url, chat_body(user("Hi")))  # leaves a pooled keep-alive connection

    server.stop()

    prefix = f"agentlease-model-server-{server.port}"
    assert not [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def test_server_stop_twice_is_harmless() -> None:
    server = ModelServer().start()
    server.stop()
    server.stop()

    assert repr(server) == "ModelServer(stopped)"


# Scripted replies


def test_reply_text_reports_given_usage(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.text("Hello", usage=(10, 20)))

    usage = post(http, server.url, chat_body(user("Hi"))).json()["usage"]

    assert usage == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}


def test_reply_json_sends_json_text(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.json({"a": [1, 2]}))

    content = post(http, server.url, chat_body(user("Hi"))).json()["choices"][0]["message"]

    assert json.loads(content["content"]) == {"a": [1, 2]}


def test_reply_tool_calls_assigns_missing_ids(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.tool_calls([("a", {"x": 1}), ToolCall(id="given", name="b", arguments={})]))

    choice = post(http, server.url, chat_body(user("Hi"))).json()["choices"][0]

    calls = choice["message"]["tool_calls"]
    assert choice["finish_reason"] == "tool_calls"
    assert [call["function"]["name"] for call in calls] == ["a", "b"]
    assert calls[0]["id"].startswith("call_")
    assert calls[1]["id"] == "given"
    assert json.loads(calls[0]["function"]["arguments"]) == {"x": 1}


def test_reply_error_sends_openai_error_body(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.error(429, "slow down"))

    response = post(http, server.url, chat_body(user("Hi")))

    assert response.status_code == 429
    assert response.json()["error"]["message"] == "slow down"


def test_reply_disconnect_closes_without_answer(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.disconnect())

    with pytest.raises(httpx.RemoteProtocolError):
        post(http, server.url, chat_body(user("Hi")))


def test_reply_raw_sends_body_unchanged(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.raw(b"<html>", status=502, content_type="text/html"))

    response = post(http, server.url, chat_body(user("Hi")))

    assert response.status_code == 502
    assert response.text == "<html>"


def test_reply_cut_stream_stops_after_events(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.cut_stream(2, Reply.text("one two three four")))
    body = chat_body(user("Hi"), stream=True)

    received: list[str] = []

    def read_stream() -> None:
        with http.stream("POST", server.url + "/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    received.append(json.loads(line[6:])["choices"][0]["delta"]["content"])

    with pytest.raises(httpx.RemoteProtocolError):
        read_stream()

    assert received == ["one ", "two "]


def test_reply_cut_stream_truncates_plain_body(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.cut_stream(1))

    with pytest.raises(httpx.RemoteProtocolError):
        post(http, server.url, chat_body(user("Hi")))


# Streaming


def test_stream_sends_words_as_chunks(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.text("one two three"))

    events = sse_events(post(http, server.url, chat_body(user("Hi"), stream=True)))

    deltas = [event["choices"][0]["delta"].get("content") for event in events[:3]]
    assert deltas == ["one ", "two ", "three"]
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[3]["choices"][0]["finish_reason"] == "stop"
    assert events[-1] == "[DONE]"


def test_stream_sends_usage_when_requested(server: ModelServer, http: httpx.Client) -> None:
    body = chat_body(user("Hi there"), stream=True, stream_options={"include_usage": True})

    events = sse_events(post(http, server.url, body))

    usage_events = [event for event in events[:-1] if event.get("usage")]
    assert len(usage_events) == 1
    assert usage_events[0]["choices"] == []
    assert usage_events[0]["usage"]["prompt_tokens"] == 2


def test_stream_omits_usage_by_default(server: ModelServer, http: httpx.Client) -> None:
    events = sse_events(post(http, server.url, chat_body(user("Hi"), stream=True)))

    assert not [event for event in events[:-1] if event.get("usage")]


def test_stream_splits_tool_arguments(server: ModelServer, http: httpx.Client) -> None:
    server.script(Reply.tool_call("add", {"a": 1, "b": 2}, id="call_1"))

    events = sse_events(post(http, server.url, chat_body(user("Hi"), stream=True)))

    deltas = [
        event["choices"][0]["delta"]["tool_calls"][0]
        for event in events[:-1]
        if event["choices"] and "tool_calls" in event["choices"][0]["delta"]
    ]
    assert deltas[0]["id"] == "call_1"
    assert deltas[0]["function"]["name"] == "add"
    pieces = [delta["function"]["arguments"] for delta in deltas[1:]]
    assert len(pieces) >= 2
    assert json.loads("".join(pieces)) == {"a": 1, "b": 2}


# The default responder


def test_default_echoes_last_user_text() -> None:
    reply = default_reply(
        chat_body(user("first"), {"role": "assistant", "content": "x"}, user("Hi"))
    )

    assert reply.content == "This is a scripted answer to: Hi"
    assert reply.finish_reason == "stop"


def test_default_reads_text_parts() -> None:
    content = [{"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}]

    reply = default_reply(chat_body({"role": "user", "content": content}))

    assert reply.content == "This is a scripted answer to: Hello world"


def test_default_counts_words_as_tokens(server: ModelServer, http: httpx.Client) -> None:
    usage = post(http, server.url, chat_body(user("one two three"))).json()["usage"]

    assert usage["prompt_tokens"] == 3
    assert usage["completion_tokens"] == 9  # "This is a scripted answer to: one two three"


def test_default_calls_tool_named_in_prompt() -> None:
    body = chat_body(user("Please use second_tool now"), tools=[tool("first"), tool("second_tool")])

    assert default_reply(body).calls[0].name == "second_tool"


def test_default_calls_first_tool_otherwise() -> None:
    body = chat_body(user("Hello!"), tools=[tool("first"), tool("second")])

    assert default_reply(body).calls[0].name == "first"


def test_default_calls_forced_tool() -> None:
    choice = {"type": "function", "function": {"name": "second"}}
    body = chat_body(user("use first"), tools=[tool("first"), tool("second")], tool_choice=choice)

    assert default_reply(body).calls[0].name == "second"


def test_default_rejects_forced_unknown_tool() -> None:
    choice = {"type": "function", "function": {"name": "missing"}}
    body = chat_body(user("Hi"), tools=[tool("first")], tool_choice=choice)

    reply = default_reply(body)

    assert reply.kind == "error"
    assert reply.status == 400


def test_default_tool_choice_none_answers_text() -> None:
    body = chat_body(user("Hi"), tools=[tool("first")], tool_choice="none")

    reply = default_reply(body)

    assert reply.calls == ()
    assert reply.content == "This is a scripted answer to: Hi"


def test_default_answers_after_tool_result() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    body = chat_body(
        user("Weather?"),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "It's sunny."},
        tools=[tool("weather")],
    )

    reply = default_reply(body)

    assert reply.calls == ()
    assert "It's sunny." in reply.content


def test_default_arguments_follow_schema_types() -> None:
    schema = {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "flag": {"type": "boolean"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "inner": {
                "type": "object",
                "properties": {"depth": {"type": "integer"}},
                "required": ["depth"],
            },
            "name": {"type": "string"},
        },
        "required": ["count", "ratio", "flag", "unit", "tags", "inner", "name"],
    }

    arguments = tool_arguments(default_reply(chat_body(user("Go"), tools=[tool("t", schema)])))

    assert arguments == {
        "count": 3,
        "ratio": 3.0,
        "flag": True,
        "unit": "celsius",
        "tags": ["example"],
        "inner": {"depth": 3},
        "name": "example",
    }


def test_default_arguments_keep_required_and_defaults() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "integer", "default": 7},
            "c": {"type": "integer"},
        },
        "required": ["a"],
    }

    arguments = tool_arguments(default_reply(chat_body(user("Go"), tools=[tool("t", schema)])))

    assert arguments == {"a": 3, "b": 7}


def test_default_arguments_respect_bounds() -> None:
    schema = {
        "type": "object",
        "properties": {
            "low": {"type": "integer", "minimum": 10},
            "high": {"type": "integer", "exclusiveMaximum": 2},
        },
        "required": ["low", "high"],
    }

    arguments = tool_arguments(default_reply(chat_body(user("Go"), tools=[tool("t", schema)])))

    assert arguments == {"low": 10, "high": 1}


def test_default_arguments_resolve_refs_and_unions() -> None:
    class Address(pydantic.BaseModel):
        city: str

    class Person(pydantic.BaseModel):
        address: Address
        nickname: str | None
        age: int | None = None

    schema = Person.model_json_schema()

    arguments = tool_arguments(default_reply(chat_body(user("Go"), tools=[tool("t", schema)])))

    assert Person.model_validate(arguments) == Person(
        address=Address(city="example"), nickname="example"
    )


def test_default_string_takes_quoted_phrase() -> None:
    schema = {
        "type": "object",
        "properties": {"customer_name": {"type": "string"}},
        "required": ["customer_name"],
    }
    prompt = "Create a customer named '你好啊集团' (Hello Group)"

    arguments = tool_arguments(default_reply(chat_body(user(prompt), tools=[tool("t", schema)])))

    assert arguments == {"customer_name": "你好啊集团"}


def test_default_value_follows_parameter_name() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    }
    prompt = "Forecast for city: Paris, days=5."

    arguments = tool_arguments(default_reply(chat_body(user(prompt), tools=[tool("t", schema)])))

    assert arguments == {"city": "Paris", "days": 5}


def test_default_ignores_apostrophes_as_quotes() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    prompt = "What's the weather? It's cold."

    arguments = tool_arguments(default_reply(chat_body(user(prompt), tools=[tool("t", schema)])))

    assert arguments == {"q": "example"}


def test_default_json_schema_answer_validates() -> None:
    class Joke(pydantic.BaseModel):
        setup: str
        punchline: str | None = None

    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "Joke", "schema": Joke.model_json_schema()},
    }

    reply = default_reply(chat_body(user("Tell me a joke"), response_format=response_format))

    assert Joke.model_validate_json(reply.content) == Joke(setup="example")


def test_default_json_object_uses_quoted_keys() -> None:
    prompt = "Return JSON with 'setup' and 'punchline' keys."

    reply = default_reply(chat_body(user(prompt), response_format={"type": "json_object"}))

    assert json.loads(reply.content) == {"setup": "example", "punchline": "example"}


def test_default_stop_truncates_answer() -> None:
    reply = default_reply(chat_body(user("Hi"), stop=["scripted"]))

    assert reply.content == "This is a "
    assert reply.finish_reason == "stop"


def test_default_max_tokens_truncates_words() -> None:
    reply = default_reply(chat_body(user("Hi"), max_tokens=3))

    assert reply.content == "This is a"
    assert reply.finish_reason == "length"


# The clock


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock(1000.0)

    assert clock() == 1000.0
    assert clock.advance(30) == 1030.0
    clock.set(5.0)
    assert clock() == 5.0
