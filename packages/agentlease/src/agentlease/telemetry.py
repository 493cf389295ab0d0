"""OpenTelemetry spans for tasks, model calls and tool calls.

Spans follow the OpenTelemetry GenAI conventions: ``invoke_agent {task}`` for a task,
``chat {model}`` for a model call and ``execute_tool {tool}`` for a tool call, with
agentlease attributes for policy decisions and credentials. A top-level task starts a new
trace, linked to the span that was current when it opened, so one task is one trace. Spans
never carry prompts, completions, arguments or tokens, and telemetry never raises into the
caller: a failing exporter or SDK costs spans, not calls.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from agentlease._version import __version__
from agentlease.audit import semconv

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from agentlease.messages import ChatRequest, Usage
    from agentlease.routing import Route
    from agentlease.task import Task

__all__ = ["Telemetry"]

logger = logging.getLogger(__name__)


class Telemetry:
    """Starts and ends agentlease's spans on one tracer provider."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._provider = tracer_provider

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer, looked up on each use so a provider set later is honoured."""
        return trace.get_tracer("agentlease", __version__, tracer_provider=self._provider)

    def start_task_span(self, task: Task) -> Span | None:
        """Start the ``invoke_agent`` span of a task."""
        try:
            if task.parent is not None and task.parent.span is not None:
                parent = trace.set_span_in_context(task.parent.span)
                links: list[Link] = []
            else:
                parent = otel_context.Context()
                ambient = trace.get_current_span().get_span_context()
                links = [Link(ambient)] if ambient.is_valid else []
            return self.tracer.start_span(
                f"{semconv.OP_INVOKE_AGENT} {task.name}",
                context=parent,
                kind=SpanKind.INTERNAL,
                links=links,
                attributes={
                    semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT,
                    semconv.GEN_AI_AGENT_NAME: task.name,
                    semconv.GEN_AI_CONVERSATION_ID: task.id,
                    semconv.AGENTLEASE_TASK_ID: task.id,
                    semconv.AGENTLEASE_DATA_CLASS: task.data_class,
                    semconv.AGENTLEASE_IDENTITY: task.identity.id,
                    semconv.AGENTLEASE_IDENTITY_VERIFIED: task.identity.verified,
                },
            )
        except Exception:
            logger.debug("could not start the task span", exc_info=True)
            return None

    def end_task_span(self, task: Task, error: BaseException | None = None) -> None:
        """End a task's span, recording its final data class and grant counts."""
        span = task.span
        if span is None:
            return
        try:
            span.set_attribute(semconv.AGENTLEASE_DATA_CLASS, task.data_class)
            span.set_attribute(semconv.AGENTLEASE_GRANTS_REVOKED, len(task.revoked))
            _finish(span, error)
        except Exception:
            logger.debug("could not end the task span", exc_info=True)

    def start_chat_span(self, task: Task, route: Route, request: ChatRequest) -> Span | None:
        """Start a ``chat {model}`` span under the task's span."""
        try:
            parent = trace.set_span_in_context(task.span) if task.span is not None else None
            url = urlsplit(route.base_url)
            attributes: dict[str, str | int | bool] = {
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
                semconv.GEN_AI_PROVIDER_NAME: route.provider,
                semconv.GEN_AI_REQUEST_MODEL: route.model,
                semconv.GEN_AI_CONVERSATION_ID: task.id,
                semconv.SERVER_ADDRESS: url.hostname or "",
                semconv.AGENTLEASE_TASK_ID: task.id,
                semconv.AGENTLEASE_ROUTE: route.name,
                semconv.AGENTLEASE_CREDENTIAL_MODE: route.credential,
                semconv.AGENTLEASE_DATA_CLASS: task.data_class,
                semconv.AGENTLEASE_POLICY_DECISION: "allow",
            }
            if url.port is not None:
                attributes[semconv.SERVER_PORT] = url.port
            if request.max_tokens is not None:
                attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
            return self.tracer.start_span(
                f"{semconv.OP_CHAT} {route.model}",
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=attributes,
            )
        except Exception:
            logger.debug("could not start a chat span", exc_info=True)
            return None

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
        try:
            if response_model is not None:
                span.set_attribute(semconv.GEN_AI_RESPONSE_MODEL, response_model)
            if finish_reason is not None:
                span.set_attribute(semconv.GEN_AI_RESPONSE_FINISH_REASONS, (finish_reason,))
            if usage is not None:
                span.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, usage.input_tokens)
                span.set_attribute(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, usage.output_tokens)
            _finish(span, error)
        except Exception:
            logger.debug("could not end a chat span", exc_info=True)

    def start_tool_span(self, task: Task, name: str, call_id: str | None) -> Span | None:
        """Start an ``execute_tool {name}`` span under the task's span."""
        try:
            parent = trace.set_span_in_context(task.span) if task.span is not None else None
            attributes: dict[str, str] = {
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
                semconv.GEN_AI_TOOL_NAME: name,
                semconv.GEN_AI_CONVERSATION_ID: task.id,
                semconv.AGENTLEASE_TASK_ID: task.id,
                semconv.AGENTLEASE_POLICY_DECISION: "allow",
            }
            if call_id:
                attributes[semconv.GEN_AI_TOOL_CALL_ID] = call_id
            return self.tracer.start_span(
                f"{semconv.OP_EXECUTE_TOOL} {name}",
                context=parent,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
            )
        except Exception:
            logger.debug("could not start a tool span", exc_info=True)
            return None

    def end_tool_span(self, span: Span | None, *, error: BaseException | None = None) -> None:
        """End a tool span."""
        if span is None:
            return
        try:
            _finish(span, error)
        except Exception:
            logger.debug("could not end a tool span", exc_info=True)


def _finish(span: Span, error: BaseException | None) -> None:
    if error is not None:
        span.set_attribute(semconv.ERROR_TYPE, type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()
