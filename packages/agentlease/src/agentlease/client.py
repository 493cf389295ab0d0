"""The model client: every secured model call goes through here.

One call is: resolve the requested model to candidate routes, ask the policy about all of them
in one batch, take the first permitted route, attach its credential, call the provider, and
audit and trace each step. On a retriable failure before any output, the call moves to the next
permitted route, so a fallback never leaves what the policy permits. Both framework adapters
call this module, so they share one tested code path.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING, Any

from agentlease.audit.record import CredentialInfo
from agentlease.errors import (
    ConfigurationError,
    NoPermittedRouteError,
    ProviderError,
    TaskError,
)
from agentlease.messages import ChatChunk, ChatRequest, ChatResponse, Usage
from agentlease.policy import Decision
from agentlease.providers import RouteAuth, api_key_source
from agentlease.routing import Route, filter_capable
from agentlease.task import Task, current_task, open_implicit_task

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from agentlease.runtime import Runtime

__all__ = ["ModelClient"]

logger = logging.getLogger(__name__)

_Plan = list[tuple[Route, Decision]]


class ModelClient:
    """Makes policy-routed, credentialed, audited model calls.

    Args:
        model: A route name, a route group, or a model id that configured routes serve.
        runtime: The runtime for calls made with no task open; inside a task, the task's
            runtime applies.

    Example:
        >>> from agentlease import ModelClient, task
        >>> from agentlease.messages import ChatRequest, Message
        >>> client = ModelClient("default")
        >>> with task("hello"):  # doctest: +SKIP
        ...     client.chat(ChatRequest(messages=[Message(role="user", content="Hi")]))
    """

    def __init__(self, model: str = "default", *, runtime: Runtime | None = None) -> None:
        if not model:
            raise ConfigurationError("ModelClient needs a model, route or route group name.")
        self.model = model
        self.runtime = runtime

    def __repr__(self) -> str:
        return f"ModelClient(model={self.model!r})"

    # -- public calls ----------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Make one model call and return the complete response.

        Raises:
            UnknownRouteError: No route serves the requested model.
            NoPermittedRouteError: The policy permits none of the candidate routes.
            ProviderError: Every permitted route failed; the last failure is raised.
        """
        task, implicit = self._enter()
        error: BaseException | None = None
        try:
            plan = self._plan(task, request)
            last: ProviderError | None = None
            for index, (route, decision) in enumerate(plan):
                call = _Call(task, route, decision, request)
                try:
                    response = task.runtime.provider_for(route).chat(
                        route, call.request, auth=call.auth
                    )
                except ProviderError as exc:
                    call.failed(exc)
                    last = exc
                    if not self._fallback(task, plan, index, exc):
                        raise
                    continue
                call.succeeded(response.usage, response.model, response.finish_reason)
                return response
            assert last is not None
            raise last
        except BaseException as exc:
            error = exc
            raise
        finally:
            if implicit:
                task.close(error)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """Make one model call asynchronously; see `chat`."""
        task, implicit = self._enter()
        error: BaseException | None = None
        try:
            plan = self._plan(task, request)
            last: ProviderError | None = None
            for index, (route, decision) in enumerate(plan):
                call = _Call(task, route, decision, request)
                try:
                    response = await task.runtime.provider_for(route).achat(
                        route, call.request, auth=call.auth
                    )
                except ProviderError as exc:
                    call.failed(exc)
                    last = exc
                    if not self._fallback(task, plan, index, exc):
                        raise
                    continue
                call.succeeded(response.usage, response.model, response.finish_reason)
                return response
            assert last is not None
            raise last
        except BaseException as exc:
            error = exc
            raise
        finally:
            if implicit:
                task.close(error)

    def stream(self, request: ChatRequest) -> Generator[ChatChunk, None, None]:
        """Stream one model call.

        A failure before any output moves to the next permitted route; a failure after output
        has begun raises `StreamInterrupted`, and the stream never ends silently.
        """
        task, implicit = self._enter()
        error: BaseException | None = None
        try:
            plan = self._plan(task, request)
            for index, (route, decision) in enumerate(plan):
                call = _Call(task, route, decision, request, stream=True)
                tracker = _StreamTracker()
                try:
                    chunks = task.runtime.provider_for(route).stream(
                        route, call.request, auth=call.auth
                    )
                    for chunk in chunks:
                        tracker.see(chunk)
                        yield chunk
                except ProviderError as exc:
                    call.failed(exc)
                    if tracker.started or not self._fallback(task, plan, index, exc):
                        raise
                    continue
                except GeneratorExit:
                    call.abandoned(tracker.usage, tracker.model)
                    raise
                call.succeeded(tracker.usage, tracker.model, tracker.finish_reason)
                return
        except BaseException as exc:
            error = exc
            raise
        finally:
            if implicit:
                task.close(None if isinstance(error, GeneratorExit) else error)

    async def astream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Stream one model call asynchronously; see `stream`."""
        task, implicit = self._enter()
        error: BaseException | None = None
        try:
            plan = self._plan(task, request)
            for index, (route, decision) in enumerate(plan):
                call = _Call(task, route, decision, request, stream=True)
                tracker = _StreamTracker()
                try:
                    chunks = task.runtime.provider_for(route).astream(
                        route, call.request, auth=call.auth
                    )
                    async for chunk in chunks:
                        tracker.see(chunk)
                        yield chunk
                except ProviderError as exc:
                    call.failed(exc)
                    if tracker.started or not self._fallback(task, plan, index, exc):
                        raise
                    continue
                except GeneratorExit:
                    call.abandoned(tracker.usage, tracker.model)
                    raise
                call.succeeded(tracker.usage, tracker.model, tracker.finish_reason)
                return
        except BaseException as exc:
            error = exc
            raise
        finally:
            if implicit:
                task.close(None if isinstance(error, GeneratorExit) else error)

    def candidates(self, request: ChatRequest | None = None) -> list[Route]:
        """Return the routes that serve this client's model, in preference order."""
        name = request.model if request is not None and request.model else self.model
        return self._runtime().routes.resolve(name)

    # -- steps -----------------------------------------------------------------------------

    def _runtime(self) -> Runtime:
        current = current_task()
        if current is not None:
            return current.runtime
        if self.runtime is not None:
            return self.runtime
        from agentlease.runtime import get_runtime

        return get_runtime()

    def _enter(self) -> tuple[Task, bool]:
        current = current_task()
        if current is not None:
            if current.closed:
                raise TaskError(
                    f"Task {current.name!r} has ended; make model calls inside its 'with' block."
                )
            return current, False
        runtime = self.runtime
        if runtime is None:
            from agentlease.runtime import get_runtime

            runtime = get_runtime()
        return open_implicit_task(f"chat {self.model}", runtime), True

    def _plan(self, task: Task, request: ChatRequest) -> _Plan:
        name = request.model or self.model
        runtime = task.runtime
        try:
            routes = runtime.routes.resolve(name)
        except ConfigurationError as exc:
            task.audit(
                "model.call",
                resource=f"model:{name}",
                outcome="error",
                error=exc,
            )
            raise

        capable = filter_capable(
            routes,
            tools=request.needs_tools,
            structured_output=request.needs_structured_output,
        )
        reasons: dict[str, str] = {
            r.name: "the route lacks a capability the call needs"
            for r in routes
            if r not in capable
        }
        requests = [task.access_request("invoke_model", runtime.route_resource(r)) for r in capable]
        decisions = task.decide(requests) if requests else []

        plan: _Plan = []
        policy_ids: list[str] = []
        for route, decision in zip(capable, decisions, strict=True):
            if decision.allowed:
                plan.append((route, decision))
                continue
            reasons[route.name] = decision.reason or "denied"
            policy_ids.extend(decision.policy_ids)
            task.audit(
                "policy.decision",
                resource=route.audience,
                outcome="denied",
                decision=decision,
                attributes={"action": "invoke_model", "model": route.model},
            )
        if plan:
            return plan

        candidates = [r.name for r in routes]
        summary = "; ".join(f"{name}: {why}" for name, why in reasons.items())
        error = NoPermittedRouteError(
            f"No route for model {name!r} is permitted for task {task.name!r} "
            f"(data class {task.data_class!r}): {summary}. Declare a route cleared for this "
            "data class or change the policy.",
            model=name,
            candidates=candidates,
            reasons=reasons,
            policy_ids=policy_ids,
        )
        task.audit(
            "model.call",
            resource=f"model:{name}",
            outcome="denied",
            error=error,
            attributes={"candidates": candidates},
        )
        raise error

    def _fallback(self, task: Task, plan: _Plan, index: int, exc: ProviderError) -> bool:
        """Audit a move to the next permitted route; return False when there is none."""
        if not exc.retriable or index + 1 >= len(plan):
            return False
        following = plan[index + 1][0]
        logger.info(
            "route %s failed (%s); trying %s", exc.route, type(exc).__name__, following.name
        )
        task.audit(
            "route.fallback",
            resource=f"route:{following.name}",
            attributes={
                "from": exc.route,
                "to": following.name,
                "error_type": type(exc).__name__,
                "status_code": exc.status_code,
            },
        )
        return True


class _Call:
    """One attempt on one route: its credential, span and audit record."""

    __slots__ = ("auth", "credential", "decision", "request", "route", "span", "stream", "task")

    def __init__(
        self,
        task: Task,
        route: Route,
        decision: Decision,
        request: ChatRequest,
        *,
        stream: bool = False,
    ) -> None:
        self.task = task
        self.stream = stream
        self.route = route
        self.decision = decision
        self.request = _apply_obligations(request, decision)
        token_source, self.credential = _credential(task, route, decision)
        self.auth = RouteAuth(token_source)
        self.span: Span | None = task.runtime.telemetry.start_chat_span(task, route, self.request)

    def succeeded(self, usage: Usage | None, model: str | None, finish_reason: str | None) -> None:
        self.task.runtime.telemetry.end_chat_span(
            self.span, usage=usage, response_model=model, finish_reason=finish_reason
        )
        self.task.audit(
            "model.call",
            resource=self.route.audience,
            span=self.span,
            decision=self.decision,
            credential=self.credential,
            usage=usage,
            attributes=self._attributes(model, finish_reason),
        )

    def failed(self, exc: ProviderError) -> None:
        self.task.runtime.telemetry.end_chat_span(self.span, error=exc)
        self.task.audit(
            "model.call",
            resource=self.route.audience,
            span=self.span,
            outcome="error",
            decision=self.decision,
            credential=self.credential,
            error=exc,
            attributes={
                **self._attributes(None, None),
                "retriable": exc.retriable,
                "status_code": exc.status_code,
            },
        )

    def abandoned(self, usage: Usage | None, model: str | None) -> None:
        self.task.runtime.telemetry.end_chat_span(self.span, usage=usage, response_model=model)
        self.task.audit(
            "model.call",
            resource=self.route.audience,
            span=self.span,
            decision=self.decision,
            credential=self.credential,
            usage=usage,
            attributes={**self._attributes(model, None), "stream_closed_early": True},
        )

    def _attributes(self, model: str | None, finish_reason: str | None) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "provider": self.route.provider,
            "request_model": self.route.model,
            "stream": self.stream,
        }
        if model is not None:
            attributes["response_model"] = model
        if finish_reason is not None:
            attributes["finish_reason"] = finish_reason
        if self.route.credential == "api_key":
            attributes["exception_path"] = "static_api_key"
        return attributes


class _StreamTracker:
    """Follows a stream: whether output has begun, and its usage, model and finish reason."""

    __slots__ = ("finish_reason", "model", "started", "usage")

    def __init__(self) -> None:
        self.started = False
        self.usage: Usage | None = None
        self.model: str | None = None
        self.finish_reason: str | None = None

    def see(self, chunk: ChatChunk) -> None:
        if chunk.content or chunk.tool_calls:
            self.started = True
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.model is not None:
            self.model = chunk.model
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason


def _credential(
    task: Task, route: Route, decision: Decision
) -> tuple[Callable[[], str], CredentialInfo]:
    if route.credential == "grant":
        lifetime = _int_obligation(decision, "grant_lifetime")
        grant = task.grant(route.audience, "invoke_model", lifetime=lifetime)
        token = grant.token
        return (lambda: token), CredentialInfo.from_grant(grant)
    if route.credential == "api_key":
        return api_key_source(route), CredentialInfo(mode="api_key", aud=route.audience)
    raise ConfigurationError(
        f"Route {route.name!r} uses credential 'exchange', which this version cannot perform "
        "yet; use 'grant' or 'api_key'."
    )


def _apply_obligations(request: ChatRequest, decision: Decision) -> ChatRequest:
    cap = _int_obligation(decision, "max_tokens")
    if cap is None or (request.max_tokens is not None and request.max_tokens <= cap):
        return request
    return dataclasses.replace(request, max_tokens=cap)


def _int_obligation(decision: Decision, name: str) -> int | None:
    value = decision.obligations.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        logger.warning("ignoring obligation %s with non-integer value %r", name, value)
        return None
