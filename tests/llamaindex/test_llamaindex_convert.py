"""Translation between LlamaIndex chat types and agentlease's neutral chat model."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    ChatResponse,
    ImageBlock,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)

from agentlease.errors import ConfigurationError
from agentlease.messages import ChatChunk, ToolCallDelta, Usage
from agentlease_llamaindex._convert import (
    StreamAccumulator,
    keep_first_tool_call,
    parse_tool_arguments,
    to_messages,
    to_tool_choice,
    to_tool_specs,
    tool_selections,
)


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (MessageRole.SYSTEM, "system"),
        (MessageRole.DEVELOPER, "system"),
        (MessageRole.USER, "user"),
        (MessageRole.ASSISTANT, "assistant"),
        (MessageRole.MODEL, "assistant"),
        (MessageRole.TOOL, "tool"),
    ],
)
def test_roles_mapped(role: MessageRole, expected: str) -> None:
    (message,) = to_messages([ChatMessage(role=role, content="x")])

    assert message.role == expected


def test_text_blocks_joined() -> None:
    blocks: list[Any] = [TextBlock(text="a"), TextBlock(text="b")]

    (message,) = to_messages([ChatMessage(role="user", blocks=blocks)])

    assert message.content == "a\nb"


def test_image_url_passed_without_download() -> None:
    blocks: list[Any] = [TextBlock(text="look"), ImageBlock(url="https://example.com/cat.png")]

    (message,) = to_messages([ChatMessage(role="user", blocks=blocks)])

    assert message.content == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]


def test_image_bytes_sent_as_data_url() -> None:
    blocks: list[Any] = [ImageBlock(image=b"\x89PNG", image_mimetype="image/png")]

    (message,) = to_messages([ChatMessage(role="user", blocks=blocks)])

    assert isinstance(message.content, list)
    part = message.content[0]
    assert part["image_url"]["url"] == "data:image/png;base64,iVBORw=="


def test_audio_block_rejected() -> None:
    blocks: list[Any] = [AudioBlock(audio=b"RIFF", format="wav")]

    with pytest.raises(ConfigurationError, match="'audio'"):
        to_messages([ChatMessage(role="user", blocks=blocks)])


def test_legacy_tool_calls_read() -> None:
    message = ChatMessage(
        role="assistant",
        content="",
        additional_kwargs={
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
            ]
        },
    )

    (converted,) = to_messages([message])

    assert [(c.id, c.name, dict(c.arguments)) for c in converted.tool_calls] == [
        ("c1", "f", {"a": 1})
    ]


def test_duplicate_tool_call_forms_merged() -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[ToolCallBlock(tool_call_id="c1", tool_name="f", tool_kwargs={"a": 1})],
        additional_kwargs={
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a": 1}'}}]
        },
    )

    assert len(to_messages([message])[0].tool_calls) == 1
    assert len(tool_selections(message)) == 1


def test_tool_message_keeps_call_id() -> None:
    message = ChatMessage(role="tool", content="done", additional_kwargs={"tool_call_id": "c1"})

    (converted,) = to_messages([message])

    assert converted.tool_call_id == "c1"


def test_tool_dict_converted() -> None:
    (spec,) = to_tool_specs(
        [{"type": "function", "function": {"name": "f", "description": "d", "strict": True}}]
    )

    assert spec.name == "f"
    assert spec.description == "d"
    assert spec.strict is True
    assert spec.parameters == {"type": "object", "properties": {}}


def test_tool_without_name_rejected() -> None:
    with pytest.raises(ConfigurationError, match="no function name"):
        to_tool_specs([{"type": "function", "function": {}}])


@pytest.mark.parametrize(
    ("choice", "required", "expected"),
    [
        (None, False, None),
        (None, True, "required"),
        ("auto", True, "auto"),
        ("lookup", False, "lookup"),
        ({"type": "function", "function": {"name": "lookup"}}, False, "lookup"),
        ({"type": "any"}, False, "any"),
    ],
)
def test_tool_choice_converted(choice: Any, required: bool, expected: str | None) -> None:
    assert to_tool_choice(choice, tool_required=required) == expected


def test_unreadable_tool_choice_rejected() -> None:
    with pytest.raises(ConfigurationError, match="tool_choice"):
        to_tool_choice(42, tool_required=False)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('{"a": [1, 2', {"a": [1, 2]}),
        ("not json", {}),
        ("[1, 2]", {}),
        ("", {}),
        (None, {}),
        ({"b": 2}, {"b": 2}),
    ],
)
def test_tool_arguments_parsed(arguments: Any, expected: dict[str, Any]) -> None:
    assert parse_tool_arguments(arguments) == expected


def test_stream_keeps_partial_arguments_as_text() -> None:
    accumulator = StreamAccumulator()

    response = accumulator.add(
        ChatChunk(tool_calls=(ToolCallDelta(index=0, id="c1", name="f", arguments='{"a": '),))
    )

    (block,) = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    assert block.tool_kwargs == '{"a": '


def test_stream_merges_arguments_by_index() -> None:
    accumulator = StreamAccumulator()
    accumulator.add(
        ChatChunk(tool_calls=(ToolCallDelta(index=0, id="c1", name="f", arguments='{"a": '),))
    )

    response = accumulator.add(
        ChatChunk(tool_calls=(ToolCallDelta(index=0, arguments="1}"),), usage=Usage(1, 2, 3))
    )

    (block,) = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    assert block.tool_kwargs == {"a": 1}
    assert (
        response.message.additional_kwargs["tool_calls"][0]["function"]["arguments"] == '{"a": 1}'
    )
    assert response.additional_kwargs == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
    }


def test_keep_first_tool_call_trims_both_forms() -> None:
    accumulator = StreamAccumulator()
    response = accumulator.add(
        ChatChunk(
            tool_calls=(
                ToolCallDelta(index=0, id="c1", name="f", arguments="{}"),
                ToolCallDelta(index=1, id="c2", name="g", arguments="{}"),
            )
        )
    )

    trimmed = keep_first_tool_call(response)

    assert [s.tool_name for s in tool_selections(trimmed.message)] == ["f"]
    assert len(trimmed.message.additional_kwargs["tool_calls"]) == 1


def test_keep_first_tool_call_without_calls_unchanged() -> None:
    response = ChatResponse(message=ChatMessage(role="assistant", content="hi"))

    assert keep_first_tool_call(response) is response
