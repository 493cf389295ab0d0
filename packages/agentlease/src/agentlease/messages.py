"""The neutral chat model that both adapters and every provider protocol translate to.

Adapters convert framework messages to these types, providers convert them to a wire format.
They are plain frozen dataclasses, so building one costs little on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Message",
    "Role",
    "ToolCall",
    "ToolCallDelta",
    "ToolSpec",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call requested by the model.

    Attributes:
        id: The provider's call id; tool results refer back to it.
        name: The tool name.
        arguments: The parsed JSON arguments.
    """

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call in a stream; fragments with the same `index` merge."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message.

    Attributes:
        role: Who wrote it.
        content: Text, or a list of OpenAI-style content parts for multimodal input.
        tool_calls: Tool calls that an assistant message requests.
        tool_call_id: For a ``tool`` message, the id of the call it responds to.
        name: An optional participant or tool name.
    """

    role: Role
    content: str | Sequence[Mapping[str, Any]] = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model, described by a JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one model call."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    """A model call request, independent of any provider.

    Attributes:
        messages: The conversation so far.
        tools: Tools the model may call.
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` (``"any"`` is accepted as an alias),
            or the name of one tool the model must call.
        response_format: An OpenAI-style ``response_format`` object for structured output.
        temperature: Sampling temperature.
        max_tokens: The maximum number of tokens to generate.
        stop: Stop sequences.
        model: A per-call model override; it must name a model of a configured route.
        extra: Further provider parameters, passed through unchanged.
    """

    messages: Sequence[Message]
    tools: Sequence[ToolSpec] = ()
    tool_choice: str | None = None
    response_format: Mapping[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: Sequence[str] | None = None
    model: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: {})

    @property
    def needs_tools(self) -> bool:
        """Whether the request offers tools, so the route must support tool calling."""
        return bool(self.tools)

    @property
    def needs_structured_output(self) -> bool:
        """Whether the request sets a JSON schema or JSON object response format."""
        return self.response_format is not None and self.response_format.get("type") in (
            "json_schema",
            "json_object",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatResponse:
    """A complete model response.

    Attributes:
        message: The assistant message, with any tool calls.
        model: The model id the provider reports.
        route: The name of the agentlease route that served the call.
        provider: The provider name (``gen_ai.provider.name``).
        finish_reason: Why generation stopped (``stop``, ``length``, ``tool_calls``, ...).
        usage: Token counts, when the provider reports them.
        id: The provider's response id.
    """

    message: Message
    model: str
    route: str
    provider: str
    finish_reason: str | None = None
    usage: Usage | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatChunk:
    """One increment of a streamed response.

    Only the chunk that carries usage has `usage` set, and only the last chunk has
    `finish_reason` set.
    """

    content: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    route: str | None = None
    provider: str | None = None
    id: str | None = None
