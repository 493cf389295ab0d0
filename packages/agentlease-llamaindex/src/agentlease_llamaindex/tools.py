"""Guarded LlamaIndex tools: a policy check, a grant and an audit record for every call.

LlamaIndex agents inject the workflow `Context` only into `FunctionTool`s, so a guarded
function tool is itself a `FunctionTool` with the original's metadata, schema, partial
parameters, callbacks and `Context` parameter. Other tools are wrapped by a delegating
`SecureTool`. A call the policy denies does not run the tool. It returns an error
`ToolOutput` whose text states the denial, and agents feed that back to the model, so the
run goes on.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

from llama_index.core.tools import FunctionTool
from llama_index.core.tools.types import (
    AsyncBaseTool,
    BaseTool,
    ToolMetadata,
    ToolOutput,
    adapt_to_async_tool,
)

from agentlease.errors import PolicyDenied
from agentlease.runtime import Runtime
from agentlease.tools import ToolGuard

__all__ = [
    "SecureFunctionTool",
    "SecureTool",
    "denial_message",
    "secure_function_tool",
    "secure_tool",
]

logger = logging.getLogger(__name__)

Risk = Literal["low", "medium", "high"]


def denial_message(tool_name: str, error: PolicyDenied) -> str:
    """Return the tool output text for a call the policy denied."""
    policy_ids = ", ".join(error.policy_ids) or "none"
    reason = error.reason or "no policy permits it"
    return (
        f"Error: policy denied the call to tool {tool_name!r} "
        f"(policy ids: {policy_ids}; reason: {reason}). The tool did not run."
    )


def _denied_output(
    tool_name: str,
    error: PolicyDenied,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> ToolOutput:
    return ToolOutput(
        content=denial_message(tool_name, error),
        tool_name=tool_name,
        raw_input={"args": args, "kwargs": dict(kwargs)},
        raw_output=None,
        is_error=True,
        exception=error,
    )


def _audited_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    arguments = dict(kwargs)
    if args:
        arguments["__args__"] = list(args)
    return arguments


class SecureFunctionTool(FunctionTool):
    """A `FunctionTool` whose function runs only when the policy allows the call.

    It keeps the original tool's metadata (name, description, argument schema,
    ``return_direct``), partial parameters, callbacks and `Context` parameter, so agents
    treat it exactly like the original. Inside the tool's function,
    `agentlease.current_grant()` returns the grant for the tool's audience.

    Build one with `secure_function_tool` or `secure_tool`.
    """

    def __init__(self, tool: FunctionTool, guard: ToolGuard) -> None:
        self._original = tool
        self._guard = guard
        context_name = tool.ctx_param_name
        original_fn = tool.fn
        original_async_fn = tool.async_fn

        @functools.wraps(tool.real_fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            arguments = _audited_arguments(args, _without(kwargs, context_name))
            return guard.call(functools.partial(original_fn, *args, **kwargs), arguments=arguments)

        @functools.wraps(tool.real_fn)
        async def aguarded(*args: Any, **kwargs: Any) -> Any:
            arguments = _audited_arguments(args, _without(kwargs, context_name))
            return await guard.acall(
                functools.partial(original_async_fn, *args, **kwargs), arguments=arguments
            )

        super().__init__(
            fn=guarded,
            async_fn=aguarded,
            metadata=tool.metadata,
            callback=getattr(tool, "_callback", None),
            async_callback=getattr(tool, "_async_callback", None),
            partial_params=dict(tool.partial_params),
        )
        # Copy what FunctionTool derived from the original function, so the agent injects
        # the workflow Context under the same name and fills the same Field defaults.
        self.requires_context = tool.requires_context
        self.ctx_param_name = context_name
        self._field_defaults = dict(getattr(tool, "_field_defaults", {}))

    @property
    def guard(self) -> ToolGuard:
        """The guard that checks, credentials and audits each call."""
        return self._guard

    @property
    def original(self) -> FunctionTool:
        """The tool this one guards."""
        return self._original

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Run the tool if the policy allows it; a denial returns an error output."""
        try:
            return super().call(*args, **kwargs)
        except PolicyDenied as exc:
            return _denied_output(
                self.metadata.get_name(), exc, args, _without(kwargs, self.ctx_param_name)
            )

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Run the tool asynchronously if the policy allows it; see `call`."""
        try:
            return await super().acall(*args, **kwargs)
        except PolicyDenied as exc:
            return _denied_output(
                self.metadata.get_name(), exc, args, _without(kwargs, self.ctx_param_name)
            )

    def __repr__(self) -> str:
        return f"SecureFunctionTool({self.metadata.get_name()!r}, guard={self._guard!r})"


class SecureTool(AsyncBaseTool):
    """A guarded wrapper around any LlamaIndex tool that is not a `FunctionTool`.

    Query engine tools, retriever tools and custom `BaseTool`s keep their metadata and
    output; the policy check, grant and audit record wrap each call. Build one with
    `secure_tool`.
    """

    def __init__(self, tool: BaseTool, guard: ToolGuard) -> None:
        self._tool = tool
        self._async_tool = adapt_to_async_tool(tool)
        self._guard = guard

    @property
    def metadata(self) -> ToolMetadata:
        """The wrapped tool's metadata."""
        return self._tool.metadata

    @property
    def guard(self) -> ToolGuard:
        """The guard that checks, credentials and audits each call."""
        return self._guard

    @property
    def original(self) -> BaseTool:
        """The tool this one guards."""
        return self._tool

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Run the tool if the policy allows it; a denial returns an error output."""
        try:
            return self._guard.call(
                functools.partial(self._tool, *args, **kwargs),
                arguments=_audited_arguments(args, kwargs),
            )
        except PolicyDenied as exc:
            return _denied_output(self.metadata.get_name(), exc, args, kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Run the tool asynchronously if the policy allows it; see `call`."""
        try:
            return await self._guard.acall(
                functools.partial(self._async_tool.acall, *args, **kwargs),
                arguments=_audited_arguments(args, kwargs),
            )
        except PolicyDenied as exc:
            return _denied_output(self.metadata.get_name(), exc, args, kwargs)

    def __repr__(self) -> str:
        return f"SecureTool({self.metadata.get_name()!r}, guard={self._guard!r})"


def secure_function_tool(
    tool: FunctionTool | Callable[..., Any],
    *,
    risk: Risk = "low",
    clearance: str = "confidential",
    data_class: str | None = None,
    audience: str | None = None,
    scope: str = "call_tool",
    attributes: Mapping[str, Any] | None = None,
    runtime: Runtime | None = None,
) -> SecureFunctionTool:
    """Guard a `FunctionTool`, or a plain function turned into one.

    Args:
        tool: A `FunctionTool`, or a sync or async function for `FunctionTool.from_defaults`.
        risk: ``low``, ``medium`` or ``high``; the starter policy denies high-risk tools to
            unverified identities.
        clearance: The most sensitive data class the tool may receive.
        data_class: The class of the data the tool returns; each successful call raises the
            task's data class to it, so later model calls are routed accordingly.
        audience: The grant audience; defaults to ``tool:<name>``.
        scope: The grant scope.
        attributes: Extra attributes the policy sees for the tool.
        runtime: The runtime for calls made with no task open.

    Returns:
        A `FunctionTool` that agents use like the original; a tool that is already guarded
        comes back unchanged.

    Raises:
        ConfigurationError: `risk`, `clearance` or `data_class` is not a known value.

    Example:
        >>> from agentlease_llamaindex import secure_function_tool
        >>> def lookup(customer_id: str) -> str:
        ...     '''Look up a customer record.'''
        ...     return "..."
        >>> tool = secure_function_tool(lookup, data_class="confidential")
        >>> tool.metadata.name
        'lookup'
    """
    if isinstance(tool, SecureFunctionTool):
        return tool
    function_tool = tool if isinstance(tool, FunctionTool) else _from_callable(tool)
    guard = ToolGuard(
        function_tool.metadata.get_name(),
        risk=risk,
        clearance=clearance,
        data_class=data_class,
        audience=audience,
        scope=scope,
        attributes=attributes,
        runtime=runtime,
    )
    return SecureFunctionTool(function_tool, guard)


def secure_tool(
    tool: BaseTool | Callable[..., Any],
    *,
    risk: Risk = "low",
    clearance: str = "confidential",
    data_class: str | None = None,
    audience: str | None = None,
    scope: str = "call_tool",
    attributes: Mapping[str, Any] | None = None,
    runtime: Runtime | None = None,
) -> SecureFunctionTool | SecureTool:
    """Guard any LlamaIndex tool or function.

    Functions and `FunctionTool`s become a `SecureFunctionTool` (which keeps `Context`
    injection); other tools are wrapped by a `SecureTool`. A tool that is already guarded
    is returned unchanged. The arguments are those of `secure_function_tool`.

    Raises:
        ConfigurationError: `risk`, `clearance` or `data_class` is not a known value.
    """
    if isinstance(tool, (SecureFunctionTool, SecureTool)):
        return tool
    options: dict[str, Any] = {
        "risk": risk,
        "clearance": clearance,
        "data_class": data_class,
        "audience": audience,
        "scope": scope,
        "attributes": attributes,
        "runtime": runtime,
    }
    if isinstance(tool, FunctionTool) or not isinstance(tool, BaseTool):
        return secure_function_tool(tool, **options)
    guard = ToolGuard(tool.metadata.get_name(), **options)
    return SecureTool(tool, guard)


def _from_callable(fn: Callable[..., Any]) -> FunctionTool:
    if inspect.iscoroutinefunction(fn):
        return FunctionTool.from_defaults(async_fn=fn)
    return FunctionTool.from_defaults(fn=fn)


def _without(kwargs: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    return {key: value for key, value in kwargs.items() if key != name}
