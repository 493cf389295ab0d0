"""Translation between LlamaIndex chat types and agentlease's neutral chat model.

Assistant tool calls are written both as `ToolCallBlock`s (the LlamaIndex 0.14 form) and as
OpenAI-style dictionaries under ``additional_kwargs["tool_calls"]``, because parts of
llama-index-core (streamed structured output) still read only the latter. Reading a message
back merges both forms by call id.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from io import IOBase
from typing import Any, cast

from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    ImageBlock,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.base.llms.types import ChatResponse as LlamaChatResponse
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import (
    parse_partial_json,  # pyright: ignore[reportUnknownVariableType]
)

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

_parse_partial_json: Callable[[str], object] = parse_partial_json  # pyright: ignore[reportUnknownVariableType]

__all__ = [
    "StreamAccumulator",
    "completion_from_chat",
    "keep_first_tool_call",
    "parse_tool_arguments",
    "to_llama_response",
    "to_messages",
    "to_tool_choice",
    "to_tool_specs",
    "tool_selections",
]

logger = logging.getLogger(__name__)

_ROLES: dict[str, Role] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
    MessageRole.CHATBOT.value: "assistant",
    MessageRole.TOOL.value: "tool",
    MessageRole.FUNCTION.value: "tool",
}

# Blocks that carry no content for the model: reasoning traces and provider cache markers.
_SKIPPED_BLOCKS = frozenset({"thinking", "cache"})


# -- requests ------------------------------------------------------------------------------


def to_messages(messages: Sequence[ChatMessage]) -> list[Message]:
    """Convert LlamaIndex chat messages to neutral messages.

    Raises:
        ConfigurationError: A message has a role or a content block that agentlease cannot
            send (audio, video and document blocks).
    """
    return [_to_message(message) for message in messages]


def _to_message(message: ChatMessage) -> Message:
    role_name = message.role.value
    role = _ROLES.get(role_name)
    if role is None:
        raise ConfigurationError(
            f"Chat message role {role_name!r} is not supported; use system, user, assistant "
            "or tool."
        )

    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    calls: dict[str, ToolCall] = {}
    for block in message.blocks:
        if isinstance(block, TextBlock):
            texts.append(block.text)
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(_image_part(block))
        elif isinstance(block, ToolCallBlock):
            call = ToolCall(
                id=block.tool_call_id or f"call_{len(calls)}",
                name=block.tool_name,
                arguments=parse_tool_arguments(block.tool_kwargs),
            )
            calls[call.id] = call
        elif block.block_type not in _SKIPPED_BLOCKS:
            raise ConfigurationError(
                f"Content block {block.block_type!r} cannot be sent through agentlease; "
                "send text or images, or extract the text first."
            )
    for call in _legacy_tool_calls(message.additional_kwargs):
        calls.setdefault(call.id, call)

    has_images = any(part["type"] == "image_url" for part in parts)
    content: str | list[dict[str, Any]] = parts if has_images else "\n".join(texts)
    tool_call_id = message.additional_kwargs.get("tool_call_id")
    name = message.additional_kwargs.get("name")
    return Message(
        role=role,
        content=content,
        tool_calls=tuple(calls.values()) if role == "assistant" else (),
        tool_call_id=str(tool_call_id) if role == "tool" and tool_call_id is not None else None,
        name=str(name) if isinstance(name, str) else None,
    )


def _image_part(block: ImageBlock) -> dict[str, Any]:
    if block.url is not None and block.image is None and block.path is None:
        # A remote image is passed by URL, so agentlease never downloads it.
        url = str(block.url)
    else:
        # `resolve_image` returns a caller's own buffer unchanged, so encode that one here.
        is_buffer = isinstance(block.image, IOBase)
        data = block.resolve_image(as_base64=not is_buffer).read()
        encoded = base64.b64encode(data).decode("ascii") if is_buffer else data.decode("ascii")
        mimetype = block.image_mimetype or "image/png"
        url = f"data:{mimetype};base64,{encoded}"
    image_url: dict[str, Any] = {"url": url}
    if block.detail:
        image_url["detail"] = block.detail
    return {"type": "image_url", "image_url": image_url}


def _legacy_tool_calls(additional_kwargs: Mapping[str, Any]) -> list[ToolCall]:
    """Read OpenAI-style tool calls (dicts or SDK objects) from ``additional_kwargs``."""
    raw_calls = additional_kwargs.get("tool_calls")
    if not isinstance(raw_calls, list):
        return []
    calls: list[ToolCall] = []
    for index, raw in enumerate(cast(list[Any], raw_calls)):
        if isinstance(raw, Mapping):
            item = cast(Mapping[str, Any], raw)
            function = cast(Mapping[str, Any], item.get("function") or {})
            call_id, name, arguments = (
                item.get("id"),
                function.get("name"),
                function.get("arguments"),
            )
        elif isinstance(raw, ToolSelection):
            call_id, name, arguments = raw.tool_id, raw.tool_name, raw.tool_kwargs
        else:
            function = getattr(raw, "function", None)
            call_id = getattr(raw, "id", None)
            name = getattr(function, "name", None)
            arguments = getattr(function, "arguments", None)
        if not isinstance(name, str) or not name:
            continue
        calls.append(
            ToolCall(
                id=str(call_id) if call_id else f"call_{index}",
                name=name,
                arguments=parse_tool_arguments(arguments),
            )
        )
    return calls


def to_tool_specs(tools: Sequence[Any]) -> list[ToolSpec]:
    """Convert tool descriptions to neutral tool specs.

    Accepts `ToolSpec`s, OpenAI-style tool dictionaries (what `ToolMetadata.to_openai_tool`
    returns) and LlamaIndex tools.

    Raises:
        ConfigurationError: An item is not a `ToolSpec`, a tool dictionary or a LlamaIndex tool.
    """
    specs: list[ToolSpec] = []
    for tool in tools:
        if isinstance(tool, ToolSpec):
            specs.append(tool)
            continue
        if not isinstance(tool, Mapping):
            metadata = getattr(tool, "metadata", None)
            to_openai_tool = getattr(metadata, "to_openai_tool", None)
            if to_openai_tool is None:
                raise ConfigurationError(
                    f"Cannot describe tool {tool!r} to the model; pass a LlamaIndex tool or "
                    "an OpenAI-style tool dictionary."
                )
            tool = to_openai_tool(skip_length_check=True)
        item = cast(Mapping[str, Any], tool)
        function = cast(Mapping[str, Any], item.get("function", item))
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigurationError(
                "A tool dictionary has no function name; pass "
                "{'type': 'function', 'function': {'name': ..., 'parameters': ...}}."
            )
        parameters: Any = function.get("parameters") or {"type": "object", "properties": {}}
        strict = function.get("strict")
        specs.append(
            ToolSpec(
                name=name,
                description=str(function.get("description") or ""),
                parameters=cast(Mapping[str, Any], parameters),
                strict=strict if isinstance(strict, bool) else None,
            )
        )
    return specs


def to_tool_choice(tool_choice: Any, *, tool_required: bool) -> str | None:
    """Convert a LlamaIndex or OpenAI-style tool choice to agentlease's form.

    A string is ``"auto"``, ``"none"``, ``"required"``, ``"any"`` or a tool name; an
    OpenAI-style dictionary names one function. With no explicit choice, `tool_required`
    gives ``"required"``.
    """
    if tool_choice is None:
        return "required" if tool_required else None
    if isinstance(tool_choice, str):
        return tool_choice
    if isinstance(tool_choice, Mapping):
        item = cast(Mapping[str, Any], tool_choice)
        function = item.get("function")
        if isinstance(function, Mapping):
            name = cast(Mapping[str, Any], function).get("name")
            if isinstance(name, str) and name:
                return name
        name = item.get("name")
        if isinstance(name, str) and name:
            return name
        kind = item.get("type")
        if kind in ("auto", "none", "required", "any"):
            return str(kind)
    raise ConfigurationError(
        f"Cannot read tool_choice {tool_choice!r}; use 'auto', 'none', 'required', a tool "
        "name, or {'type': 'function', 'function': {'name': ...}}."
    )


def parse_tool_arguments(arguments: Any) -> dict[str, Any]:
    """Return tool call arguments as a dictionary.

    Strings are parsed as JSON. Incomplete JSON from a stream in progress is completed where
    possible, and anything that still does not parse to an object gives ``{}``.
    """
    if isinstance(arguments, Mapping):
        return dict(cast(Mapping[str, Any], arguments))
    if isinstance(arguments, str) and arguments.strip():
        try:
            parsed = _parse_partial_json(arguments)
        except (ValueError, TypeError):
            return {}
        if isinstance(parsed, dict):
            return cast(dict[str, Any], parsed)
    return {}


# -- responses -----------------------------------------------------------------------------


def _usage_kwargs(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {}
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _raw(
    *,
    response_id: str | None,
    model: str | None,
    route: str | None,
    provider: str | None,
    finish_reason: str | None,
    usage: Usage | None,
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": response_id,
        "model": model,
        "agentlease_route": route,
        "provider": provider,
        "finish_reason": finish_reason,
    }
    if usage is not None:
        raw["usage"] = _usage_kwargs(usage)
    return raw


def _assistant_message(content: str, calls: Sequence[ToolCallBlock]) -> ChatMessage:
    blocks: list[Any] = []
    if content or not calls:
        blocks.append(TextBlock(text=content))
    blocks.extend(calls)
    additional_kwargs: dict[str, Any] = {}
    if calls:
        additional_kwargs["tool_calls"] = [
            {
                "id": call.tool_call_id,
                "type": "function",
                "function": {
                    "name": call.tool_name,
                    "arguments": (
                        call.tool_kwargs
                        if isinstance(call.tool_kwargs, str)
                        else json.dumps(call.tool_kwargs)
                    ),
                },
            }
            for call in calls
        ]
    return ChatMessage(
        role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=additional_kwargs
    )


def to_llama_response(response: ChatResponse) -> LlamaChatResponse:
    """Convert a complete neutral response to a LlamaIndex chat response.

    Token counts go to ``raw["usage"]`` and ``additional_kwargs`` under the OpenAI names,
    where LlamaIndex's token counting reads them.
    """
    message = response.message
    content = message.content if isinstance(message.content, str) else _join_text(message.content)
    calls = [
        ToolCallBlock(tool_call_id=call.id, tool_name=call.name, tool_kwargs=dict(call.arguments))
        for call in message.tool_calls
    ]
    return LlamaChatResponse(
        message=_assistant_message(content, calls),
        raw=_raw(
            response_id=response.id,
            model=response.model,
            route=response.route,
            provider=response.provider,
            finish_reason=response.finish_reason,
            usage=response.usage,
        ),
        additional_kwargs=_usage_kwargs(response.usage),
    )


def _join_text(parts: Sequence[Mapping[str, Any]]) -> str:
    return "".join(str(part.get("text", "")) for part in parts if part.get("type") == "text")


class StreamAccumulator:
    """A builder of the cumulative LlamaIndex response after each streamed chunk.

    LlamaIndex expects every streamed response to carry the whole message so far, with the
    new text in `delta`. Tool call fragments merge by index. Their arguments stay a string
    until they parse, so a response in the middle of a stream can carry partial arguments.
    """

    def __init__(self) -> None:
        self.content = ""
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, chunk: ChatChunk) -> LlamaChatResponse:
        """Merge one chunk and return the response that includes it."""
        self.content += chunk.content
        for delta in chunk.tool_calls:
            call = self._calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                call["id"] = delta.id
            if delta.name:
                call["name"] = delta.name
            call["arguments"] += delta.arguments

        blocks = [self._block(index, call) for index, call in sorted(self._calls.items())]
        return LlamaChatResponse(
            message=_assistant_message(self.content, blocks),
            delta=chunk.content,
            raw=_raw(
                response_id=chunk.id,
                model=chunk.model,
                route=chunk.route,
                provider=chunk.provider,
                finish_reason=chunk.finish_reason,
                usage=chunk.usage,
            ),
            additional_kwargs=_usage_kwargs(chunk.usage),
        )

    @staticmethod
    def _block(index: int, call: dict[str, str]) -> ToolCallBlock:
        arguments: dict[str, Any] | str = call["arguments"]
        try:
            parsed: Any = json.loads(call["arguments"]) if call["arguments"] else {}
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            arguments = cast(dict[str, Any], parsed)
        return ToolCallBlock(
            tool_call_id=call["id"] or f"call_{index}",
            tool_name=call["name"],
            tool_kwargs=arguments,
        )


def completion_from_chat(response: LlamaChatResponse) -> CompletionResponse:
    """Return the completion view of a chat response."""
    return CompletionResponse(
        text=response.message.content or "",
        delta=response.delta,
        raw=response.raw,
        additional_kwargs=dict(response.additional_kwargs),  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    )


def tool_selections(message: ChatMessage) -> list[ToolSelection]:
    """Return the tool calls an assistant message requests, from blocks and legacy kwargs."""
    selections: dict[str, ToolSelection] = {}
    for block in message.blocks:
        if isinstance(block, ToolCallBlock):
            call_id = block.tool_call_id or f"call_{len(selections)}"
            selections[call_id] = ToolSelection(
                tool_id=call_id,
                tool_name=block.tool_name,
                tool_kwargs=parse_tool_arguments(block.tool_kwargs),
            )
    for call in _legacy_tool_calls(message.additional_kwargs):
        if call.id not in selections:
            selections[call.id] = ToolSelection(
                tool_id=call.id, tool_name=call.name, tool_kwargs=dict(call.arguments)
            )
    return list(selections.values())


def keep_first_tool_call(response: LlamaChatResponse) -> LlamaChatResponse:
    """Drop every tool call after the first, for callers that forbid parallel tool calls."""
    message = response.message
    calls = [block for block in message.blocks if isinstance(block, ToolCallBlock)]
    if len(calls) <= 1:
        return response
    first = calls[0]
    blocks = [
        block for block in message.blocks if not isinstance(block, ToolCallBlock) or block is first
    ]
    additional_kwargs = dict(message.additional_kwargs)
    legacy = additional_kwargs.get("tool_calls")
    if isinstance(legacy, list) and legacy:
        additional_kwargs["tool_calls"] = [cast(list[Any], legacy)[0]]
    trimmed = message.model_copy(update={"blocks": blocks, "additional_kwargs": additional_kwargs})
    return response.model_copy(update={"message": trimmed})
