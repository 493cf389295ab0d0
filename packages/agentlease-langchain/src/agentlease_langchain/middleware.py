"""`AgentleaseMiddleware`: agentlease for LangChain 1.x agents built with `create_agent`.

The middleware guards every tool call of the agent, including tools that were not wrapped
with `secure_tool`, and checks that the agent's model goes through agentlease. It needs the
``langchain`` package (``create_agent`` and its middleware types), which the adapter does not
require otherwise, so it is imported from this module rather than from the package root.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypedDict

from langchain.agents.middleware import (
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
    ToolCallRequest,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.types import Command

from agentlease.errors import ConfigurationError, PolicyDenied
from agentlease.runtime import Runtime
from agentlease.tools import ToolGuard
from agentlease_langchain.chat_models import SecureChatModel
from agentlease_langchain.tools import denial_text, is_guarded

__all__ = ["AgentleaseMiddleware", "ToolOptions"]

logger = logging.getLogger(__name__)

_ToolResult = ToolMessage | Command[Any]
_ModelResult = ModelResponse[Any] | AIMessage


class ToolOptions(TypedDict, total=False):
    """The policy attributes of one tool, with the meaning of `secure_tool`'s arguments."""

    risk: Literal["low", "medium", "high"]
    clearance: str
    data_class: str
    audience: str


class AgentleaseMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Guards the tool calls of a `create_agent` agent and keeps its model on agentlease.

    Each tool call that a `secure_tool` does not already guard runs through a `ToolGuard`
    named after the tool: the policy decides, the tool gets a grant through
    `agentlease.current_grant()`, and the call is audited. A denied call does not run, and the
    model receives an error ``ToolMessage`` stating that the policy denied it.

    Args:
        tool_options: Policy attributes per tool name; tools not listed get `default_risk`
            and the default clearance.
        default_risk: The risk of tools that `tool_options` does not list.
        require_secure_model: Raise `ConfigurationError` when the agent's model is not a
            `SecureChatModel`, so that no model call bypasses routing and grants.
        runtime: The runtime for calls made outside a task.

    Example:
        >>> from langchain.agents import create_agent
        >>> from agentlease_langchain import SecureChatModel
        >>> from agentlease_langchain.middleware import AgentleaseMiddleware
        >>> middleware = AgentleaseMiddleware(tool_options={"delete_user": {"risk": "high"}})
        >>> agent = create_agent(SecureChatModel(), [], middleware=[middleware])
    """

    def __init__(
        self,
        *,
        tool_options: Mapping[str, ToolOptions] | None = None,
        default_risk: Literal["low", "medium", "high"] = "low",
        require_secure_model: bool = True,
        runtime: Runtime | None = None,
    ) -> None:
        super().__init__()
        self.tool_options = dict(tool_options or {})
        self.default_risk: Literal["low", "medium", "high"] = default_risk
        self.require_secure_model = require_secure_model
        self.runtime = runtime
        self._guards: dict[str, ToolGuard] = {}
        for name in self.tool_options:
            self._guard(name)

    def __repr__(self) -> str:
        return (
            f"AgentleaseMiddleware(tools={sorted(self.tool_options)}, "
            f"default_risk={self.default_risk!r})"
        )

    # -- model calls -----------------------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> _ModelResult:
        """Check the agent's model, then call it."""
        self._check_model(request.model)
        return handler(request)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> _ModelResult:
        """Check the agent's model, then call it asynchronously."""
        self._check_model(request.model)
        return await handler(request)

    def _check_model(self, model: BaseChatModel) -> None:
        if self.require_secure_model and not isinstance(model, SecureChatModel):
            raise ConfigurationError(
                f"The agent's model is a {type(model).__name__}, which does not go through "
                "agentlease; use SecureChatModel or pass require_secure_model=False."
            )

    # -- tool calls ------------------------------------------------------------------------

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], _ToolResult],
    ) -> _ToolResult:
        """Run a tool call under its guard; return an error message when denied."""
        if is_guarded(request.tool):
            return handler(request)
        call = request.tool_call
        guard = self._guard(call["name"])
        started = False

        def run() -> _ToolResult:
            nonlocal started
            started = True
            return handler(request)

        try:
            return guard.call(run, call_id=call["id"], arguments=call["args"])
        except PolicyDenied as error:
            if started:
                raise
            return _denied(request, guard, error)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[_ToolResult]],
    ) -> _ToolResult:
        """Run a tool call under its guard asynchronously; see `wrap_tool_call`."""
        if is_guarded(request.tool):
            return await handler(request)
        call = request.tool_call
        guard = self._guard(call["name"])
        started = False

        async def run() -> _ToolResult:
            nonlocal started
            started = True
            return await handler(request)

        try:
            return await guard.acall(run, call_id=call["id"], arguments=call["args"])
        except PolicyDenied as error:
            if started:
                raise
            return _denied(request, guard, error)

    def _guard(self, name: str) -> ToolGuard:
        guard = self._guards.get(name)
        if guard is None:
            options = self.tool_options.get(name, ToolOptions())
            guard = ToolGuard(
                name,
                risk=options.get("risk", self.default_risk),
                clearance=options.get("clearance", "confidential"),
                data_class=options.get("data_class"),
                audience=options.get("audience"),
                runtime=self.runtime,
            )
            self._guards[name] = guard
        return guard


def _denied(request: ToolCallRequest, guard: ToolGuard, error: PolicyDenied) -> ToolMessage:
    call = request.tool_call
    return ToolMessage(
        content=denial_text(guard.name, error),
        tool_call_id=call["id"] or "",
        name=call["name"],
        status="error",
    )
