"""Tasks: the unit of identity, authorisation and audit.

A task is opened with `task(...)` as a sync or async context manager and bound to a context
variable. Every model call, tool call and sub-agent started inside it inherits it, across
asyncio tasks and executor threads that copy the context. A task mints grants on demand,
remembers each one, and revokes all of them when it ends, whether it ends normally, by an
exception or by cancellation.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agentlease.audit.record import AuditRecord, CredentialInfo
from agentlease.audit.tracing import span_ids
from agentlease.errors import ConfigurationError, TaskError
from agentlease.grants import Grant, GrantCache
from agentlease.policy import AccessRequest, Decision, Resource, Subject
from agentlease.routing import DATA_CLASSES, data_class_level

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from agentlease.identity import WorkloadIdentity
    from agentlease.runtime import Runtime

__all__ = ["Task", "TaskScope", "current_task", "task"]

logger = logging.getLogger(__name__)

_current: contextvars.ContextVar[Task | None] = contextvars.ContextVar(
    "agentlease_task", default=None
)


def current_task() -> Task | None:
    """Return the task open in the current context, or None."""
    return _current.get()


class Task:
    """One agent task: its identity, its grants, its data class and its audit session.

    Create tasks with `task(...)`; the constructor is internal.

    Attributes:
        id: A random task id; it is the audit session id and appears in every grant.
        name: The task name given by the caller.
        purpose: What the task is for, passed to the policy.
        jurisdiction: Where the task's data may be processed, or None for no constraint.
        on_behalf_of: The user the task acts for, or None.
        agent_state: A free-form state label the policy may use, such as ``"planning"``.
        parent: The enclosing task, for a sub-agent.
        identity: The workload identity the task runs as.
        runtime: The runtime whose broker, policy, routes and audit log the task uses.
        implicit: Whether agentlease opened the task around a single call.
    """

    def __init__(
        self,
        *,
        name: str,
        runtime: Runtime,
        purpose: str = "",
        data_class: str = "internal",
        jurisdiction: str | None = None,
        on_behalf_of: str | None = None,
        agent_state: str | None = None,
        parent: Task | None = None,
        implicit: bool = False,
    ) -> None:
        if not name:
            raise ConfigurationError("A task needs a non-empty name.")
        level = data_class_level(data_class)
        if parent is not None:
            jurisdiction, on_behalf_of = _narrow(parent, jurisdiction, on_behalf_of)
            level = max(level, parent.data_level)
            if parent.closed:
                raise TaskError(
                    f"Task {parent.name!r} has ended; open the sub-task inside its 'with' block."
                )

        self.id = secrets.token_hex(16)
        self.name = name
        self.purpose = purpose
        self.jurisdiction = jurisdiction
        self.on_behalf_of = on_behalf_of
        self.agent_state = agent_state
        self.parent = parent
        self.runtime = runtime
        self.implicit = implicit
        self.depth = 0 if parent is None else parent.depth + 1
        self.identity: WorkloadIdentity = runtime.identity.get()
        self.started_at = time.time()
        self.span: Span | None = None

        self._level = level
        self._lock = threading.RLock()
        self._closed = False
        self._grants = GrantCache(refresh_margin=runtime.grant_refresh_margin)
        self._revoked: list[Grant] = []
        self._subject = Subject(
            id=self.identity.id, type="Agent", properties=self.identity.policy_properties()
        )
        self._context: dict[str, Any] | None = None
        self._requests: dict[tuple[str, Resource], AccessRequest] = {}
        self._actor_chain = self._build_actor_chain()

    # -- state ---------------------------------------------------------------------------

    @property
    def data_class(self) -> str:
        """The task's data class: the highest class of any data it has seen."""
        return DATA_CLASSES[self._level]

    @property
    def data_level(self) -> int:
        """The rank of `data_class` in `DATA_CLASSES`."""
        return self._level

    @property
    def closed(self) -> bool:
        """Whether the task has ended."""
        return self._closed

    @property
    def grants(self) -> list[Grant]:
        """The grants minted under this task, in minting order; long-expired ones are dropped."""
        return self._grants.grants()

    @property
    def revoked(self) -> list[Grant]:
        """The grants revoked when the task ended."""
        return list(self._revoked)

    def raise_data_class(self, data_class: str, *, source: str | None = None) -> bool:
        """Raise the task's data class to at least `data_class`.

        Every later routing decision uses the raised class, so data never flows to a model
        the policy does not clear for it. The raise also applies to enclosing tasks, because a
        sub-agent's results flow back to them.

        Args:
            data_class: The class of the data just seen.
            source: Where the data came from, for the audit log (``"tool:search"``).

        Returns:
            Whether the class went up.
        """
        level = data_class_level(data_class)
        raised = False
        node: Task | None = self
        while node is not None:
            with node._lock:
                if level > node._level:
                    previous = node.data_class
                    node._level = level
                    node._context = None
                    node._requests = {}
                    raised = True
                    node.audit(
                        "task.data_class_raised",
                        resource=source,
                        attributes={"from": previous, "to": data_class},
                    )
            node = node.parent
        return raised

    # -- policy ----------------------------------------------------------------------------

    @property
    def subject(self) -> Subject:
        """The policy subject for this task's workload."""
        return self._subject

    def policy_context(self) -> Mapping[str, Any]:
        """Return the policy context for requests made in this task."""
        context = self._context
        if context is None:
            context = {
                "task": self.name,
                "purpose": self.purpose,
                "data_class": self.data_class,
                "data_level": self._level,
                "jurisdiction": self.jurisdiction or "",
                "on_behalf_of": self.on_behalf_of or "",
                "agent_state": self.agent_state or "",
                "depth": self.depth,
            }
            self._context = context
        return context

    def access_request(self, action: str, resource: Resource) -> AccessRequest:
        """Build a policy request for `action` on `resource` in this task.

        Requests are reused until the task's data class changes, because building one computes
        its cache key.
        """
        key = (action, resource)
        request = self._requests.get(key)
        if request is None:
            request = AccessRequest(
                subject=self._subject,
                action=action,
                resource=resource,
                context=self.policy_context(),
            )
            self._requests[key] = request
        return request

    def decide(self, requests: Sequence[AccessRequest]) -> list[Decision]:
        """Evaluate policy requests in one batch; an engine failure denies every request."""
        return self.runtime.decide(requests)

    # -- grants ----------------------------------------------------------------------------

    def grant(self, audience: str, scope: str, *, lifetime: int | None = None) -> Grant:
        """Return a grant for one audience and scope, minting one unless a fresh one is cached.

        Raises:
            TaskError: The task has ended.
        """
        cached = self._grants.get(audience, scope)
        if cached is not None:
            return cached

        with self._lock:
            if self._closed:
                raise TaskError(
                    f"Task {self.name!r} has ended, so it cannot mint a grant for {audience!r}; "
                    "make the call inside the task's 'with' block."
                )
            cached = self._grants.get(audience, scope)
            if cached is not None:
                return cached
            grant = self.runtime.broker.mint(
                subject=self.on_behalf_of or self.identity.id,
                audience=audience,
                scope=scope,
                task_id=self.id,
                data_class=self.data_class,
                lifetime=min(lifetime or self.runtime.grant_lifetime, self.runtime.grant_lifetime),
                act=self._actor_chain,
                client_id=self.identity.id,
            )
            self._grants.put(grant)

        self.audit(
            "grant.mint",
            resource=audience,
            credential=CredentialInfo.from_grant(grant),
            attributes={"scope": scope},
        )
        return grant

    def _build_actor_chain(self) -> dict[str, Any] | None:
        """Return the RFC 8693 ``act`` claim: the current actor first, prior actors nested."""
        if self.on_behalf_of is None and self.parent is None:
            return None
        chain: list[Task] = []
        node: Task | None = self
        while node is not None:
            chain.append(node)
            node = node.parent
        actor: dict[str, Any] | None = None
        for node in reversed(chain):
            entry: dict[str, Any] = {"sub": node.identity.id, "task_id": node.id}
            if actor is not None:
                entry["act"] = actor
            actor = entry
        return actor

    # -- audit -----------------------------------------------------------------------------

    def audit(self, action: str, *, span: Span | None = None, **fields: Any) -> AuditRecord:
        """Append a record of this task's session to the audit log."""
        trace_id, span_id = span_ids(span or self.span)
        return self.runtime.audit.append(
            session_id=self.id,
            parent_session_id=self.parent.id if self.parent is not None else None,
            task_name=self.name,
            actor=self.identity.id,
            on_behalf_of=self.on_behalf_of,
            action=action,
            trace_id=trace_id,
            span_id=span_id,
            **fields,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def begin(self) -> None:
        """Start the task's span and audit session; `task()` calls it once, on entry."""
        self.span = self.runtime.telemetry.start_task_span(self)
        self.audit(
            "task.start",
            resource=f"task:{self.name}",
            attributes={
                "purpose": self.purpose,
                "data_class": self.data_class,
                "jurisdiction": self.jurisdiction,
                "agent_state": self.agent_state,
                "implicit": self.implicit,
                "identity_verified": self.identity.verified,
                "identity_source": self.identity.source,
            },
        )

    def close(self, error: BaseException | None = None, *, flush: bool = True) -> None:
        """End the task: revoke every grant it minted and close its audit session.

        A top-level task flushes the audit log when it ends, which fsyncs the log file under
        the default fsync mode. Pass ``flush=False`` to flush yourself, as ``async with``
        does on a worker thread so that the fsync does not block the event loop. Closing twice
        does nothing.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            grants = self._grants.grants()

        try:
            self._revoke(grants)
        finally:
            outcome = _outcome(error)
            self.audit(
                "task.end",
                resource=f"task:{self.name}",
                outcome=outcome,
                error=error if outcome == "error" else None,
                attributes={
                    "grants_minted": len(grants),
                    "grants_revoked": len(self._revoked),
                    "data_class": self.data_class,
                    "duration_ms": round((time.time() - self.started_at) * 1000, 3),
                    "cancelled": outcome == "cancelled",
                },
            )
            self.runtime.telemetry.end_task_span(self, error)
            if flush and self.parent is None:
                self.runtime.audit.flush()

    def _revoke(self, grants: list[Grant]) -> None:
        if not grants:
            return
        until = max(g.expires_at for g in grants)
        self.runtime.broker.revoke_task(self.id, until=until)
        self._revoked = list(grants)
        self.audit(
            "grant.revoke",
            resource=f"task:{self.name}",
            attributes={
                "count": len(grants),
                "jtis": [g.jti for g in grants],
                "audiences": sorted({g.audience for g in grants}),
            },
        )

    def __repr__(self) -> str:
        return (
            f"Task(name={self.name!r}, id={self.id!r}, data_class={self.data_class!r}, "
            f"grants={len(self._grants.grants())}, closed={self._closed})"
        )

    def _repr_html_(self) -> str:
        from agentlease._html import render_task_html

        return render_task_html(self)


class TaskScope:
    """The context manager returned by `task(...)`; use it with ``with`` or ``async with``."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self._name = name
        self._options = options
        self._task: Task | None = None
        self._token: contextvars.Token[Task | None] | None = None

    def _open(self) -> Task:
        if self._task is not None:
            raise TaskError(f"Task scope {self._name!r} is already open; open a new task(...).")
        from agentlease.runtime import get_runtime

        parent = _current.get()
        runtime = self._options.pop("runtime", None)
        if runtime is None:
            runtime = parent.runtime if parent is not None else get_runtime()
        opened = Task(name=self._name, runtime=runtime, parent=parent, **self._options)
        opened.begin()
        self._task = opened
        self._token = _current.set(opened)
        return opened

    def _close(self, error: BaseException | None, *, flush: bool = True) -> None:
        assert self._task is not None
        assert self._token is not None
        try:
            _current.reset(self._token)
        except ValueError:
            # The scope was exited in another context than it was entered in, for example by a
            # generator finalised elsewhere. The task still ends and revokes its grants.
            logger.debug("task %s exited in a different context", self._task.id)
        self._task.close(error, flush=flush)

    def __enter__(self) -> Task:
        return self._open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(exc)

    async def __aenter__(self) -> Task:
        return self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(exc, flush=False)
        assert self._task is not None
        if self._task.parent is None:
            # Revocation and the task.end record are already written; only the fsync waits.
            await asyncio.to_thread(self._task.runtime.audit.flush)


def task(
    name: str,
    *,
    purpose: str = "",
    data_class: str = "internal",
    jurisdiction: str | None = None,
    on_behalf_of: str | None = None,
    agent_state: str | None = None,
    runtime: Runtime | None = None,
) -> TaskScope:
    """Open a task for a unit of agent work.

    Every model and tool call inside the block runs under the task's identity, with grants
    scoped to it, and lands in its audit session. A task opened inside another becomes its
    sub-task: it can only narrow what the parent may do.

    Args:
        name: A short name for the task, shown in the audit log and spans.
        purpose: What the task is for, passed to the policy.
        data_class: The class of the data the task starts with (``public``, ``internal``,
            ``confidential``, ``restricted``).
        jurisdiction: Where the task's data may be processed, such as ``"eu"``.
        on_behalf_of: The user the task acts for.
        agent_state: A state label the policy may use.
        runtime: The runtime to use; defaults to the parent task's, then the default runtime.

    Example:
        >>> import agentlease
        >>> with agentlease.task("summarise", data_class="confidential") as t:  # doctest: +SKIP
        ...     chat_model.invoke("Summarise the report")
    """
    return TaskScope(
        name,
        {
            "purpose": purpose,
            "data_class": data_class,
            "jurisdiction": jurisdiction,
            "on_behalf_of": on_behalf_of,
            "agent_state": agent_state,
            "runtime": runtime,
        },
    )


def open_implicit_task(name: str, runtime: Runtime) -> Task:
    """Open a task around one call made with no task open, without binding it to the context.

    The caller must `close` it when the call ends.
    """
    opened = Task(name=name, runtime=runtime, implicit=True)
    opened.begin()
    return opened


def _narrow(
    parent: Task, jurisdiction: str | None, on_behalf_of: str | None
) -> tuple[str | None, str | None]:
    if parent.jurisdiction is not None:
        if jurisdiction is not None and jurisdiction != parent.jurisdiction:
            raise ConfigurationError(
                f"A sub-task cannot change jurisdiction from {parent.jurisdiction!r} to "
                f"{jurisdiction!r}; a sub-task may only narrow what its parent may do."
            )
        jurisdiction = parent.jurisdiction
    if parent.on_behalf_of is not None:
        if on_behalf_of is not None and on_behalf_of != parent.on_behalf_of:
            raise ConfigurationError(
                f"A sub-task cannot act for {on_behalf_of!r} when its parent acts for "
                f"{parent.on_behalf_of!r}; open a separate task instead."
            )
        on_behalf_of = parent.on_behalf_of
    return jurisdiction, on_behalf_of


def _outcome(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, (KeyboardInterrupt, GeneratorExit)) or type(error).__name__ in (
        "CancelledError",
    ):
        return "cancelled"
    return "error"
