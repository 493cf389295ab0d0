"""OpenTelemetry spans for tasks, model calls and tool calls, over `opentelemetry-api` only.

Three kinds of span follow the OpenTelemetry GenAI conventions:

- ``invoke_agent {name}`` (INTERNAL) for a task;
- ``chat {model}`` (CLIENT) for one model call;
- ``execute_tool {name}`` (INTERNAL) for one tool call.

Each kind has a `start_*_span` function that returns a started span without making it
current, for spans that outlive one block, such as a stream or a task. Each also has a
context manager of the same name without ``start_``, which makes the span current, ends it
and marks errors. Every
function takes `parent`: a span, an OpenTelemetry `Context`, or None for the current context.
Pass an empty `opentelemetry.context.Context()` to start a new trace.

Telemetry never raises into the caller: a failure inside OpenTelemetry is logged and the
helpers fall back to a non-recording span. Exceptions of the caller's own code still
propagate from the context managers. No helper takes prompt or completion text, tool
arguments or results, or tokens, and an error is recorded by its type alone, because an
exception message can quote any of them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import Token
from typing import TypeAlias
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue

from agentlease._version import __version__
from agentlease.audit import semconv
from agentlease.audit.record import exception_type_name

__all__ = [
    "add_event",
    "chat_span",
    "end_span",
    "execute_tool_span",
    "get_tracer",
    "invoke_agent_span",
    "set_credential",
    "set_policy_decision",
    "set_response",
    "set_route",
    "span_ids",
    "start_chat_span",
    "start_execute_tool_span",
    "start_invoke_agent_span",
]

logger = logging.getLogger(__name__)

Parent: TypeAlias = Span | Context | None

_failures = 0


def get_tracer(tracer_provider: TracerProvider | None = None) -> Tracer:
    """Return the ``agentlease`` tracer of a provider, or of the global provider when None.

    The global tracer is a proxy until the application sets a global provider, and then
    delegates to it, so it may be fetched before telemetry is configured.
    """
    return trace.get_tracer(
        semconv.TRACER_NAME,
        __version__,
        tracer_provider=tracer_provider,
    )


def start_invoke_agent_span(
    name: str,
    *,
    task_id: str,
    data_class: str | None = None,
    parent_task_id: str | None = None,
    conversation_id: str | None = None,
    parent: Parent = None,
    tracer: Tracer | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Span:
    """Start the ``invoke_agent {name}`` span of a task, without making it current.

    Args:
        name: The task (agent) name, recorded as `gen_ai.agent.name`.
        task_id: The task id, recorded as `agentlease.task.id`.
        data_class: The task's data class.
        parent_task_id: The parent task's id, for sub-agents.
        conversation_id: The `gen_ai.conversation.id`; the task id when omitted.
        parent: The parent span or context; None for the current context.
        tracer: The tracer; `get_tracer()` when omitted.
        attributes: Further attributes, which must not contain secrets or prompt text.
    """
    values: dict[str, AttributeValue | None] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT,
        semconv.GEN_AI_AGENT_NAME: name,
        semconv.GEN_AI_CONVERSATION_ID: conversation_id or task_id,
        semconv.AGENTLEASE_TASK_ID: task_id,
        semconv.AGENTLEASE_PARENT_TASK_ID: parent_task_id,
        semconv.AGENTLEASE_DATA_CLASS: data_class,
    }
    return _start(
        f"{semconv.OP_INVOKE_AGENT} {name}", SpanKind.INTERNAL, values, attributes, parent, tracer
    )


def start_chat_span(
    model: str,
    *,
    task_id: str | None = None,
    provider: str | None = None,
    route: str | None = None,
    base_url: str | None = None,
    data_class: str | None = None,
    credential_mode: str | None = None,
    grant_jti: str | None = None,
    max_tokens: int | None = None,
    parent: Parent = None,
    tracer: Tracer | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Span:
    """Start the ``chat {model}`` span of one model call, without making it current.

    Args:
        model: The requested model id, recorded as `gen_ai.request.model`.
        task_id: The task id, recorded as `agentlease.task.id` and `gen_ai.conversation.id`.
        provider: The `gen_ai.provider.name`.
        route: The agentlease route name.
        base_url: The endpoint, recorded as `server.address` and `server.port`.
        data_class: The task's data class at the time of the call.
        credential_mode: ``grant``, ``exchange``, ``api_key`` or ``unmediated``.
        grant_jti: The `jti` of the grant the call carries, never the grant itself.
        max_tokens: The requested `gen_ai.request.max_tokens`.
        parent: The parent span or context; None for the current context.
        tracer: The tracer; `get_tracer()` when omitted.
        attributes: Further attributes, which must not contain secrets or prompt text.
    """
    values: dict[str, AttributeValue | None] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.GEN_AI_PROVIDER_NAME: provider,
        semconv.GEN_AI_CONVERSATION_ID: task_id,
        semconv.GEN_AI_REQUEST_MAX_TOKENS: max_tokens,
        semconv.AGENTLEASE_TASK_ID: task_id,
        semconv.AGENTLEASE_ROUTE: route,
        semconv.AGENTLEASE_DATA_CLASS: data_class,
        semconv.AGENTLEASE_CREDENTIAL_MODE: credential_mode,
        semconv.AGENTLEASE_GRANT_JTI: grant_jti,
    }
    values.update(_server_attributes(base_url))
    return _start(
        _span_name(semconv.OP_CHAT, model), SpanKind.CLIENT, values, attributes, parent, tracer
    )


def start_execute_tool_span(
    name: str,
    *,
    task_id: str | None = None,
    call_id: str | None = None,
    data_class: str | None = None,
    risk: str | None = None,
    grant_jti: str | None = None,
    parent: Parent = None,
    tracer: Tracer | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Span:
    """Start the ``execute_tool {name}`` span of one tool call, without making it current.

    Args:
        name: The tool name, recorded as `gen_ai.tool.name`.
        task_id: The task id, recorded as `agentlease.task.id` and `gen_ai.conversation.id`.
        call_id: The model's tool call id, recorded as `gen_ai.tool.call.id`.
        data_class: The task's data class at the time of the call.
        risk: The tool's risk level.
        grant_jti: The `jti` of the grant the call carries, never the grant itself.
        parent: The parent span or context; None for the current context.
        tracer: The tracer; `get_tracer()` when omitted.
        attributes: Further attributes, which must not contain secrets, arguments or results.
    """
    values: dict[str, AttributeValue | None] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: name,
        semconv.GEN_AI_TOOL_CALL_ID: call_id,
        semconv.GEN_AI_CONVERSATION_ID: task_id,
        semconv.AGENTLEASE_TASK_ID: task_id,
        semconv.AGENTLEASE_DATA_CLASS: data_class,
        semconv.AGENTLEASE_TOOL_RISK: risk,
        semconv.AGENTLEASE_CREDENTIAL_MODE: "grant" if grant_jti else None,
        semconv.AGENTLEASE_GRANT_JTI: grant_jti,
    }
    return _start(
        _span_name(semconv.OP_EXECUTE_TOOL, name),
        SpanKind.INTERNAL,
        values,
        attributes,
        parent,
        tracer,
    )


def end_span(span: Span, *, error: BaseException | None = None) -> None:
    """End a span; with `error`, set `error.type` and an ERROR status first.

    The status description is the exception type, not its message.
    """
    try:
        if error is not None:
            error_type = exception_type_name(error)
            span.set_attribute(semconv.ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()
    except Exception:
        _report_failure("end a span")


@contextmanager
def invoke_agent_span(
    name: str,
    *,
    task_id: str,
    data_class: str | None = None,
    parent_task_id: str | None = None,
    conversation_id: str | None = None,
    parent: Parent = None,
    tracer: Tracer | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Generator[Span, None, None]:
    """Run a block inside a task's ``invoke_agent`` span; see `start_invoke_agent_span`."""
    span = start_invoke_agent_span(
        name,
        task_id=task_id,
        data_class=data_class,
        parent_task_id=parent_task_id,
        conversation_id=conversation_id,
        parent=parent,
        tracer=tracer,
        attributes=attributes,
    )
    with _current(span):
        yield span


@contextmanager
def chat_span(
    model: str,
    *,
    task_id: str | None = None,
    provider: str | None = None,
    route: str | None = None,
    base_url: str | None = None,
    data_class: str | None = None,
    credential_mode: str | None = None,
    grant_jti: str | None = None,
    max_tokens: int | None = None,
    parent: Parent = None,
    tracer: Tracer | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Generator[Span, None, None]:
    """Run a block inside a model call's ``chat`` span; see `start_chat_span`."""
    span = start_chat_span(
        model,
        task_id=task_id,
        provider=provider,
        route=route,
        base_url=base_url,
        data_class=data_class,
        credential_mode=credential_mode,
        grant_jti=grant_jti,
        max_tokens=max_tokens,
        parent=parent,
        tracer=tracer,
        attributes=attributes,
    )
    with _current(span):
        yield span


@contextmanager
def execute_tool_span(
    name: str,
    *,
    task_id: str | None = None,
    call_id: str | None = None,
    data_class: str | None = None,
    risk: str | None = None,
    grant_jti: str | None = None,
    parent: Parent = None,
    tracer: Tracer | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Generator[Span, None, None]:
    """Run a block inside a tool call's ``execute_tool`` span; see `start_execute_tool_span`."""
    span = start_execute_tool_span(
        name,
        task_id=task_id,
        call_id=call_id,
        data_class=data_class,
        risk=risk,
        grant_jti=grant_jti,
        parent=parent,
        tracer=tracer,
        attributes=attributes,
    )
    with _current(span):
        yield span


def set_policy_decision(
    span: Span, *, allowed: bool, policy_ids: Sequence[str] = (), reason: str | None = None
) -> None:
    """Record a policy decision on a span as attributes and as a span event."""
    values: dict[str, AttributeValue | None] = {
        semconv.AGENTLEASE_POLICY_DECISION: (
            semconv.DECISION_ALLOW if allowed else semconv.DECISION_DENY
        ),
        semconv.AGENTLEASE_POLICY_IDS: tuple(policy_ids),
        semconv.AGENTLEASE_POLICY_REASON: reason or None,
    }
    _set(span, values)
    add_event(span, semconv.EVENT_POLICY_DECISION, values)


def set_credential(span: Span, *, mode: str, grant_jti: str | None = None) -> None:
    """Record which credential a call used: its mode and, for grants, the `jti`."""
    _set(
        span,
        {semconv.AGENTLEASE_CREDENTIAL_MODE: mode, semconv.AGENTLEASE_GRANT_JTI: grant_jti},
    )


def set_route(
    span: Span, *, route: str, provider: str | None = None, base_url: str | None = None
) -> None:
    """Record the route a model call went to, such as after a fallback to the next route."""
    values: dict[str, AttributeValue | None] = {
        semconv.AGENTLEASE_ROUTE: route,
        semconv.GEN_AI_PROVIDER_NAME: provider,
    }
    values.update(_server_attributes(base_url))
    _set(span, values)


def set_response(
    span: Span,
    *,
    model: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    finish_reasons: Sequence[str] | None = None,
) -> None:
    """Record a model response's model id, token usage and finish reasons."""
    _set(
        span,
        {
            semconv.GEN_AI_RESPONSE_MODEL: model,
            semconv.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
            semconv.GEN_AI_RESPONSE_FINISH_REASONS: (
                tuple(finish_reasons) if finish_reasons is not None else None
            ),
        },
    )


def add_event(
    span: Span, name: str, attributes: Mapping[str, AttributeValue | None] | None = None
) -> None:
    """Add an event, such as `semconv.EVENT_GRANT_MINT`, to a span; None values are dropped."""
    try:
        span.add_event(name, _without_none(attributes or {}))
    except Exception:
        _report_failure("add a span event")


def span_ids(span: Span | None) -> tuple[str | None, str | None]:
    """Return a span's trace id and span id as lowercase hex, or Nones for an invalid span.

    These are the `trace_id` and `span_id` values an `AuditRecord` stores.
    """
    if span is None:
        return None, None
    try:
        context = span.get_span_context()
        if not context.is_valid:
            return None, None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")
    except Exception:
        _report_failure("read a span's ids")
        return None, None


def _start(
    name: str,
    kind: SpanKind,
    values: Mapping[str, AttributeValue | None],
    extra: Mapping[str, AttributeValue] | None,
    parent: Parent,
    tracer: Tracer | None,
) -> Span:
    try:
        attributes = _without_none(values)
        if extra:
            attributes.update(_without_none(extra))
        return (tracer or get_tracer()).start_span(
            name, context=_parent_context(parent), kind=kind, attributes=attributes
        )
    except Exception:
        _report_failure(f"start the span {name!r}")
        return trace.INVALID_SPAN


@contextmanager
def _current(span: Span) -> Generator[None, None, None]:
    """Make a span current for the block, then end it; an exception marks it as an error."""
    token: Token[Context] | None = None
    try:
        token = otel_context.attach(trace.set_span_in_context(span))
    except Exception:
        _report_failure("make a span current")
    try:
        yield
    except BaseException as exc:
        end_span(span, error=exc)
        raise
    else:
        end_span(span)
    finally:
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception:
                _report_failure("restore the context after a span")


def _parent_context(parent: Parent) -> Context | None:
    if parent is None or isinstance(parent, Context):
        return parent
    return trace.set_span_in_context(parent)


def _span_name(operation: str, target: str) -> str:
    return f"{operation} {target}" if target else operation


def _server_attributes(base_url: str | None) -> dict[str, AttributeValue | None]:
    if not base_url:
        return {}
    return dict(_parse_server(base_url))


@functools.lru_cache(maxsize=256)
def _parse_server(base_url: str) -> tuple[tuple[str, AttributeValue | None], ...]:
    """Parse a base URL into server attributes once; routes reuse a few URLs for every call."""
    try:
        url = urlsplit(base_url)
        port = url.port
    except ValueError:
        return ()
    if port is None:
        port = {"https": 443, "http": 80}.get(url.scheme)
    return ((semconv.SERVER_ADDRESS, url.hostname), (semconv.SERVER_PORT, port))


def _set(span: Span, values: Mapping[str, AttributeValue | None]) -> None:
    try:
        span.set_attributes(_without_none(values))
    except Exception:
        _report_failure("set span attributes")


def _without_none(values: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {key: value for key, value in values.items() if value is not None}


def _report_failure(action: str) -> None:
    """Log a telemetry failure: the first with its traceback at WARNING, later ones at DEBUG."""
    global _failures
    _failures += 1
    if _failures == 1:
        logger.warning(
            "OpenTelemetry failed to %s; agentlease continues without it", action, exc_info=True
        )
    else:
        logger.debug("OpenTelemetry failed to %s (failure %d)", action, _failures, exc_info=True)
