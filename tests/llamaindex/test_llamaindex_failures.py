"""Bad input through SecureLLM: each failure raises agentlease's error and is audited."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from llama_index.core.base.llms.types import ChatMessage

import agentlease
from agentlease.audit import AuditLog, AuditRecord, MemoryAuditSink
from agentlease.errors import NoPermittedRouteError, ProviderUnavailable, UnknownRouteError
from agentlease_llamaindex import SecureLLM

HELLO = [ChatMessage(role="user", content="hello")]


def test_unreachable_provider_raises_and_is_audited(unreachable_url: str) -> None:
    route = agentlease.Route(name="down", base_url=unreachable_url, model="m", groups=("g",))
    sink = MemoryAuditSink()
    runtime = agentlease.Runtime(routes=[route], audit=AuditLog(sink))
    try:
        with pytest.raises(ProviderUnavailable, match="down"):
            SecureLLM(model="g", runtime=runtime).chat(HELLO)
    finally:
        runtime.close()
    [call] = [r for r in sink.records if r.action == "model.call"]
    assert call.outcome == "error"
    assert call.resource == "route:down"


def test_no_permitted_route_is_audited(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with (
        agentlease.task("vault", data_class="restricted"),
        pytest.raises(NoPermittedRouteError, match="route cleared"),
    ):
        SecureLLM(model="default").chat(HELLO)
    denied = [r for r in audit_records() if r.action == "model.call" and r.outcome == "denied"]
    assert len(denied) == 1


def test_unknown_model_names_known_routes(runtime: agentlease.Runtime) -> None:
    with pytest.raises(UnknownRouteError, match="fast"):
        SecureLLM(model="gpt-unknown").chat(HELLO)
