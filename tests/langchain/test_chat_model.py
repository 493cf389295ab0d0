"""SecureChatModel: construction, tracing parameters, routing, streaming and structured output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from pydantic import BaseModel, Field

import agentlease
from agentlease.audit import AuditRecord
from agentlease.errors import (
    ConfigurationError,
    NoPermittedRouteError,
    ProviderResponseError,
    UnknownRouteError,
)
from agentlease.testing import ModelServer, Reply
from agentlease_langchain import SecureChatModel


class Weather(BaseModel):
    """The weather in a city."""

    city: str = Field(description="The city name")
    degrees: int = Field(description="The temperature in Celsius")


def _paths(server: ModelServer) -> list[str]:
    return [request.path for request in server.requests]


def _last_body(server: ModelServer) -> dict[str, Any]:
    return server.requests[-1].json


def _stream(model: SecureChatModel, prompt: str) -> list[AIMessageChunk]:
    return list(model.stream(prompt))


# -- construction ------------------------------------------------------------------------------


def test_constructor_rejects_unknown_argument() -> None:
    with pytest.raises(ConfigurationError, match="purpse"):
        SecureChatModel(purpse="x")


def test_constructor_rejects_api_key() -> None:
    with pytest.raises(ConfigurationError, match="credentials come from the route"):
        SecureChatModel(api_key="sk-test")


def test_constructor_accepts_model_name_alias() -> None:
    assert SecureChatModel(model_name="secure").model == "secure"


def test_constructor_rejects_empty_model() -> None:
    with pytest.raises(ValueError, match="at least 1 character"):
        SecureChatModel(model="")


def test_repr_omits_runtime(runtime: agentlease.Runtime) -> None:
    model = SecureChatModel(runtime=runtime)
    assert "Runtime" not in repr(model)
    assert "runtime" not in model.model_dump()


# -- tracing parameters ------------------------------------------------------------------------


def test_ls_params_name_first_candidate_route(runtime: agentlease.Runtime) -> None:
    params = SecureChatModel(temperature=0.5, max_tokens=7)._get_ls_params(stop=["END"])
    assert params["ls_provider"] == "openai"
    assert params["ls_model_name"] == "fast-model"
    assert params["ls_temperature"] == 0.5
    assert params["ls_max_tokens"] == 7
    assert params["ls_stop"] == ["END"]


def test_ls_params_honour_model_override(runtime: agentlease.Runtime) -> None:
    params = SecureChatModel()._get_ls_params(model="secure")
    assert params["ls_model_name"] == "secure-model"


def test_ls_params_keep_unknown_model_name(runtime: agentlease.Runtime) -> None:
    params = SecureChatModel()._get_ls_params(model="nobody-serves-this")
    assert params["ls_model_name"] == "nobody-serves-this"
    assert params["ls_provider"] == "agentlease"


# -- calls -------------------------------------------------------------------------------------


def test_invoke_reports_route_model_and_usage(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    message = SecureChatModel().invoke("Hello there")
    assert isinstance(message, AIMessage)
    assert message.response_metadata["model_name"] == "fast-model"
    assert message.response_metadata["agentlease_route"] == "fast"
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.usage_metadata is not None
    assert message.usage_metadata["total_tokens"] > 0
    assert _paths(model_server) == ["/fast/v1/chat/completions"]


def test_invoke_routes_confidential_task_to_secure_route(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    with agentlease.task("review", data_class="confidential"):
        message = SecureChatModel().invoke("Summarise the contract")
    assert message.response_metadata["agentlease_route"] == "secure"
    assert _paths(model_server) == ["/secure/v1/chat/completions"]


def test_invoke_restricted_task_raises_no_permitted_route(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    with (
        pytest.raises(NoPermittedRouteError) as caught,
        agentlease.task("vault", data_class="restricted"),
    ):
        SecureChatModel().invoke("Read the vault")
    assert isinstance(caught.value, PermissionError)
    assert model_server.requests == []


def test_invoke_unknown_model_raises_unknown_route(runtime: agentlease.Runtime) -> None:
    with pytest.raises(UnknownRouteError):
        SecureChatModel(model="nobody-serves-this").invoke("Hi")


def test_invoke_provider_error_propagates_unchanged(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    model_server.script(Reply.error(400, "bad request body"))
    with pytest.raises(ProviderResponseError, match="bad request body"):
        SecureChatModel(model="fast").invoke("Hi")


async def test_ainvoke_runs_inside_async_task(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    async with agentlease.task("async-review") as opened:
        message = await SecureChatModel().ainvoke("Hello")
    assert message.response_metadata["agentlease_route"] == "fast"
    calls = [r for r in audit_records() if r.action == "model.call"]
    assert [r.session_id for r in calls] == [opened.id]


def test_invoke_sends_fields_and_model_kwargs(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    model = SecureChatModel(temperature=0.2, max_tokens=50, stop=["STOP"], model_kwargs={"seed": 7})
    model.invoke("Hello")
    body = _last_body(model_server)
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 50
    assert body["stop"] == ["STOP"]
    assert body["seed"] == 7


def test_invoke_call_kwargs_override_fields(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    model = SecureChatModel(temperature=0.2, stop=["STOP"])
    model.invoke("Hello", temperature=0.9, stop=["HALT"], model="secure")
    body = _last_body(model_server)
    assert body["temperature"] == 0.9
    assert body["stop"] == ["HALT"]
    assert body["model"] == "secure-model"


def test_invoke_sends_tool_history(runtime: agentlease.Runtime, model_server: ModelServer) -> None:
    model = SecureChatModel()
    history = [
        HumanMessage("What is 1 + 2?"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1"}]),
    ]
    model.invoke([*history, {"role": "tool", "content": "3", "tool_call_id": "call_1"}])
    messages = _last_body(model_server)["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "call_1"
    assert messages[2] == {"role": "tool", "content": "3", "tool_call_id": "call_1"}


# -- streaming ---------------------------------------------------------------------------------


def test_stream_puts_metadata_on_last_chunk_only(runtime: agentlease.Runtime) -> None:
    chunks = _stream(SecureChatModel(), "Tell me something")
    assert chunks[-1].chunk_position == "last"
    assert chunks[-1].response_metadata["model_name"] == "fast-model"
    assert chunks[-1].response_metadata["agentlease_route"] == "fast"
    assert all("model_name" not in chunk.response_metadata for chunk in chunks[:-1])


def test_stream_reports_usage_once(runtime: agentlease.Runtime) -> None:
    chunks = _stream(SecureChatModel(), "Tell me something")
    with_usage = [chunk for chunk in chunks if chunk.usage_metadata]
    assert len(with_usage) == 1


def test_stream_text_matches_invoke(runtime: agentlease.Runtime) -> None:
    model = SecureChatModel()
    streamed = "".join(chunk.text for chunk in _stream(model, "Tell me something"))
    assert streamed == model.invoke("Tell me something").text


def test_stream_merges_tool_call_chunks(runtime: agentlease.Runtime) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    model = SecureChatModel().bind_tools([add], tool_choice="add")
    chunks = list(model.stream("Use add with a: 4 and b: 5"))
    indexes = [c["index"] for chunk in chunks for c in getattr(chunk, "tool_call_chunks", [])]
    assert indexes
    assert all(isinstance(index, int) for index in indexes)
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert isinstance(merged, AIMessageChunk)
    assert merged.tool_calls[0]["name"] == "add"
    assert merged.tool_calls[0]["args"] == {"a": 4, "b": 5}


def test_streaming_field_streams_invoke(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    SecureChatModel(streaming=True).invoke("Hello")
    assert _last_body(model_server)["stream"] is True


# -- tools and structured output ---------------------------------------------------------------


def test_bind_tools_sends_forced_tool_choice(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    message = SecureChatModel().bind_tools([Weather], tool_choice="any").invoke("Weather?")
    assert isinstance(message, AIMessage)
    assert message.tool_calls[0]["name"] == "Weather"
    assert _last_body(model_server)["tool_choice"] == "required"


def test_bind_tools_rejects_unknown_tool_choice() -> None:
    with pytest.raises(ConfigurationError, match="names no bound tool"):
        SecureChatModel().bind_tools([Weather], tool_choice="Forecast")


def test_bind_tools_passes_extra_kwargs_to_bind() -> None:
    bound = SecureChatModel().bind_tools([Weather], parallel_tool_calls=False, seed=3)
    assert bound.kwargs["parallel_tool_calls"] is False  # type: ignore[attr-defined]
    assert bound.kwargs["seed"] == 3  # type: ignore[attr-defined]


def test_structured_output_function_calling(runtime: agentlease.Runtime) -> None:
    result = SecureChatModel().with_structured_output(Weather).invoke("city: Paris")
    assert result == Weather(city="Paris", degrees=3)


def test_structured_output_json_schema(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    structured = SecureChatModel().with_structured_output(Weather, method="json_schema")
    assert structured.invoke("city: Lyon") == Weather(city="Lyon", degrees=3)
    response_format = _last_body(model_server)["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Weather"


def test_structured_output_json_mode(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    structured = SecureChatModel().with_structured_output(method="json_mode")
    assert structured.invoke('Answer with the keys "city" and "degrees"') == {
        "city": "example",
        "degrees": "example",
    }
    assert _last_body(model_server)["response_format"] == {"type": "json_object"}


def test_structured_output_include_raw_keeps_parsing_error(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    model_server.script(Reply.text("not json"))
    structured = SecureChatModel().with_structured_output(
        Weather, method="json_schema", include_raw=True
    )
    result = structured.invoke("city: Lyon")
    assert isinstance(result, dict)
    assert isinstance(result["raw"], AIMessage)
    assert result["parsed"] is None
    assert result["parsing_error"] is not None


def test_structured_output_rejects_unknown_method() -> None:
    with pytest.raises(ConfigurationError, match="xml"):
        SecureChatModel().with_structured_output(Weather, method="xml")  # type: ignore[arg-type]


def test_structured_output_rejects_unknown_argument() -> None:
    with pytest.raises(ConfigurationError, match="unknown arguments"):
        SecureChatModel().with_structured_output(Weather, mode="fast")


# -- credentials in provider parameters --------------------------------------------------------


@pytest.mark.parametrize("name", ["api_key", "Authorization", "extra_headers", "x_access_token"])
def test_model_kwargs_credential_rejected(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        SecureChatModel(model_kwargs={name: "value"})


def test_call_kwarg_credential_rejected(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    with pytest.raises(ConfigurationError, match="api_key"):
        SecureChatModel().invoke("Hello", api_key="value")
    assert model_server.requests == []


def test_model_kwargs_token_limits_allowed() -> None:
    model = SecureChatModel(model_kwargs={"max_completion_tokens": 5})
    assert model.model_kwargs == {"max_completion_tokens": 5}


# -- stream lifetime ---------------------------------------------------------------------------


def test_stream_closed_early_ends_model_call(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    stream = SecureChatModel().stream("Tell me a long story about a cat")
    next(stream)
    stream.close()
    (call,) = [r for r in audit_records() if r.action == "model.call"]
    assert call.attributes["stream_closed_early"] is True
    assert audit_records()[-1].action == "task.end"
