"""ModelClient against a real local model server: routing, grants, fallback, audit, spans."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

import agentlease
from agentlease.audit import AuditLog, AuditRecord, MemoryAuditSink
from agentlease.errors import (
    ConfigurationError,
    NoPermittedRouteError,
    ProviderResponseError,
    ProviderUnavailable,
    StreamInterrupted,
    UnknownRouteError,
)
from agentlease.messages import ChatRequest, Message, ToolSpec
from agentlease.testing import ModelServer, Reply

HELLO = ChatRequest(messages=[Message(role="user", content="Say hello")])


def served_prefixes(server: ModelServer) -> list[str]:
    return [r.path.split("/v1", 1)[0] for r in server.requests]


def records_of(records: list[AuditRecord], action: str) -> list[AuditRecord]:
    return [r for r in records if r.action == action]


def test_internal_task_takes_preferred_route(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    with agentlease.task("plain"):
        response = agentlease.ModelClient("default").chat(HELLO)
    assert response.route == "fast"
    assert served_prefixes(model_server) == ["/fast"]


def test_confidential_task_skips_uncleared_route(
    runtime: agentlease.Runtime,
    model_server: ModelServer,
    audit_records: Callable[[], list[AuditRecord]],
) -> None:
    with agentlease.task("secret", data_class="confidential"):
        response = agentlease.ModelClient("default").chat(HELLO)
    assert response.route == "secure"
    assert served_prefixes(model_server) == ["/secure"]
    denied = records_of(audit_records(), "policy.decision")
    assert [r.resource for r in denied] == ["route:fast"]
    assert denied[0].decision is not None
    assert "data-class-clearance" in denied[0].decision.policy_ids


def test_raised_data_class_changes_route(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    client = agentlease.ModelClient("default")
    with agentlease.task("escalates") as opened:
        first = client.chat(HELLO)
        opened.raise_data_class("confidential", source="tool:crm")
        second = client.chat(HELLO)
    assert (first.route, second.route) == ("fast", "secure")


def test_no_permitted_route_names_model_and_fix(
    runtime: agentlease.Runtime,
    model_server: ModelServer,
    audit_records: Callable[[], list[AuditRecord]],
) -> None:
    with (
        pytest.raises(NoPermittedRouteError, match="'default'") as caught,
        agentlease.task("restricted", data_class="restricted"),
    ):
        agentlease.ModelClient("default").chat(HELLO)
    assert caught.value.candidates == ("fast", "secure")
    assert "route cleared" in str(caught.value)
    assert model_server.requests == []
    denied = [r for r in records_of(audit_records(), "model.call") if r.outcome == "denied"]
    assert len(denied) == 1


def test_unknown_model_is_audited(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with pytest.raises(UnknownRouteError, match="gpt-5"), agentlease.task("unknown"):
        agentlease.ModelClient("gpt-5").chat(HELLO)
    errors = [r for r in records_of(audit_records(), "model.call") if r.outcome == "error"]
    assert errors[0].resource == "model:gpt-5"


def test_grant_is_sent_as_bearer_token(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    with agentlease.task("bearer") as opened:
        agentlease.ModelClient("fast").chat(HELLO)
        grant = opened.grants[0]
        claims = runtime.broker.verifier().verify(grant.token, audience="route:fast")
    header = model_server.requests[0].headers["authorization"]
    assert header == f"Bearer {grant.token}"
    assert claims.task_id == opened.id
    assert claims.scope == "invoke_model"


def test_warm_calls_reuse_one_grant(runtime: agentlease.Runtime) -> None:
    client = agentlease.ModelClient("fast")
    with agentlease.task("warm") as opened:
        for _ in range(3):
            client.chat(HELLO)
        assert len(opened.grants) == 1


def test_retriable_failure_falls_back_to_next_permitted_route(
    runtime: agentlease.Runtime,
    model_server: ModelServer,
    audit_records: Callable[[], list[AuditRecord]],
) -> None:
    model_server.script(Reply.error(503, "overloaded"), prefix="/fast")
    with agentlease.task("fallback"):
        response = agentlease.ModelClient("default").chat(HELLO)
    assert response.route == "secure"
    hops = records_of(audit_records(), "route.fallback")
    assert hops[0].attributes["from"] == "fast"
    assert hops[0].attributes["to"] == "secure"


def test_fallback_never_leaves_policy(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    model_server.script(Reply.error(503, "overloaded"), prefix="/secure")
    with (
        pytest.raises(ProviderResponseError) as caught,
        agentlease.task("confidential", data_class="confidential"),
    ):
        agentlease.ModelClient("default").chat(HELLO)
    assert caught.value.route == "secure"
    assert served_prefixes(model_server) == ["/secure"]


def test_client_error_does_not_fall_back(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    model_server.script(Reply.error(400, "bad request"), prefix="/fast")
    with pytest.raises(ProviderResponseError) as caught, agentlease.task("bad"):
        agentlease.ModelClient("default").chat(HELLO)
    assert caught.value.retriable is False
    assert served_prefixes(model_server) == ["/fast"]


def test_unreachable_provider_names_route(tmp_path: Path, unreachable_url: str) -> None:
    route = agentlease.Route(name="down", base_url=unreachable_url, model="m", groups=("g",))
    sink = MemoryAuditSink()
    runtime = agentlease.Runtime(routes=[route], audit=AuditLog(sink))
    try:
        with (
            pytest.raises(ProviderUnavailable, match="down"),
            agentlease.task("x", runtime=runtime),
        ):
            agentlease.ModelClient("g").chat(HELLO)
    finally:
        runtime.close()
    failed = [r for r in sink.records if r.action == "model.call"]
    assert failed[0].outcome == "error"
    assert failed[0].error is not None
    assert failed[0].error.type == "agentlease.errors.ProviderUnavailable"


def test_stream_yields_chunks_and_audits_usage(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with agentlease.task("stream"):
        chunks = list(agentlease.ModelClient("fast").stream(HELLO))
    assert "".join(c.content for c in chunks)
    calls = records_of(audit_records(), "model.call")
    assert calls[0].usage is not None
    assert calls[0].usage.output_tokens > 0
    assert calls[0].attributes["stream"] is True


def test_stream_failure_before_output_falls_back(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    model_server.script(Reply.error(502, "bad gateway"), prefix="/fast")
    with agentlease.task("stream-fallback"):
        chunks = list(agentlease.ModelClient("default").stream(HELLO))
    assert {c.route for c in chunks if c.route} == {"secure"}


def test_stream_cut_after_output_raises(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    model_server.script(Reply.cut_stream(after_chunks=2), prefix="/fast")
    received: list[str] = []
    with pytest.raises(StreamInterrupted), agentlease.task("cut"):
        for chunk in agentlease.ModelClient("default").stream(HELLO):
            received.append(chunk.content)
    assert "".join(received)
    assert served_prefixes(model_server) == ["/fast"]


async def test_async_calls_route_and_stream(runtime: agentlease.Runtime) -> None:
    client = agentlease.ModelClient("default")
    async with agentlease.task("async", data_class="confidential"):
        response = await client.achat(HELLO)
        chunks = [c async for c in client.astream(HELLO)]
    assert response.route == "secure"
    assert "".join(c.content for c in chunks)


def test_call_without_task_runs_in_implicit_task(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    agentlease.ModelClient("fast").chat(HELLO)
    records = audit_records()
    start = records_of(records, "task.start")[0]
    assert start.attributes["implicit"] is True
    revoke = records_of(records, "grant.revoke")
    assert revoke[0].session_id == start.session_id
    assert records[-1].action == "task.end"


def test_tools_are_sent_and_tool_calls_returned(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    model_server.script(Reply.tool_call("lookup", {"city": "Paris"}), prefix="/fast")
    request = ChatRequest(
        messages=[Message(role="user", content="Weather in Paris?")],
        tools=[ToolSpec(name="lookup", parameters={"type": "object", "properties": {}})],
    )
    with agentlease.task("tools"):
        response = agentlease.ModelClient("default").chat(request)
    assert response.message.tool_calls[0].name == "lookup"
    assert response.message.tool_calls[0].arguments == {"city": "Paris"}
    assert model_server.requests[0].json["tools"][0]["function"]["name"] == "lookup"


def test_api_key_route_reads_variable_at_request_time(
    model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_server.reset()
    route = agentlease.Route(
        name="vendor",
        base_url=model_server.url,
        model="vendor-model",
        credential="api_key",
        api_key_env="AGENTLEASE_TEST_VENDOR_KEY",
    )
    sink = MemoryAuditSink()
    runtime = agentlease.Runtime(routes=[route], audit=AuditLog(sink))
    client = agentlease.ModelClient("vendor", runtime=runtime)
    try:
        monkeypatch.delenv("AGENTLEASE_TEST_VENDOR_KEY", raising=False)
        with pytest.raises(ConfigurationError, match="AGENTLEASE_TEST_VENDOR_KEY"):
            client.chat(HELLO)
        monkeypatch.setenv("AGENTLEASE_TEST_VENDOR_KEY", "canary-key-1")
        client.chat(HELLO)
        monkeypatch.setenv("AGENTLEASE_TEST_VENDOR_KEY", "canary-key-2")
        client.chat(HELLO)
    finally:
        runtime.close()
    headers = [r.headers["authorization"] for r in model_server.requests]
    assert headers == ["Bearer canary-key-1", "Bearer canary-key-2"]
    calls = [r for r in sink.records if r.action == "model.call" and r.outcome == "ok"]
    assert calls[0].credential is not None
    assert calls[0].credential.mode == "api_key"
    assert calls[0].attributes["exception_path"] == "static_api_key"
    assert all("canary-key" not in r.model_dump_json() for r in sink.records)


def test_chat_span_is_child_of_task_span(
    runtime: agentlease.Runtime, spans: Callable[[], list[ReadableSpan]]
) -> None:
    with agentlease.task("spans"):
        agentlease.ModelClient("fast").chat(HELLO)
    by_name = {s.name: s for s in spans()}
    chat = by_name["chat fast-model"]
    agent = by_name["invoke_agent spans"]
    assert chat.parent is not None
    assert agent.context is not None
    assert chat.parent.span_id == agent.context.span_id
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.provider.name"] == "openai"
    assert chat.attributes["gen_ai.request.model"] == "fast-model"
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    assert chat.attributes["agentlease.route"] == "fast"


def test_task_jurisdiction_selects_matching_route(
    runtime: agentlease.Runtime,
    model_server: ModelServer,
    audit_records: Callable[[], list[AuditRecord]],
) -> None:
    with agentlease.task("gdpr", jurisdiction="eu"):
        response = agentlease.ModelClient("default").chat(HELLO)
    assert response.route == "secure"
    denied = records_of(audit_records(), "policy.decision")
    assert denied[0].decision is not None
    assert denied[0].decision.policy_ids == ("jurisdiction-match",)
