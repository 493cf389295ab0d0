"""Bad input through SecureChatModel: each failure raises agentlease's error and is audited."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import agentlease
from agentlease.audit import AuditLog, AuditRecord, MemoryAuditSink
from agentlease.errors import ProviderUnavailable, UnknownRouteError
from agentlease.testing import ModelServer, Reply
from agentlease_langchain import SecureChatModel


def test_unreachable_provider_raises_and_is_audited(unreachable_url: str) -> None:
    route = agentlease.Route(name="down", base_url=unreachable_url, model="m", groups=("g",))
    sink = MemoryAuditSink()
    runtime = agentlease.Runtime(routes=[route], audit=AuditLog(sink))
    try:
        with pytest.raises(ProviderUnavailable, match="down"):
            SecureChatModel(model="g", runtime=runtime).invoke("hello")
    finally:
        runtime.close()
    [call] = [r for r in sink.records if r.action == "model.call"]
    assert call.outcome == "error"
    assert call.resource == "route:down"


def test_unknown_model_names_known_routes(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with pytest.raises(UnknownRouteError, match="fast"):
        SecureChatModel(model="gpt-unknown").invoke("hello")
    assert any(r.resource == "model:gpt-unknown" for r in audit_records())


def test_fallback_is_invisible_to_caller_but_audited(
    runtime: agentlease.Runtime,
    model_server: ModelServer,
    audit_records: Callable[[], list[AuditRecord]],
) -> None:
    model_server.script(Reply.error(503, "overloaded"), prefix="/fast")
    with agentlease.task("fallback"):
        message = SecureChatModel(model="default").invoke("hello")
    assert message.response_metadata["agentlease_route"] == "secure"
    assert [r.action for r in audit_records() if r.action == "route.fallback"] == ["route.fallback"]
