"""Guarded LangChain tools: every call is checked by the policy, granted and audited.

`secure_tool` returns a tool that the model is offered exactly as before (same name, description,
schema and injected arguments) but whose calls run through an agentlease `ToolGuard`. A call
the policy denies never runs the tool. When the call came from a model (a ``ToolCall`` with
an id), the denial comes back as a ``ToolMessage`` with ``status="error"`` that says the
policy denied it, so the agent loop continues, also inside LangGraph's ``ToolNode`` with its
default error handling. A direct call with plain arguments raises `agentlease.PolicyDenied`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Literal, cast

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, Tool, ToolException
from langchain_core.tools import tool as as_tool
from langchain_core.tools.base import ArgsSchema
from pydantic import Field, PrivateAttr
from typing_extensions import Self

from agentlease.errors import ConfigurationError, PolicyDenied
from agentlease.runtime import Runtime
from agentlease.tools import ToolGuard

__all__ = ["SecureTool", "ToolCallDenied", "denial_text", "is_guarded", "secure_tool"]

logger = logging.getLogger(__name__)

Risk = Literal["low", "medium", "high"]

# The id of the model's tool call being run, set by the guarded tool's `run`/`arun` so that
# the guarded function can audit it and decide how a denial is reported.
GUARDED_METADATA_KEY = "agentlease_guarded"
"""The tool metadata key that marks a tool guarded by `secure_tool`; callbacks receive it."""

_tool_call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agentlease_langchain_tool_call_id", default=None
)


class ToolCallDenied(PolicyDenied, ToolException):
    """A tool call from a model that the policy denied.

    It is a `ToolException`, so a guarded tool returns it to the model as an error
    ``ToolMessage``. Its text is written for the model to read.
    """


def secure_tool(
    tool: BaseTool | Callable[..., Any],
    *,
    risk: Risk = "low",
    clearance: str = "confidential",
    data_class: str | None = None,
    audience: str | None = None,
    runtime: Runtime | None = None,
) -> BaseTool:
    """Return a guarded version of a LangChain tool or a plain function.

    A `StructuredTool` (what ``@tool`` builds) or a `Tool` is copied with guarded ``func``
    and ``coroutine``, so the copy keeps its schema, injected arguments, response format,
    artifacts and tool call ids. Any other `BaseTool` is wrapped in a delegating `SecureTool`.
    A plain function becomes a tool with ``@tool`` first.

    Args:
        tool: The tool or function to guard.
        risk: ``low``, ``medium`` or ``high``; the starter policy denies high-risk tools to
            unverified identities.
        clearance: The most sensitive data class the tool may receive.
        data_class: The class of the data the tool returns; each call raises the task's data
            class to it, so later model calls are routed accordingly.
        audience: The grant audience, when the tool's service expects a specific one.
        runtime: The runtime for calls made outside a task.

    Raises:
        ConfigurationError: The tool is already guarded, or an option is invalid.

    Example:
        >>> from langchain_core.tools import tool
        >>> from agentlease_langchain import secure_tool
        >>> @tool
        ... def lookup_invoice(invoice_id: str) -> str:
        ...     '''Return the status of an invoice.'''
        ...     return "paid"
        >>> guarded = secure_tool(lookup_invoice, risk="medium", data_class="confidential")
        >>> guarded.name
        'lookup_invoice'
    """
    if not isinstance(tool, BaseTool):
        if not callable(tool):
            raise ConfigurationError(
                f"secure_tool() got {tool!r}; pass a LangChain tool or a function."
            )
        tool = as_tool(tool)
    if is_guarded(tool):
        raise ConfigurationError(
            f"Tool {tool.name!r} is already guarded; pass the original tool to secure_tool()."
        )

    guard = ToolGuard(
        tool.name,
        risk=risk,
        clearance=clearance,
        data_class=data_class,
        audience=audience,
        runtime=runtime,
    )
    if type(tool) is StructuredTool:
        return _guarded_copy(_GuardedStructuredTool, tool, guard)
    if type(tool) is Tool:
        return _guarded_copy(_GuardedTool, tool, guard)
    return SecureTool(tool, guard=guard)


# -- denial handling ---------------------------------------------------------------------------


def denial_text(tool_name: str, error: PolicyDenied) -> str:
    """Return the text a model reads for a denied tool call: what happened and why."""
    reason = error.reason or "no policy permits it"
    policies = ", ".join(error.policy_ids) or "none"
    return (
        f"Tool call denied by policy: {tool_name!r} did not run. Reason: {reason} "
        f"(policy ids: {policies}). Do not retry this call; continue without it or tell the "
        "user it is not allowed."
    )


def is_guarded(tool: BaseTool | None) -> bool:
    """Return whether `tool` was built by `secure_tool`, so its calls are already guarded."""
    return isinstance(tool, _CallIdTool)


def _denial(tool_name: str, error: PolicyDenied) -> ToolCallDenied:
    return ToolCallDenied(
        denial_text(tool_name, error),
        action=error.action,
        resource=error.resource,
        policy_ids=error.policy_ids,
        reason=error.reason,
    )


class _DenialHandler:
    """A ``handle_tool_error`` that reports denials and keeps the tool's own handling.

    Other `ToolException`s are handled as the original tool's ``handle_tool_error`` specifies.

    NOTE: when the original tool does not handle tool errors, such an exception is re-raised
    from inside LangChain's handler, so callbacks get no ``on_tool_error`` for it.
    """

    def __init__(self, fallback: object) -> None:
        self.fallback = fallback

    def __call__(self, error: ToolException) -> Any:
        if isinstance(error, ToolCallDenied):
            return str(error)
        fallback = self.fallback
        if not fallback:
            raise error
        if isinstance(fallback, str):
            return fallback
        if callable(fallback):
            return cast("Callable[[ToolException], Any]", fallback)(error)
        return error.args[0] if error.args else "Tool execution error"

    def __repr__(self) -> str:
        return f"_DenialHandler(fallback={self.fallback!r})"


# -- guarded calls -----------------------------------------------------------------------------


def _audited_arguments(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], names: Collection[str]
) -> dict[str, Any]:
    """Return the model-supplied arguments of a call, for the audit record's hash."""
    arguments = {name: value for name, value in kwargs.items() if name in names}
    if args:
        arguments["input"] = args[0] if len(args) == 1 else list(args)
    return arguments


def _call(
    guard: ToolGuard,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    names: Collection[str],
) -> Any:
    call_id = _tool_call_id.get()
    started = False

    def run() -> Any:
        nonlocal started
        started = True
        return fn(*args, **kwargs)

    try:
        return guard.call(run, call_id=call_id, arguments=_audited_arguments(args, kwargs, names))
    except PolicyDenied as error:
        if started or call_id is None:
            raise
        raise _denial(guard.name, error) from error


async def _acall(
    guard: ToolGuard,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    names: Collection[str],
) -> Any:
    call_id = _tool_call_id.get()
    started = False

    async def run() -> Any:
        nonlocal started
        started = True
        return await fn(*args, **kwargs)

    try:
        return await guard.acall(
            run, call_id=call_id, arguments=_audited_arguments(args, kwargs, names)
        )
    except PolicyDenied as error:
        if started or call_id is None:
            raise
        raise _denial(guard.name, error) from error


def _guarded_function(
    func: Callable[..., Any], guard: ToolGuard, names: Collection[str]
) -> Callable[..., Any]:
    # functools.wraps keeps the signature and annotations visible, so LangChain and LangGraph
    # still find injected arguments, `config` and `callbacks` parameters on the wrapper.
    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        return _call(guard, func, args, kwargs, names)

    return guarded


def _guarded_coroutine(
    coroutine: Callable[..., Awaitable[Any]], guard: ToolGuard, names: Collection[str]
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(coroutine)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        return await _acall(guard, coroutine, args, kwargs, names)

    return guarded


def _argument_names(tool: BaseTool) -> frozenset[str]:
    """Return the names of the arguments the model supplies, without injected ones."""
    try:
        return frozenset(tool.args)
    except Exception:  # a schema LangChain cannot render: audit no argument values
        logger.debug("cannot read the arguments of tool %s", tool.name, exc_info=True)
        return frozenset()


# -- guarded tool classes ----------------------------------------------------------------------


class _CallIdTool(BaseTool):
    """Records the model's tool call id of each run for the guarded function."""

    _guard: ToolGuard | None = PrivateAttr(default=None)

    @classmethod
    def build(cls, guard: ToolGuard, **fields: Any) -> Self:
        """Return a new tool of this class from its fields, guarded by `guard`."""
        tool = cls(**fields)
        tool._guard = guard
        return tool

    @property
    def guard(self) -> ToolGuard:
        """The agentlease guard that checks, grants and audits each call."""
        assert self._guard is not None
        return self._guard

    def run(self, *args: Any, **kwargs: Any) -> Any:
        token = _tool_call_id.set(kwargs.get("tool_call_id"))
        try:
            return super().run(*args, **kwargs)
        finally:
            _tool_call_id.reset(token)

    async def arun(self, *args: Any, **kwargs: Any) -> Any:
        token = _tool_call_id.set(kwargs.get("tool_call_id"))
        try:
            return await super().arun(*args, **kwargs)
        finally:
            _tool_call_id.reset(token)


class _GuardedStructuredTool(_CallIdTool, StructuredTool):
    """A copy of a `StructuredTool` whose function and coroutine are guarded."""


class _GuardedTool(_CallIdTool, Tool):
    """A copy of a single-input `Tool` whose function and coroutine are guarded."""


def _guarded_copy(
    cls: type[_GuardedStructuredTool] | type[_GuardedTool],
    tool: StructuredTool | Tool,
    guard: ToolGuard,
) -> BaseTool:
    names = _argument_names(tool)
    fields = {name: getattr(tool, name) for name in type(tool).model_fields}
    if tool.func is not None:
        fields["func"] = _guarded_function(tool.func, guard, names)
    if tool.coroutine is not None:
        fields["coroutine"] = _guarded_coroutine(tool.coroutine, guard, names)
    fields["handle_tool_error"] = _DenialHandler(tool.handle_tool_error)
    fields["metadata"] = _marked(tool.metadata)
    return cls.build(guard, **fields)


def _marked(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Return tool metadata with the marker that tells callbacks agentlease guards the tool."""
    return {**(metadata or {}), GUARDED_METADATA_KEY: True}


class SecureTool(_CallIdTool):
    """A guarded tool that delegates to any `BaseTool`.

    It presents the wrapped tool's name, description, full input schema (injected arguments
    included) and response format, and runs the wrapped tool's ``_run``/``_arun`` with the
    run manager and config LangChain passes. Build it with `secure_tool`.

    Args:
        tool: The tool to guard.
        guard: The guard that checks, grants and audits each call.
    """

    tool: BaseTool = Field(exclude=True)
    """The wrapped tool."""

    _names: frozenset[str] = PrivateAttr(default=frozenset())

    def __init__(self, tool: BaseTool, *, guard: ToolGuard) -> None:
        args_schema: ArgsSchema = (
            tool.args_schema if tool.args_schema is not None else tool.get_input_schema()
        )
        fields: dict[str, Any] = {
            "tool": tool,
            "name": tool.name,
            "description": tool.description,
            "args_schema": args_schema,
            "return_direct": tool.return_direct,
            "verbose": tool.verbose,
            "callbacks": tool.callbacks,
            "tags": tool.tags,
            "metadata": _marked(tool.metadata),
            "handle_tool_error": _DenialHandler(tool.handle_tool_error),
            "handle_validation_error": tool.handle_validation_error,
            "response_format": tool.response_format,
            "extras": tool.extras,
        }
        super().__init__(**fields)
        self._guard = guard
        self._names = _argument_names(tool)

    @property
    def func(self) -> Callable[..., Any]:
        """The wrapped tool's function, whose annotations LangGraph reads for injection."""
        inner = getattr(self.tool, "func", None)
        return inner if callable(inner) else self.tool._run

    @property
    def tool_call_schema(self) -> ArgsSchema:
        """The wrapped tool's schema as it is offered to the model."""
        return self.tool.tool_call_schema

    @functools.cached_property
    def _injected_args_keys(self) -> frozenset[str]:
        return self.tool._injected_args_keys

    def _to_args_and_kwargs(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return self.tool._to_args_and_kwargs(tool_input, tool_call_id)

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        target = self.tool._run
        kwargs.update(_forwarded(target, config, run_manager))
        return _call(self.guard, target, args, kwargs, self._names)

    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        # BaseTool._arun runs _run in an executor; it reads run_manager and config from _run.
        inherits_arun = type(self.tool)._arun is BaseTool._arun
        signature_source = self.tool._run if inherits_arun else self.tool._arun
        kwargs.update(_forwarded(signature_source, config, run_manager))
        return await _acall(self.guard, self.tool._arun, args, kwargs, self._names)


def _forwarded(
    target: Callable[..., Any], config: RunnableConfig, run_manager: Any
) -> dict[str, Any]:
    """Return the run manager and config arguments that `target` declares."""
    forwarded: dict[str, Any] = {}
    parameters = inspect.signature(target).parameters
    if "run_manager" in parameters and run_manager is not None:
        forwarded["run_manager"] = run_manager
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: the target declares no usable config
        hints = {}
    for name, hint in hints.items():
        if hint is RunnableConfig:
            forwarded[name] = config
            break
    return forwarded
