"""Translation between LangChain messages and tools and agentlease's neutral chat model."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from pydantic import BaseModel

from agentlease.errors import ConfigurationError
from agentlease.messages import (
    ChatChunk,
    ChatResponse,
    Message,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from agentlease_langchain._convert import (
    ChunkAssembler,
    normalize_tool_choice,
    to_ai_message,
    to_messages,
    to_tool_specs,
    usage_metadata,
)

pytestmark = pytest.mark.disable_socket


class Forecast(BaseModel):
    """A weather forecast."""

    city: str


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# -- messages ----------------------------------------------------------------------------------


def test_messages_map_roles_and_names() -> None:
    converted = to_messages(
        [
            SystemMessage("Be brief."),
            HumanMessage("Hi", name="ada"),
            AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1}, "id": "c1"}]),
            ToolMessage("2", tool_call_id="c1"),
        ]
    )
    assert converted == [
        Message(role="system", content="Be brief."),
        Message(role="user", content="Hi", name="ada"),
        Message(
            role="assistant",
            content="",
            tool_calls=(ToolCall(id="c1", name="add", arguments={"a": 1}),),
        ),
        Message(role="tool", content="2", tool_call_id="c1"),
    ]


@pytest.mark.parametrize(
    ("role", "expected"),
    [("developer", "system"), ("human", "user"), ("ai", "assistant"), ("user", "user")],
)
def test_chat_message_roles_mapped(role: str, expected: str) -> None:
    (message,) = to_messages([ChatMessage(role=role, content="x")])
    assert message.role == expected


def test_chat_message_unknown_role_rejected() -> None:
    with pytest.raises(ConfigurationError, match="critic"):
        to_messages([ChatMessage(role="critic", content="x")])


def test_function_message_rejected() -> None:
    with pytest.raises(ConfigurationError, match="FunctionMessage"):
        to_messages([FunctionMessage(name="f", content="x")])


def test_tool_call_without_id_rejected() -> None:
    message = AIMessage("", tool_calls=[{"name": "add", "args": {}, "id": None}])
    with pytest.raises(ConfigurationError, match="no id"):
        to_messages([message])


def test_text_blocks_joined_to_string() -> None:
    (message,) = to_messages([HumanMessage(["one", {"type": "text", "text": "two"}])])
    assert message.content == "one\ntwo"


def test_image_block_becomes_image_url_part() -> None:
    image = {"type": "image", "base64": "AAAA", "mime_type": "image/png"}
    (message,) = to_messages([HumanMessage([{"type": "text", "text": "Look"}, image])])
    assert message.content == [
        {"type": "text", "text": "Look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]


def test_tool_use_and_thinking_blocks_dropped() -> None:
    content: list[Any] = [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Calling"},
        {"type": "tool_use", "id": "c1", "name": "add", "input": {"a": 1}},
    ]
    message = AIMessage(content, tool_calls=[{"name": "add", "args": {"a": 1}, "id": "c1"}])
    (converted,) = to_messages([message])
    assert converted.content == "Calling"
    assert converted.tool_calls == (ToolCall(id="c1", name="add", arguments={"a": 1}),)


# -- tools -------------------------------------------------------------------------------------


def test_tool_specs_from_tool_model_and_dict() -> None:
    raw = {
        "type": "function",
        "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}},
    }
    specs = to_tool_specs([add, Forecast, raw])
    assert [spec.name for spec in specs] == ["add", "Forecast", "ping"]
    assert specs[0].description == "Add two integers."
    assert set(specs[0].parameters["properties"]) == {"a", "b"}
    assert specs[2] == ToolSpec(name="ping", parameters={"type": "object", "properties": {}})


def test_tool_specs_carry_strict() -> None:
    (spec,) = to_tool_specs([Forecast], strict=True)
    assert spec.strict is True


def test_builtin_tool_rejected() -> None:
    with pytest.raises(ConfigurationError, match="not a function tool"):
        to_tool_specs([{"type": "web_search"}])


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        (False, None),
        (True, "required"),
        ("any", "required"),
        ("required", "required"),
        ("auto", "auto"),
        ("none", "none"),
        ("add", "add"),
        ({"type": "function", "function": {"name": "add"}}, "add"),
    ],
)
def test_tool_choice_normalized(choice: object, expected: str | None) -> None:
    assert normalize_tool_choice(choice, ["add"]) == expected


def test_tool_choice_unknown_name_rejected() -> None:
    with pytest.raises(ConfigurationError, match="subtract"):
        normalize_tool_choice("subtract", ["add"])


def test_tool_choice_dict_without_name_rejected() -> None:
    with pytest.raises(ConfigurationError, match="no function name"):
        normalize_tool_choice({"type": "function"}, ["add"])


# -- responses ---------------------------------------------------------------------------------


def test_response_becomes_ai_message() -> None:
    response = ChatResponse(
        message=Message(
            role="assistant",
            content="Sum is 3",
            tool_calls=(ToolCall(id="c1", name="add", arguments={"a": 1, "b": 2}),),
        ),
        model="fast-model",
        route="fast",
        provider="openai",
        finish_reason="tool_calls",
        usage=Usage(input_tokens=5, output_tokens=3, total_tokens=8),
        id="resp-1",
    )
    message = to_ai_message(response)
    assert message.content == "Sum is 3"
    assert message.tool_calls[0]["args"] == {"a": 1, "b": 2}
    assert message.tool_calls[0]["id"] == "c1"
    assert message.id == "resp-1"
    assert message.usage_metadata == {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
    assert message.response_metadata == {
        "model_name": "fast-model",
        "finish_reason": "tool_calls",
        "agentlease_route": "fast",
    }


def test_usage_details_converted() -> None:
    usage = Usage(
        input_tokens=10, output_tokens=4, total_tokens=0, cache_read_tokens=6, reasoning_tokens=2
    )
    metadata = usage_metadata(usage)
    assert metadata["total_tokens"] == 14
    assert metadata.get("input_token_details") == {"cache_read": 6}
    assert metadata.get("output_token_details") == {"reasoning": 2}


def test_assembler_skips_empty_chunk() -> None:
    assembler = ChunkAssembler("default")
    assert assembler.convert(ChatChunk(model="fast-model", route="fast")) is None


def test_assembler_converts_tool_call_delta() -> None:
    chunk = ChatChunk(tool_calls=(ToolCallDelta(index=0, id="c1", name="add", arguments='{"a"'),))
    message = ChunkAssembler("default").convert(chunk)
    assert message is not None
    assert message.tool_call_chunks == [
        {"name": "add", "args": '{"a"', "id": "c1", "index": 0, "type": "tool_call_chunk"}
    ]


def test_assembler_last_chunk_carries_metadata() -> None:
    assembler = ChunkAssembler("default")
    assembler.convert(ChatChunk(content="Hi", model="fast-model", route="fast", id="r1"))
    assembler.convert(ChatChunk(finish_reason="stop"))
    last = assembler.last()
    assert last.chunk_position == "last"
    assert last.id == "r1"
    assert last.response_metadata == {
        "model_name": "fast-model",
        "finish_reason": "stop",
        "agentlease_route": "fast",
    }


def test_assembler_reports_requested_model_without_provider_model() -> None:
    assert ChunkAssembler("default").last().response_metadata["model_name"] == "default"
