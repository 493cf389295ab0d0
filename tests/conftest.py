"""Shared fixtures: a real local model server, a runtime wired to it, captured audit and spans."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentlease
from agentlease.audit import AuditLog, AuditRecord, JsonlAuditSink, MemoryAuditSink
from agentlease.routing import Route
from agentlease.runtime import reset_runtime
from agentlease.testing import ModelServer


@pytest.fixture(scope="session")
def model_server() -> Iterator[ModelServer]:
    """One scripted OpenAI-compatible server on 127.0.0.1 for the whole session."""
    with ModelServer() as server:
        yield server


def make_routes(server: ModelServer) -> list[Route]:
    """Return the two routes tests use: `fast` (internal, us) and `secure` (confidential, eu)."""
    base = server.url.rsplit("/v1", 1)[0]
    return [
        Route(
            name="fast",
            base_url=f"{base}/fast/v1",
            model="fast-model",
            provider="openai",
            jurisdiction="us",
            clearance="internal",
            groups=("default",),
            priority=10,
        ),
        Route(
            name="secure",
            base_url=f"{base}/secure/v1",
            model="secure-model",
            provider="openai",
            jurisdiction="eu",
            clearance="confidential",
            groups=("default",),
            priority=20,
        ),
    ]


@pytest.fixture
def unreachable_url() -> str:
    """A base URL on 127.0.0.1 whose port nothing listens on, for connection failures."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def memory_sink() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def runtime(
    model_server: ModelServer,
    memory_sink: MemoryAuditSink,
    span_exporter: InMemorySpanExporter,
    audit_path: Path,
) -> Iterator[agentlease.Runtime]:
    """A runtime on the local server, set as the default runtime for the test."""
    model_server.reset()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    runtime = agentlease.Runtime(
        routes=make_routes(model_server),
        audit=AuditLog([memory_sink, JsonlAuditSink(audit_path)]),
        tracer_provider=provider,
    )
    agentlease.configure(runtime)
    try:
        yield runtime
    finally:
        reset_runtime()
        runtime.close()
        provider.shutdown()


@pytest.fixture
def audit_records(memory_sink: MemoryAuditSink) -> Callable[[], list[AuditRecord]]:
    return lambda: list(memory_sink.records)


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> Callable[[], list[ReadableSpan]]:
    return lambda: list(span_exporter.get_finished_spans())
