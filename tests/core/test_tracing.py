"""Tracing helpers against the real OpenTelemetry SDK, on a provider each test owns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from agentlease.audit import AuditLog, MemoryAuditSink, semconv
from agentlease.audit.tracing import (
    add_event,
    chat_span,
    end_span,
    execute_tool_span,
    get_tracer,
    invoke_agent_span,
    set_credential,
    set_policy_decision,
    set_response,
    set_route,
    span_ids,
    start_chat_span,
    start_execute_tool_span,
    start_invoke_agent_span,
)

SECRET = "prompt: the merger closes on friday"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield get_tracer(provider)
    provider.shutdown()


def finished(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def context_of(span: ReadableSpan) -> trace.SpanContext:
    assert span.context is not None
    return span.context


def everything_recorded(span: ReadableSpan) -> str:
    """Return every attribute, event and status text of a span, for leak checks."""
    parts: list[Any] = [span.name, dict(span.attributes or {}), span.status.description]
    parts += [(event.name, dict(event.attributes or {})) for event in span.events]
    return repr(parts)


class BrokenTracer:
    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        raise RuntimeError("exporter misconfigured")


class BrokenSpan(trace.NonRecordingSpan):
    def __init__(self) -> None:
        super().__init__(trace.INVALID_SPAN_CONTEXT)

    def set_attribute(self, key: str, value: Any) -> None:
        raise RuntimeError("broken")

    def set_attributes(self, attributes: Any) -> None:
        raise RuntimeError("broken")

    def add_event(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("broken")

    def end(self, end_time: int | None = None) -> None:
        raise RuntimeError("broken")


def test_get_tracer_scope_name(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with invoke_agent_span("report", task_id="t1", tracer=tracer):
        pass

    (span,) = exporter.get_finished_spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "agentlease"


def test_invoke_agent_span_attributes(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with invoke_agent_span(
        "report", task_id="t1", data_class="internal", parent_task_id="t0", tracer=tracer
    ):
        pass

    span = finished(exporter)["invoke_agent report"]
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "report",
        "gen_ai.conversation.id": "t1",
        "agentlease.task.id": "t1",
        "agentlease.task.parent_id": "t0",
        "agentlease.data_class": "internal",
    }


def test_chat_span_attributes(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with chat_span(
        "small-model",
        task_id="t1",
        provider="openai",
        route="fast",
        base_url="http://127.0.0.1:8123/v1",
        data_class="internal",
        credential_mode="grant",
        grant_jti="jti-1",
        max_tokens=64,
        tracer=tracer,
    ):
        pass

    span = finished(exporter)["chat small-model"]
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "small-model",
        "gen_ai.provider.name": "openai",
        "gen_ai.conversation.id": "t1",
        "gen_ai.request.max_tokens": 64,
        "agentlease.task.id": "t1",
        "agentlease.route": "fast",
        "agentlease.data_class": "internal",
        "agentlease.credential.mode": "grant",
        "agentlease.grant.jti": "jti-1",
        "server.address": "127.0.0.1",
        "server.port": 8123,
    }


def test_chat_span_default_https_port(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with chat_span("m", base_url="https://127.0.0.1/v1", tracer=tracer):
        pass

    attributes = dict(finished(exporter)["chat m"].attributes or {})
    assert attributes["server.port"] == 443


def test_execute_tool_span_attributes(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with execute_tool_span(
        "get_weather", task_id="t1", call_id="call-1", risk="low", grant_jti="j", tracer=tracer
    ):
        pass

    span = finished(exporter)["execute_tool get_weather"]
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": "call-1",
        "gen_ai.conversation.id": "t1",
        "agentlease.task.id": "t1",
        "agentlease.tool.risk": "low",
        "agentlease.credential.mode": "grant",
        "agentlease.grant.jti": "j",
    }


def test_context_managers_nest_spans(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with (
        invoke_agent_span("report", task_id="t1", tracer=tracer),
        chat_span("m", tracer=tracer),
    ):
        pass

    spans = finished(exporter)
    agent, chat = spans["invoke_agent report"], spans["chat m"]
    assert chat.parent is not None
    assert chat.parent.span_id == context_of(agent).span_id
    assert context_of(chat).trace_id == context_of(agent).trace_id


def test_context_manager_restores_current_span(tracer: Tracer) -> None:
    before = trace.get_current_span()

    with chat_span("m", tracer=tracer) as span:
        assert trace.get_current_span() is span

    assert trace.get_current_span() is before


def test_start_span_takes_parent_span(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    agent = start_invoke_agent_span("report", task_id="t1", tracer=tracer)

    tool = start_execute_tool_span("lookup", parent=agent, tracer=tracer)
    end_span(tool)
    end_span(agent)

    spans = finished(exporter)
    parent = spans["execute_tool lookup"].parent
    assert parent is not None
    assert parent.span_id == context_of(spans["invoke_agent report"]).span_id


def test_start_span_is_not_current(tracer: Tracer) -> None:
    span = start_chat_span("m", tracer=tracer)

    assert trace.get_current_span() is not span
    end_span(span)


def test_empty_context_starts_new_trace(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with invoke_agent_span("outer", task_id="t1", tracer=tracer):
        inner = start_invoke_agent_span("inner", task_id="t2", parent=Context(), tracer=tracer)
        end_span(inner)

    spans = finished(exporter)
    assert spans["invoke_agent inner"].parent is None
    inner, outer = spans["invoke_agent inner"], spans["invoke_agent outer"]
    assert context_of(inner).trace_id != context_of(outer).trace_id


def test_error_is_recorded_by_type(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with pytest.raises(TimeoutError), chat_span("m", tracer=tracer):
        raise TimeoutError(SECRET)

    span = finished(exporter)["chat m"]
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "TimeoutError"


def test_error_message_never_reaches_span(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="merger"), execute_tool_span("t", tracer=tracer):
        raise ValueError(SECRET)

    span = finished(exporter)["execute_tool t"]
    assert "merger" not in everything_recorded(span)
    assert span.events == ()


def test_end_span_qualifies_error_type(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    class QuotaExceeded(Exception):
        pass

    span = start_chat_span("m", tracer=tracer)
    end_span(span, error=QuotaExceeded())

    error_type = dict(finished(exporter)["chat m"].attributes or {})["error.type"]
    assert error_type == f"{__name__}.test_end_span_qualifies_error_type.<locals>.QuotaExceeded"


def test_set_policy_decision_records_event(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with execute_tool_span("t", tracer=tracer) as span:
        set_policy_decision(span, allowed=False, policy_ids=["p1", "p2"], reason="unverified")

    recorded = finished(exporter)["execute_tool t"]
    attributes = dict(recorded.attributes or {})
    assert attributes["agentlease.policy.decision"] == "deny"
    assert attributes["agentlease.policy.ids"] == ("p1", "p2")
    assert attributes["agentlease.policy.reason"] == "unverified"
    assert [event.name for event in recorded.events] == ["agentlease.policy.decision"]


def test_set_response_records_usage(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with chat_span("m", tracer=tracer) as span:
        set_response(span, model="m-2026", input_tokens=5, output_tokens=7, finish_reasons=["stop"])

    attributes = dict(finished(exporter)["chat m"].attributes or {})
    assert attributes["gen_ai.response.model"] == "m-2026"
    assert attributes["gen_ai.usage.input_tokens"] == 5
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)


def test_set_route_and_credential(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with chat_span("m", tracer=tracer) as span:
        set_route(span, route="backup", provider="vllm", base_url="http://127.0.0.1:9000/v1")
        set_credential(span, mode="api_key")

    attributes = dict(finished(exporter)["chat m"].attributes or {})
    assert attributes["agentlease.route"] == "backup"
    assert attributes["gen_ai.provider.name"] == "vllm"
    assert attributes["server.port"] == 9000
    assert attributes["agentlease.credential.mode"] == "api_key"
    assert "agentlease.grant.jti" not in attributes


def test_add_event_drops_none_values(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with invoke_agent_span("a", task_id="t", tracer=tracer) as span:
        add_event(
            span,
            semconv.EVENT_GRANT_MINT,
            {semconv.AGENTLEASE_GRANT_JTI: "j1", semconv.AGENTLEASE_GRANT_AUDIENCE: None},
        )

    (event,) = finished(exporter)["invoke_agent a"].events
    assert event.name == "agentlease.grant.mint"
    assert dict(event.attributes or {}) == {"agentlease.grant.jti": "j1"}


def test_span_ids_are_hex(tracer: Tracer) -> None:
    span = start_chat_span("m", tracer=tracer)

    trace_id, span_id = span_ids(span)

    context = span.get_span_context()
    assert trace_id == format(context.trace_id, "032x")
    assert span_id == format(context.span_id, "016x")
    end_span(span)


def test_span_ids_of_invalid_span_are_none() -> None:
    assert span_ids(trace.INVALID_SPAN) == (None, None)
    assert span_ids(None) == (None, None)


def test_audit_append_records_current_span(tracer: Tracer) -> None:
    log = AuditLog(MemoryAuditSink())

    with chat_span("m", tracer=tracer) as span:
        record = log.append(session_id="t", action="model.call", actor="a")

    assert (record.trace_id, record.span_id) == span_ids(span)


def test_audit_append_none_ids_record_no_trace(tracer: Tracer) -> None:
    log = AuditLog(MemoryAuditSink())

    with chat_span("m", tracer=tracer):
        record = log.append(
            session_id="t", action="model.call", actor="a", trace_id=None, span_id=None
        )

    assert (record.trace_id, record.span_id) == (None, None)


def test_broken_tracer_yields_invalid_span(caplog: pytest.LogCaptureFixture) -> None:
    ran = False

    with chat_span("m", tracer=BrokenTracer()) as span:  # type: ignore[arg-type]
        ran = True

    assert ran
    assert span is trace.INVALID_SPAN
    assert "OpenTelemetry failed" in caplog.text


def test_broken_span_never_raises() -> None:
    span = BrokenSpan()

    set_policy_decision(span, allowed=True)
    set_response(span, input_tokens=1)
    add_event(span, semconv.EVENT_GRANT_REVOKE)
    end_span(span, error=ValueError("x"))


def test_default_tracer_works_without_provider() -> None:
    with chat_span("m") as span:
        span.set_attribute("x", 1)

    assert isinstance(span, trace.Span)
