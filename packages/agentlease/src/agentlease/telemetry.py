"""Spans for tasks, model calls and tool calls, on one tracer provider.

This is the task-aware layer over `agentlease.audit.tracing`: it reads the task, route and
request and passes their non-secret fields to the span helpers. A top-level task starts a new
trace, linked to the span that was current when it opened, so one task is one trace. A
sub-task's span is a child of its parent's. Telemetry never raises into the caller.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from agentlease.audit import semconv, tracing

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from agentlease.messages import ChatRequest, Usage
    from agentlease.routing import Route
    from agentlease.task import Task

__all__ = ["Telemetry"]


class Telemetry:
    """Starts and ends agentlease's spans on one tracer provider (the global one by default)."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = tracing.get_tracer(tracer_provider)

    def start_task_span(self, task: Task) -> Span | None:
        """Start the ``invoke_agent`` span of a task."""
        attributes = {
            semconv.AGENTLEASE_IDENTITY: task.identity.id,
            semconv.AGENTLEASE_IDENTITY_VERIFIED: task.identity.verified,
        }
        if task.parent is not None and task.parent.span is not None:
            return tracing.start_invoke_agent_span(
                task.name,
                task_id=task.id,
                data_class=task.data_class,
                parent_task_id=task.parent.id,
                parent=task.parent.span,
                tracer=self._tracer,
                attributes=attributes,
            )
        ambient = trace.get_current_span().get_span_context()
        span = tracing.start_invoke_agent_span(
            task.name,
            task_id=task.id,
            data_class=task.data_class,
            parent=otel_context.Context(),
            tracer=self._tracer,
            attributes=attributes,
        )
        if ambient.is_valid:
            with contextlib.suppress(Exception):
                span.add_link(ambient)
        return span

    def end_task_span(self, task: Task, error: BaseException | None = None) -> None:
        """End a task's span with its final data class and the number of grants revoked."""
        span = task.span
        if span is None:
            return
        with contextlib.suppress(Exception):
            span.set_attribute(semconv.AGENTLEASE_DATA_CLASS, task.data_class)
            span.set_attribute(semconv.AGENTLEASE_GRANTS_REVOKED, len(task.revoked))
        tracing.end_span(span, error=error)

    def start_chat_span(self, task: Task, route: Route, request: ChatRequest) -> Span:
        """Start a ``chat {model}`` span under the task's span."""
        return tracing.start_chat_span(
            route.model,
            task_id=task.id,
            provider=route.provider,
            route=route.name,
            base_url=route.base_url,
            data_class=task.data_class,
            credential_mode=route.credential,
            max_tokens=request.max_tokens,
            parent=task.span,
            tracer=self._tracer,
            attributes={semconv.AGENTLEASE_POLICY_DECISION: semconv.DECISION_ALLOW},
        )

    def end_chat_span(
        self,
        span: Span | None,
        *,
        usage: Usage | None = None,
        response_model: str | None = None,
        finish_reason: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """End a chat span with the response model, usage and finish reason."""
        if span is None:
            return
        tracing.set_response(
            span,
            model=response_model,
            input_tokens=usage.input_tokens if usage is not None else None,
            output_tokens=usage.output_tokens if usage is not None else None,
            finish_reasons=(finish_reason,) if finish_reason is not None else None,
        )
        tracing.end_span(span, error=error)

    def start_tool_span(
        self, task: Task, name: str, call_id: str | None, *, risk: str, grant_jti: str
    ) -> Span:
        """Start an ``execute_tool {name}`` span under the task's span."""
        return tracing.start_execute_tool_span(
            name,
            task_id=task.id,
            call_id=call_id,
            data_class=task.data_class,
            risk=risk,
            grant_jti=grant_jti,
            parent=task.span,
            tracer=self._tracer,
            attributes={semconv.AGENTLEASE_POLICY_DECISION: semconv.DECISION_ALLOW},
        )

    def end_tool_span(self, span: Span | None, *, error: BaseException | None = None) -> None:
        """End a tool span."""
        if span is not None:
            tracing.end_span(span, error=error)
