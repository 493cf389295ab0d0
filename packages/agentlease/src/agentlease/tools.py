"""Guarded tool calls: a policy check, a grant, a span and an audit record for each call.

A `ToolGuard` describes one tool to the policy. Its `call` and `acall` run the tool's own
function after the policy allows the call, with a grant for the tool's audience available
through `current_grant()`, so the tool can authenticate to its downstream service with a
credential bound to this task and this tool alone.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from agentlease.audit.hashing import stable_hash
from agentlease.audit.record import CredentialInfo
from agentlease.errors import ConfigurationError, PolicyDenied, TaskError
from agentlease.grants import Grant
from agentlease.policy import Decision, Resource
from agentlease.routing import data_class_level
from agentlease.task import Task, current_task, open_implicit_task

if TYPE_CHECKING:
    from agentlease.runtime import Runtime

__all__ = ["ToolGuard", "current_grant"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Risk = Literal["low", "medium", "high"]

_current_grant: contextvars.ContextVar[Grant | None] = contextvars.ContextVar(
    "agentlease_tool_grant", default=None
)


def current_grant() -> Grant:
    """Return the grant of the guarded tool call running now.

    Tool code uses it to call its downstream service, for example with
    ``headers={"Authorization": f"Bearer {current_grant().token}"}``.

    Raises:
        TaskError: No guarded tool call is running in this context.
    """
    grant = _current_grant.get()
    if grant is None:
        raise TaskError(
            "No guarded tool call is running, so there is no grant; "
            "wrap the tool with agentlease before reading its grant."
        )
    return grant


class ToolGuard:
    """Policy, grant and audit for one tool.

    Args:
        name: The tool name; the policy sees it as ``Tool::"<name>"`` and the grant audience
            is ``tool:<name>``.
        risk: ``low``, ``medium`` or ``high``; the starter policy denies high-risk tools to
            unverified identities.
        clearance: The most sensitive data class the tool may receive.
        data_class: The class of the data the tool returns; a call raises the task's data
            class to it, so later model calls are routed accordingly.
        audience: The grant audience, for tools whose service expects a specific one.
        scope: The grant scope.
        attributes: Extra attributes for the policy.
        runtime: The runtime for calls made with no task open.
    """

    def __init__(
        self,
        name: str,
        *,
        risk: Risk = "low",
        clearance: str = "confidential",
        data_class: str | None = None,
        audience: str | None = None,
        scope: str = "call_tool",
        attributes: Mapping[str, Any] | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        if not name:
            raise ConfigurationError("A guarded tool needs a non-empty name.")
        if risk not in ("low", "medium", "high"):
            raise ConfigurationError(
                f"Tool {name!r} has risk {risk!r}; use 'low', 'medium' or 'high'."
            )
        level = data_class_level(clearance)
        if data_class is not None:
            data_class_level(data_class)
        self.name = name
        self.risk = risk
        self.clearance = clearance
        self.data_class = data_class
        self.audience = audience or f"tool:{name}"
        self.scope = scope
        self.runtime = runtime
        self.resource = Resource(
            type="Tool",
            id=name,
            properties={
                **(attributes or {}),
                "risk": risk,
                "clearance": level,
                "clearance_name": clearance,
            },
        )

    def __repr__(self) -> str:
        return f"ToolGuard({self.name!r}, risk={self.risk!r}, clearance={self.clearance!r})"

    def authorize(self, task: Task, *, call_id: str | None = None) -> Decision:
        """Ask the policy whether the task may call this tool; audit and raise on denial.

        Raises:
            PolicyDenied: The policy denied the call.
        """
        decision = task.decide([task.access_request("call_tool", self.resource)])[0]
        if decision.allowed:
            return decision
        error = PolicyDenied(
            f"Policy denied tool {self.name!r} for task {task.name!r}: "
            f"{decision.reason or 'no policy permits it'}. Change the policy or the task's "
            "data class to allow it.",
            action="call_tool",
            resource=self.name,
            policy_ids=decision.policy_ids,
            reason=decision.reason,
        )
        task.audit(
            "tool.call",
            resource=self.audience,
            outcome="denied",
            decision=decision,
            attributes={"tool": self.name, "call_id": call_id},
        )
        return _raise(error)

    def call(
        self,
        fn: Callable[[], T],
        /,
        *,
        call_id: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> T:
        """Run `fn()` as a guarded call of this tool.

        `fn` takes no arguments, so no tool parameter can clash with `call_id` or `arguments`:
        bind the tool's arguments with `functools.partial` or a lambda.

        Args:
            fn: The tool's work, with its arguments bound.
            call_id: The model's tool call id, for the audit log and spans.
            arguments: The tool's arguments; only their hash is recorded.

        Raises:
            PolicyDenied: The policy denied the call; `fn` did not run.

        Example:
            >>> guard = ToolGuard("crm")
            >>> guard.call(functools.partial(lookup, "C-1042"), arguments={"id": "C-1042"})
            ... # doctest: +SKIP
        """
        task, implicit = self._enter()
        scope = _ToolScope(self, task, call_id, arguments or {})
        error: BaseException | None = None
        try:
            scope.begin()
            try:
                result = fn()
            except BaseException as exc:
                scope.failed(exc)
                raise
            finally:
                scope.reset()
            scope.succeeded(result)
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            if implicit:
                task.close(error)

    async def acall(
        self,
        fn: Callable[[], Awaitable[T]],
        /,
        *,
        call_id: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> T:
        """Await `fn()` as a guarded call of this tool; see `call`."""
        task, implicit = self._enter()
        scope = _ToolScope(self, task, call_id, arguments or {})
        error: BaseException | None = None
        try:
            scope.begin()
            try:
                result = await fn()
            except BaseException as exc:
                scope.failed(exc)
                raise
            finally:
                scope.reset()
            scope.succeeded(result)
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            if implicit:
                task.close(error)

    def _enter(self) -> tuple[Task, bool]:
        current = current_task()
        if current is not None:
            if current.closed:
                raise TaskError(
                    f"Task {current.name!r} has ended; call tools inside its 'with' block."
                )
            return current, False
        runtime = self.runtime
        if runtime is None:
            from agentlease.runtime import get_runtime

            runtime = get_runtime()
        return open_implicit_task(f"tool {self.name}", runtime), True


class _ToolScope:
    """One guarded call: its decision, grant, span and audit record."""

    def __init__(
        self, guard: ToolGuard, task: Task, call_id: str | None, arguments: Mapping[str, Any]
    ) -> None:
        self.guard = guard
        self.task = task
        self.call_id = call_id
        self.arguments = arguments
        self.decision: Decision | None = None
        self.grant: Grant | None = None
        self.span: Any = None
        self._token: contextvars.Token[Grant | None] | None = None

    def begin(self) -> None:
        self.decision = self.guard.authorize(self.task, call_id=self.call_id)
        lifetime = self.decision.obligations.get("grant_lifetime")
        self.grant = self.task.grant(
            self.guard.audience,
            self.guard.scope,
            lifetime=int(lifetime) if isinstance(lifetime, (int, str)) else None,
        )
        self.span = self.task.runtime.telemetry.start_tool_span(
            self.task,
            self.guard.name,
            self.call_id,
            risk=self.guard.risk,
            grant_jti=self.grant.jti,
        )
        self._token = _current_grant.set(self.grant)

    def reset(self) -> None:
        if self._token is not None:
            _current_grant.reset(self._token)
            self._token = None

    def succeeded(self, result: object) -> None:
        self.task.runtime.telemetry.end_tool_span(self.span)
        self._audit("ok", result_hash=stable_hash(result))
        if self.guard.data_class is not None:
            self.task.raise_data_class(self.guard.data_class, source=self.guard.audience)

    def failed(self, exc: BaseException) -> None:
        self.task.runtime.telemetry.end_tool_span(self.span, error=exc)
        self._audit("error", error=exc)

    def _audit(self, outcome: str, **fields: Any) -> None:
        assert self.decision is not None
        assert self.grant is not None
        self.task.audit(
            "tool.call",
            resource=self.guard.audience,
            span=self.span,
            outcome=outcome,
            decision=self.decision,
            credential=CredentialInfo.from_grant(self.grant),
            args_hash=stable_hash(dict(self.arguments)),
            attributes={"tool": self.guard.name, "call_id": self.call_id},
            **fields,
        )


def _raise(error: BaseException) -> Any:
    raise error
