"""Translation between LangChain messages and tools and the agentlease neutral chat model.

Requests go from LangChain to `agentlease.messages` (`to_messages`, `to_tool_specs`,
`normalize_tool_choice`), and responses come back as `AIMessage` (`to_ai_message`) or as a stream
of `AIMessageChunk` (`ChunkAssembler`). No credential passes through this module: the model
client attaches it below the messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    InputTokenDetails,
    OutputTokenDetails,
    SystemMessage,
    ToolMessage,
    UsageMetadata,
    convert_to_openai_data_block,
    is_data_content_block,
)
from langchain_core.messages.tool import tool_call, tool_call_chunk
from langchain_core.utils.function_calling import convert_to_openai_tool

from agentlease.errors import ConfigurationError
from agentlease.messages import (
    ChatChunk,
    ChatResponse,
    Message,
    Role,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = [
    "ChunkAssembler",
    "normalize_tool_choice",
    "openai_tool",
    "response_metadata",
    "to_ai_message",
    "to_messages",
    "to_tool_specs",
    "usage_metadata",
]

# Content blocks that describe what a model produced rather than what it is sent: tool calls
# travel in `tool_calls`, and reasoning is not replayed to a chat completions endpoint.
_SKIPPED_BLOCK_TYPES = frozenset(
    {
        "function_call",
        "non_standard",
        "reasoning",
        "redacted_thinking",
        "server_tool_call",
        "server_tool_call_chunk",
        "server_tool_result",
        "thinking",
        "tool_call",
        "tool_call_chunk",
        "tool_use",
    }
)

_CHAT_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "tool": "tool",
}

_TOOL_CHOICE_ALIASES = {"any": "required", "required": "required", "auto": "auto", "none": "none"}


# -- requests ----------------------------------------------------------------------------------


def to_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """Convert LangChain messages to agentlease messages.

    Raises:
        ConfigurationError: A message has a type or role agentlease cannot send, or an
            assistant tool call has no id.
    """
    return [_to_message(message) for message in messages]


def _to_message(message: BaseMessage) -> Message:
    name = message.name
    if isinstance(message, SystemMessage):
        return Message(role="system", content=_content(message.content), name=name)
    if isinstance(message, HumanMessage):
        return Message(role="user", content=_content(message.content), name=name)
    if isinstance(message, AIMessage):
        return Message(
            role="assistant",
            content=_content(message.content),
            tool_calls=tuple(_tool_calls(message)),
            name=name,
        )
    if isinstance(message, ToolMessage):
        return Message(
            role="tool",
            content=_content(message.content),
            tool_call_id=message.tool_call_id,
            name=name,
        )
    if isinstance(message, ChatMessage):
        role = _CHAT_ROLES.get(message.role)
        if role is None:
            known = ", ".join(sorted(_CHAT_ROLES))
            raise ConfigurationError(
                f"ChatMessage role {message.role!r} has no chat completions equivalent; "
                f"use one of: {known}."
            )
        return Message(role=role, content=_content(message.content), name=name)
    raise ConfigurationError(
        f"Message type {type(message).__name__!r} cannot be sent to a model route; "
        "use SystemMessage, HumanMessage, AIMessage or ToolMessage."
    )


def _tool_calls(message: AIMessage) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for call in message.tool_calls:
        call_id = call["id"]
        if not call_id:
            raise ConfigurationError(
                f"The AIMessage tool call to {call['name']!r} has no id; give every tool call "
                "an id so that its ToolMessage can refer to it."
            )
        calls.append(ToolCall(id=call_id, name=call["name"], arguments=dict(call["args"])))
    return calls


def _content(content: str | list[str | dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Return text as a string, or OpenAI-style content parts when there is more than text."""
    if isinstance(content, str):
        return content

    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
            continue
        part = _content_part(block)
        if part is not None:
            parts.append(part)

    if all(part.get("type") == "text" for part in parts):
        return "\n".join(str(part.get("text", "")) for part in parts)
    return parts


def _content_part(block: dict[str, Any]) -> dict[str, Any] | None:
    block_type = block.get("type")
    if block_type in _SKIPPED_BLOCK_TYPES:
        return None
    if block_type == "text":
        return {"type": "text", "text": block.get("text", "")}
    if is_data_content_block(block):
        return convert_to_openai_data_block(block)
    source = block.get("source")
    if block_type == "image" and isinstance(source, Mapping):
        # An Anthropic-style base64 image.
        source = cast("Mapping[str, Any]", source)
        url = f"data:{source.get('media_type')};{source.get('type')},{source.get('data')}"
        return {"type": "image_url", "image_url": {"url": url}}
    # OpenAI parts (image_url, input_audio, file) and anything else pass through unchanged.
    return dict(block)


def to_tool_specs(tools: Sequence[Any], *, strict: bool | None = None) -> list[ToolSpec]:
    """Convert tools in any form LangChain accepts to agentlease tool specs.

    Raises:
        ConfigurationError: A tool is not a function tool.
    """
    specs: list[ToolSpec] = []
    for tool in tools:
        formatted = openai_tool(tool, strict=strict)
        function = cast("dict[str, Any]", formatted["function"])
        specs.append(
            ToolSpec(
                name=function["name"],
                description=function.get("description") or "",
                parameters=function.get("parameters") or {"type": "object", "properties": {}},
                strict=function.get("strict"),
            )
        )
    return specs


def openai_tool(tool: Any, *, strict: bool | None = None) -> dict[str, Any]:
    """Return a tool in OpenAI function-tool form.

    Raises:
        ConfigurationError: The tool is a provider built-in tool rather than a function tool.
    """
    if _is_function_tool(tool):
        formatted = cast("dict[str, Any]", tool)
        if strict is not None:
            formatted = {**formatted, "function": {**formatted["function"], "strict": strict}}
        return formatted
    formatted = convert_to_openai_tool(tool, strict=strict)
    if not _is_function_tool(formatted):
        raise ConfigurationError(
            f"Tool {tool!r} is not a function tool; agentlease routes accept function tools "
            "only, so define it as a LangChain tool, a function or a JSON schema."
        )
    return formatted


def _is_function_tool(tool: object) -> bool:
    if not isinstance(tool, Mapping):
        return False
    mapping = cast("Mapping[str, Any]", tool)
    function = mapping.get("function")
    return (
        mapping.get("type") == "function" and isinstance(function, Mapping) and "name" in function
    )


def normalize_tool_choice(choice: object, tool_names: Sequence[str]) -> str | None:
    """Return a tool choice as agentlease expects it: auto, none, required or a tool name.

    LangChain callers pass ``"any"``, ``True``, a tool name or an OpenAI tool choice dict.

    Raises:
        ConfigurationError: The choice names no bound tool or has an unknown form.
    """
    if choice is None or choice is False:
        return None
    if choice is True:
        return "required"
    if isinstance(choice, Mapping):
        mapping = cast("Mapping[str, Any]", choice)
        function = mapping.get("function")
        name = (
            cast("Mapping[str, Any]", function).get("name")
            if isinstance(function, Mapping)
            else None
        )
        if not isinstance(name, str):
            raise ConfigurationError(
                f"tool_choice {choice!r} has no function name; pass a tool name, 'auto', "
                "'none', 'any' or 'required'."
            )
        choice = name
    if not isinstance(choice, str):
        raise ConfigurationError(
            f"tool_choice {choice!r} has an unknown type; pass a tool name, 'auto', 'none', "
            "'any' or 'required'."
        )
    if choice in tool_names:
        return choice
    alias = _TOOL_CHOICE_ALIASES.get(choice)
    if alias is None:
        raise ConfigurationError(
            f"tool_choice {choice!r} names no bound tool (bound: {list(tool_names)}); pass one "
            "of those names, 'auto', 'none', 'any' or 'required'."
        )
    return alias


# -- responses ---------------------------------------------------------------------------------


def response_metadata(model: str, finish_reason: str | None, route: str | None) -> dict[str, Any]:
    """Return the `response_metadata` of a response: model name, finish reason and route."""
    metadata: dict[str, Any] = {"model_name": model, "finish_reason": finish_reason}
    if route is not None:
        metadata["agentlease_route"] = route
    return metadata


def usage_metadata(usage: Usage) -> UsageMetadata:
    """Convert agentlease token counts to LangChain usage metadata."""
    # A cast, because pyright checks against Python 3.10, where LangChain's NotRequired keys
    # of UsageMetadata are unknown and so count as required.
    metadata = cast(
        "UsageMetadata",
        {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens or usage.input_tokens + usage.output_tokens,
        },
    )
    if usage.cache_read_tokens is not None:
        metadata["input_token_details"] = InputTokenDetails(cache_read=usage.cache_read_tokens)
    if usage.reasoning_tokens is not None:
        metadata["output_token_details"] = OutputTokenDetails(reasoning=usage.reasoning_tokens)
    return metadata


def to_ai_message(response: ChatResponse) -> AIMessage:
    """Convert a complete agentlease response to an `AIMessage`."""
    message = response.message
    content = message.content if isinstance(message.content, str) else _parts(message.content)
    return AIMessage(
        content=content,
        tool_calls=[
            tool_call(name=call.name, args=dict(call.arguments), id=call.id)
            for call in message.tool_calls
        ],
        usage_metadata=usage_metadata(response.usage) if response.usage is not None else None,
        response_metadata=response_metadata(response.model, response.finish_reason, response.route),
        id=response.id,
    )


def _parts(content: Sequence[Mapping[str, Any]]) -> list[str | dict[str, Any]]:
    return [dict(part) for part in content]


class ChunkAssembler:
    """Converts the chunks of one agentlease stream to `AIMessageChunk`s.

    Every chunk that carries output or usage becomes one `AIMessageChunk`, so only the one
    chunk with usage has `usage_metadata`. `last()` builds the closing chunk with
    ``chunk_position="last"`` and the response metadata, which would be concatenated if
    several chunks carried it.

    Args:
        requested_model: The model name to report when the provider reports none.
    """

    def __init__(self, requested_model: str) -> None:
        self._model = requested_model
        self._route: str | None = None
        self._finish_reason: str | None = None
        self._id: str | None = None

    def convert(self, chunk: ChatChunk) -> AIMessageChunk | None:
        """Return the LangChain chunk for `chunk`, or None when it carries no output."""
        if chunk.model:
            self._model = chunk.model
        if chunk.route:
            self._route = chunk.route
        if chunk.finish_reason:
            self._finish_reason = chunk.finish_reason
        if chunk.id and self._id is None:
            self._id = chunk.id

        if not chunk.content and not chunk.tool_calls and chunk.usage is None:
            return None
        return AIMessageChunk(
            content=chunk.content,
            tool_call_chunks=[
                tool_call_chunk(
                    name=delta.name,
                    args=delta.arguments,
                    id=delta.id,
                    index=delta.index,
                )
                for delta in chunk.tool_calls
            ],
            usage_metadata=usage_metadata(chunk.usage) if chunk.usage is not None else None,
            id=self._id,
        )

    def last(self) -> AIMessageChunk:
        """Return the closing chunk of the stream."""
        return AIMessageChunk(
            content="",
            chunk_position="last",
            response_metadata=response_metadata(self._model, self._finish_reason, self._route),
            id=self._id,
        )
