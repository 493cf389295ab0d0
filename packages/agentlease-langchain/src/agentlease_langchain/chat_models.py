"""`SecureChatModel`: a LangChain chat model whose every call is routed, credentialed and audited.

The model stores no credential, endpoint or policy. Each call goes through an agentlease
`ModelClient`, which picks the first route the policy permits for the current task, attaches
a grant scoped to that task, and audits the call, so LangChain callbacks, tracing and
serialisation never see a secret.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import (
    AsyncIterator,
    Callable,
    Iterator,
    Sequence,
)
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from agentlease.client import ModelClient
from agentlease.errors import AgentleaseError, ConfigurationError
from agentlease.messages import ChatRequest
from agentlease.runtime import Runtime
from agentlease_langchain._convert import (
    ChunkAssembler,
    normalize_tool_choice,
    openai_tool,
    to_ai_message,
    to_messages,
    to_tool_specs,
)
from agentlease_langchain._structured import (
    Method,
    check_method,
    content_parser,
    json_schema_format,
    schema_name,
    tool_parser,
    with_raw,
)

__all__ = ["SecureChatModel"]

logger = logging.getLogger(__name__)

# Keyword arguments LangChain uses for tracing only; they never reach the model route.
_TRACING_KWARGS = ("ls_structured_output_format", "structured_output_format", "stream")

# Constructor arguments of other chat models that agentlease deliberately does not take,
# with the reason given when a caller passes one.
_CREDENTIALS_REASON = "credentials come from the route (a grant or a key read from the environment)"
_REJECTED_ARGUMENTS = {
    "api_key": _CREDENTIALS_REASON,
    "openai_api_key": _CREDENTIALS_REASON,
    "base_url": "endpoints are declared as routes in the runtime",
    "openai_api_base": "endpoints are declared as routes in the runtime",
    "timeout": "timeouts are set per route (Route.timeout)",
    "request_timeout": "timeouts are set per route (Route.timeout)",
    "max_retries": "a failed call moves to the next permitted route instead of retrying",
}


class SecureChatModel(BaseChatModel):
    """A chat model that reaches models only through agentlease routes.

    Calls made inside ``agentlease.task(...)`` run under that task; calls made outside any
    task open an implicit task around themselves. Errors from agentlease propagate unchanged:
    a policy denial is `agentlease.PolicyDenied` (a `PermissionError`), a provider failure is
    an `agentlease.ProviderError`.

    Args:
        model: A route name, route group or model id of the runtime's routes.
        temperature: Sampling temperature.
        max_tokens: The maximum number of tokens to generate.
        stop: Stop sequences.
        model_kwargs: Further provider parameters, sent with every call.
        streaming: Whether `invoke` streams from the provider under the hood.
        runtime: The runtime for calls made outside a task; inside a task the task's runtime
            applies. It is kept out of the model's fields, so it never appears in `repr`,
            serialised forms or callback payloads.

    Example:
        >>> import agentlease
        >>> from agentlease_langchain import SecureChatModel
        >>> model = SecureChatModel(model="default", temperature=0)
        >>> with agentlease.task("summarise", data_class="confidential"):  # doctest: +SKIP
        ...     model.invoke("Summarise the incident report.")
    """

    model: str = Field(default="default", alias="model_name", min_length=1)
    """A route name, route group or model id of the runtime's routes."""

    temperature: float | None = None
    """Sampling temperature."""

    max_tokens: int | None = None
    """The maximum number of tokens to generate."""

    stop: list[str] | None = None
    """Stop sequences."""

    model_kwargs: dict[str, Any] = Field(default_factory=dict[str, Any])
    """Further provider parameters, sent with every call."""

    streaming: bool = False
    """Whether `invoke` streams from the provider under the hood."""

    model_config = ConfigDict(
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        arbitrary_types_allowed=True,
    )

    _client: ModelClient = PrivateAttr()

    def __init__(self, *, runtime: Runtime | None = None, **kwargs: Any) -> None:
        _check_arguments(kwargs)
        super().__init__(**kwargs)
        self._client = ModelClient(self.model, runtime=runtime)

    # -- identity of the model for LangChain ------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "agentlease"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "streaming": self.streaming,
            "model_kwargs": dict(self.model_kwargs),
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """Return the tracing parameters, naming the first route that serves the model."""
        requested = kwargs.get("model")
        name = requested if isinstance(requested, str) and requested else self.model
        provider, model_name = "agentlease", name
        try:
            routes = self._client.candidates(ChatRequest(messages=(), model=name))
        except AgentleaseError:
            # Tracing must not fail a call; the call itself reports an unknown model.
            routes = []
        if routes:
            provider, model_name = routes[0].provider, routes[0].model

        params = LangSmithParams(
            ls_provider=provider, ls_model_name=model_name, ls_model_type="chat"
        )
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, (int, float)):
            params["ls_temperature"] = float(temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        stop_sequences = stop if stop is not None else self.stop
        if stop_sequences:
            params["ls_stop"] = list(stop_sequences)
        return params

    # -- calls -----------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = self._client.chat(self._request(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=to_ai_message(response))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = await self._client.achat(self._request(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=to_ai_message(response))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = self._request(messages, stop, kwargs)
        assembler = ChunkAssembler(request.model or self.model)
        # Closing the provider stream as soon as the caller stops reading ends its model call
        # (and any implicit task) now rather than when the generator is collected.
        stream = self._client.stream(request)
        with contextlib.closing(stream) as chunks:
            for chunk in chunks:
                message = assembler.convert(chunk)
                if message is None:
                    continue
                generation = ChatGenerationChunk(message=message)
                if run_manager is not None:
                    run_manager.on_llm_new_token(message.text, chunk=generation)
                yield generation
        yield ChatGenerationChunk(message=assembler.last())

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = self._request(messages, stop, kwargs)
        assembler = ChunkAssembler(request.model or self.model)
        stream = self._client.astream(request)
        async with contextlib.aclosing(stream) as chunks:
            async for chunk in chunks:
                message = assembler.convert(chunk)
                if message is None:
                    continue
                generation = ChatGenerationChunk(message=message)
                if run_manager is not None:
                    await run_manager.on_llm_new_token(message.text, chunk=generation)
                yield generation
        yield ChatGenerationChunk(message=assembler.last())

    def _request(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatRequest:
        """Build the agentlease request for one call from the fields and the call's kwargs."""
        params = dict(kwargs)
        for name in _TRACING_KWARGS:
            params.pop(name, None)

        model = params.pop("model", None) or self.model
        tools = to_tool_specs(params.pop("tools", None) or ())
        tool_choice = normalize_tool_choice(
            params.pop("tool_choice", None), [tool.name for tool in tools]
        )
        response_format = params.pop("response_format", None)
        if isinstance(response_format, type):
            response_format = json_schema_format(response_format, strict=None)
        temperature = params.pop("temperature", self.temperature)
        max_tokens = params.pop("max_tokens", self.max_tokens)
        stop_sequences = stop if stop is not None else self.stop

        # Whatever is left of the call's kwargs goes to the provider unchanged.
        extra = _checked_extra({**self.model_kwargs, **params})
        return ChatRequest(
            messages=to_messages(messages),
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            temperature=temperature,
            max_tokens=max_tokens,
            stop=list(stop_sequences) if stop_sequences else None,
            model=model,
            extra=extra,
        )

    # -- tools and structured output -------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to the model.

        Args:
            tools: LangChain tools, functions, pydantic classes, TypedDicts or OpenAI tool
                dicts.
            tool_choice: ``"auto"``, ``"none"``, ``"any"``/``"required"``/``True`` to force a
                call, or the name of the tool to call.
            strict: Ask the provider to follow each tool's schema exactly.
            parallel_tool_calls: Whether the model may call several tools at once.
            **kwargs: Further arguments bound to every call, passed through to `bind`.

        Raises:
            ConfigurationError: A tool is not a function tool, or `tool_choice` names no bound
                tool.
        """
        formatted = [openai_tool(tool, strict=strict) for tool in tools]
        names = [tool["function"]["name"] for tool in formatted]
        choice = normalize_tool_choice(tool_choice, names)
        if choice is not None:
            kwargs["tool_choice"] = choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Method = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Return a runnable whose output follows `schema`.

        Args:
            schema: A pydantic class, a TypedDict or a JSON schema. Optional for
                ``json_mode`` only.
            method: ``function_calling`` forces a call to a tool built from the schema.
                ``json_schema`` sends the schema as the response format. ``json_mode``
                requests any JSON object, so the prompt must describe the keys.
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead of the parsed
                output, and do not raise on a parsing error.
            strict: Ask the provider to follow the schema exactly.

        Raises:
            ConfigurationError: The method is unknown, a schema is missing, or an unknown
                keyword argument was passed.
        """
        if kwargs:
            raise ConfigurationError(
                f"with_structured_output() got unknown arguments {sorted(kwargs)}; it accepts "
                "schema, method, include_raw and strict."
            )
        method = check_method(method, schema)
        # LangChain reports this to callbacks as `ls_structured_output_format`; it needs a schema.
        tracing: dict[str, Any] = {}
        if schema is not None:
            tracing["ls_structured_output_format"] = {
                "kwargs": {"method": method, "strict": strict},
                "schema": schema,
            }

        if method == "function_calling":
            assert schema is not None
            model = self.bind_tools(
                [schema],
                tool_choice=schema_name(schema),
                strict=strict,
                **tracing,
            )
            parser = tool_parser(schema)
        else:
            response_format = (
                json_schema_format(schema, strict=strict)
                if method == "json_schema" and schema is not None
                else {"type": "json_object"}
            )
            model = self.bind(response_format=response_format, **tracing)
            parser = content_parser(schema)

        if include_raw:
            return with_raw(model, parser)
        return model | parser


# Provider parameters that would carry a credential or headers. They are rejected because
# model_kwargs and call kwargs reach callbacks as `invocation_params`.
_CREDENTIAL_PARAMETERS = frozenset(
    {"authorization", "default_headers", "extra_headers", "headers", "password", "secret", "token"}
)
_CREDENTIAL_SUFFIXES = ("api_key", "_secret", "_password", "access_token", "auth_token")


def _checked_extra(params: dict[str, Any]) -> dict[str, Any]:
    """Return provider parameters after rejecting any that would carry a credential.

    Raises:
        ConfigurationError: A parameter name is one that carries credentials or headers.
    """
    for name in params:
        lowered = name.lower()
        if lowered in _CREDENTIAL_PARAMETERS or lowered.endswith(_CREDENTIAL_SUFFIXES):
            raise ConfigurationError(
                f"Provider parameter {name!r} would carry a credential or headers, which "
                f"agentlease attaches per route; remove {name!r} from model_kwargs or the call."
            )
    return params


def _check_arguments(kwargs: dict[str, Any]) -> None:
    """Reject constructor arguments that are not fields, before pydantic would drop them.

    Raises:
        ConfigurationError: An argument is unknown, or belongs to the route rather than the
            model.
    """
    known: set[str] = set()
    for name, field in SecureChatModel.model_fields.items():
        known.add(name)
        if field.alias:
            known.add(field.alias)
    unknown = sorted(set(kwargs) - known)
    if not unknown:
        _checked_extra(kwargs.get("model_kwargs") or {})
        return
    for name in unknown:
        reason = _REJECTED_ARGUMENTS.get(name)
        if reason is not None:
            raise ConfigurationError(
                f"SecureChatModel does not take {name!r}: {reason}; remove the argument."
            )
    raise ConfigurationError(
        f"SecureChatModel got unknown arguments {unknown}; use the fields "
        f"{sorted(known)} and pass provider parameters in model_kwargs."
    )
