"""`SecureLLM`: a LlamaIndex function-calling LLM whose every call goes through agentlease.

Each call is routed by policy for the current task, carries a grant scoped to that task, and
lands in the task's audit session. The model stores no credential: the route's credential is
attached per request by the core, so `to_dict()`, `to_json()`, pickles and instrumentation
payloads have nothing secret to leak.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.callbacks import (
    llm_chat_callback,  # pyright: ignore[reportUnknownVariableType]
    llm_completion_callback,  # pyright: ignore[reportUnknownVariableType]
)
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.tools.types import BaseTool

from agentlease.client import ModelClient
from agentlease.messages import ChatRequest
from agentlease.runtime import Runtime
from agentlease_llamaindex._convert import (
    StreamAccumulator,
    completion_from_chat,
    keep_first_tool_call,
    to_llama_response,
    to_messages,
    to_tool_choice,
    to_tool_specs,
    tool_selections,
)

__all__ = ["SecureLLM"]

logger = logging.getLogger(__name__)

# Keyword arguments that LlamaIndex passes along to `chat` but that are not provider
# parameters; they are dropped instead of being sent to the model.
_FRAMEWORK_KWARGS = frozenset({"allow_parallel_tool_calls", "formatted", "verbose"})

_F = TypeVar("_F", bound=Callable[..., Any])


def _chat_events(method: _F) -> _F:
    """Apply LlamaIndex's chat event decorator, keeping the method's type."""
    return cast(_F, llm_chat_callback()(method))


def _completion_events(method: _F) -> _F:
    """Apply LlamaIndex's completion event decorator, keeping the method's type."""
    return cast(_F, llm_completion_callback()(method))


class SecureLLM(FunctionCallingLLM):
    """A LlamaIndex LLM that makes policy-routed, grant-carrying, audited model calls.

    Use it wherever LlamaIndex takes an LLM: `FunctionAgent`, `AgentWorkflow`, query
    engines, `structured_predict` and `as_structured_llm`. Calls made inside
    ``agentlease.task(...)`` belong to that task; a call made with no task open gets an
    implicit task of its own.

    Args:
        model: A route name, a route group, or a model id that configured routes serve.
        runtime: The runtime for calls made with no task open; inside a task, the task's
            runtime applies. It is never serialized.
        **kwargs: Further fields: `temperature`, `max_tokens`, `context_window`,
            `additional_kwargs` and the fields of LlamaIndex's `LLM`. Unknown names raise a
            validation error.

    Example:
        >>> import agentlease
        >>> from agentlease_llamaindex import SecureLLM
        >>> llm = SecureLLM("default", temperature=0.0)
        >>> with agentlease.task("summarise", data_class="confidential"):  # doctest: +SKIP
        ...     llm.complete("Summarise the report")
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="default",
        description="A route name, route group or model id that configured routes serve.",
    )
    temperature: float | None = Field(default=None, description="Sampling temperature.")
    max_tokens: int | None = Field(
        default=None, description="The maximum number of tokens to generate.", gt=0
    )
    context_window: int = Field(
        default=DEFAULT_CONTEXT_WINDOW,
        description="The context window LlamaIndex assumes when it packs prompts.",
        gt=0,
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=lambda: {},
        description="Further provider parameters sent with every call.",
    )

    _runtime: Runtime | None = PrivateAttr(default=None)
    _client: ModelClient | None = PrivateAttr(default=None)

    def __init__(
        self, model: str = "default", *, runtime: Runtime | None = None, **kwargs: Any
    ) -> None:
        super().__init__(model=model, **kwargs)
        self._runtime = runtime

    @classmethod
    def class_name(cls) -> str:
        """Return the name LlamaIndex uses to serialize this class."""
        return "agentlease_SecureLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """What LlamaIndex needs to know about the model; it reads no configuration."""
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_tokens or DEFAULT_NUM_OUTPUTS,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.model,
        )

    def __getstate__(self) -> dict[Any, Any]:
        """Return the pickle state without the runtime, which contains the signing key.

        A restored model uses the default runtime, or the task's, until one is set again.
        """
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if isinstance(private, dict):
            state["__pydantic_private__"] = {**private, "_runtime": None, "_client": None}
        return state

    # -- chat ------------------------------------------------------------------------------

    @_chat_events
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Make one model call."""
        return self._chat(messages, kwargs)

    @_chat_events
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Make one model call asynchronously."""
        return await self._achat(messages, kwargs)

    @_chat_events
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream one model call; each response carries the whole message so far."""
        return self._stream_chat(messages, kwargs)

    @_chat_events
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Stream one model call asynchronously."""
        return self._astream_chat(messages, kwargs)

    # -- completion ------------------------------------------------------------------------

    @_completion_events
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete a prompt, sent as one user message after the system prompt."""
        return completion_from_chat(self._chat(self._prompt_messages(prompt), kwargs))

    @_completion_events
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Complete a prompt asynchronously."""
        return completion_from_chat(await self._achat(self._prompt_messages(prompt), kwargs))

    @_completion_events
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream the completion of a prompt."""
        responses = self._stream_chat(self._prompt_messages(prompt), kwargs)

        def generate() -> CompletionResponseGen:
            for response in responses:
                yield completion_from_chat(response)

        return generate()

    @_completion_events
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Stream the completion of a prompt asynchronously."""
        responses = self._astream_chat(self._prompt_messages(prompt), kwargs)

        async def generate() -> CompletionResponseAsyncGen:
            async for response in responses:
                yield completion_from_chat(response)

        return generate()

    # -- tools -----------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: Any = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Build the `chat` arguments for a call that offers tools.

        `tool_required` makes the model call a tool unless `tool_choice` names another choice.
        `strict` requests that the provider follow the tools' schemas exactly.
        """
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)

        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        if tools:
            specs = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]
            if strict is not None:
                for spec in specs:
                    spec["function"]["strict"] = strict
            prepared["tools"] = specs
            prepared["tool_choice"] = to_tool_choice(tool_choice, tool_required=tool_required)
        return prepared

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Keep only the first tool call unless parallel tool calls are allowed."""
        if allow_parallel_tool_calls:
            return response
        return keep_first_tool_call(response)

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """Return the tool calls the model requested.

        Raises:
            ValueError: The response has no tool call and `error_on_no_tool_call` is true.
        """
        selections = tool_selections(response.message)
        if not selections and error_on_no_tool_call:
            raise ValueError(
                f"Model {self.model!r} returned no tool call; pass "
                "error_on_no_tool_call=False to accept text answers."
            )
        return selections

    # -- internals -------------------------------------------------------------------------

    def _model_client(self) -> ModelClient:
        client = self._client
        if client is None or client.model != self.model:
            client = ModelClient(self.model, runtime=self._runtime)
            self._client = client
        return client

    def _prompt_messages(self, prompt: str) -> list[ChatMessage]:
        return self._extend_messages([ChatMessage(role=MessageRole.USER, content=prompt)])

    def _request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatRequest:
        options = dict(kwargs)
        tools = options.pop("tools", None) or ()
        tool_choice = options.pop("tool_choice", None)
        tool_required = bool(options.pop("tool_required", False))
        response_format = options.pop("response_format", None)
        temperature = options.pop("temperature", self.temperature)
        max_tokens = options.pop("max_tokens", self.max_tokens)
        stop = options.pop("stop", None)
        model = options.pop("model", None)
        for name in _FRAMEWORK_KWARGS:
            options.pop(name, None)

        specs = to_tool_specs(tools)
        return ChatRequest(
            messages=to_messages(messages),
            tools=specs,
            tool_choice=to_tool_choice(tool_choice, tool_required=tool_required) if specs else None,
            response_format=response_format,
            temperature=temperature,
            max_tokens=max_tokens,
            stop=[stop] if isinstance(stop, str) else stop,
            model=model,
            extra={**self.additional_kwargs, **options},
        )

    def _chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        request = self._request(messages, kwargs)
        return to_llama_response(self._model_client().chat(request))

    async def _achat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        request = self._request(messages, kwargs)
        return to_llama_response(await self._model_client().achat(request))

    def _stream_chat(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> ChatResponseGen:
        request = self._request(messages, kwargs)
        client = self._model_client()

        def generate() -> ChatResponseGen:
            accumulator = StreamAccumulator()
            for chunk in client.stream(request):
                yield accumulator.add(chunk)

        return generate()

    def _astream_chat(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> ChatResponseAsyncGen:
        request = self._request(messages, kwargs)
        client = self._model_client()

        async def generate() -> ChatResponseAsyncGen:
            accumulator = StreamAccumulator()
            async for chunk in client.astream(request):
                yield accumulator.add(chunk)

        return generate()
