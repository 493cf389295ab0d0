"""ToolGuard: policy check, per-call grant, data-class labels, audit and spans."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import ReadableSpan

import agentlease
from agentlease.audit import AuditRecord
from agentlease.errors import PolicyDenied, TaskError


def test_tool_sees_its_own_grant(runtime: agentlease.Runtime) -> None:
    guard = agentlease.ToolGuard("crm")
    seen: list[agentlease.Grant] = []

    def lookup(customer: str) -> str:
        seen.append(agentlease.current_grant())
        return f"record of {customer}"

    with agentlease.task("tools") as opened:
        result = guard.call(lambda: lookup("C-1"), call_id="call_1", arguments={"customer": "C-1"})
        assert result == "record of C-1"
    assert seen[0].audience == "tool:crm"
    assert seen[0].task_id == opened.id


def test_grant_verifies_at_downstream_service(runtime: agentlease.Runtime) -> None:
    verifier = runtime.broker.verifier()
    guard = agentlease.ToolGuard("billing")

    def charge() -> str:
        claims = verifier.verify(agentlease.current_grant().token, audience="tool:billing")
        return claims.scope

    with agentlease.task("verify"):
        assert guard.call(charge) == "call_tool"


def test_current_grant_outside_tool_raises() -> None:
    with pytest.raises(TaskError, match="No guarded tool call"):
        agentlease.current_grant()


def test_high_risk_tool_denied_for_unverified_identity(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    guard = agentlease.ToolGuard("delete_customer", risk="high")
    ran: list[bool] = []
    with pytest.raises(PolicyDenied, match="delete_customer") as caught, agentlease.task("deny"):
        guard.call(lambda: ran.append(True), call_id="call_9")
    assert ran == []
    assert caught.value.policy_ids
    denied = [r for r in audit_records() if r.action == "tool.call"]
    assert denied[0].outcome == "denied"
    assert denied[0].attributes["call_id"] == "call_9"


def test_tool_clearance_blocks_sensitive_task(runtime: agentlease.Runtime) -> None:
    guard = agentlease.ToolGuard("web_search", clearance="internal")
    with pytest.raises(PolicyDenied), agentlease.task("secret", data_class="confidential"):
        guard.call(lambda: "results")


def test_labelled_tool_raises_task_data_class(runtime: agentlease.Runtime) -> None:
    guard = agentlease.ToolGuard("crm", data_class="confidential")
    with agentlease.task("label") as opened:
        guard.call(lambda: "record")
        assert opened.data_class == "confidential"


def test_tool_error_is_audited_and_reraised(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    def broken() -> None:
        raise ValueError("downstream said no")

    with pytest.raises(ValueError, match="downstream"), agentlease.task("error"):
        agentlease.ToolGuard("flaky").call(broken)
    failed = [r for r in audit_records() if r.action == "tool.call"]
    assert failed[0].outcome == "error"
    assert failed[0].error is not None
    assert failed[0].error.type == "ValueError"


def test_tool_call_with_clashing_parameter_names(runtime: agentlease.Runtime) -> None:
    def search(call_id: str, arguments: str) -> str:
        return f"{call_id}:{arguments}"

    with agentlease.task("clash"):
        result = agentlease.ToolGuard("search").call(
            lambda: search(call_id="a", arguments="b"), call_id="call_1"
        )
    assert result == "a:b"


def test_tool_call_records_hashes_not_values(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with agentlease.task("hashes"):
        agentlease.ToolGuard("crm").call(lambda: "Ada", arguments={"customer": "C-77"})
    record = next(r for r in audit_records() if r.action == "tool.call")
    assert record.args_hash
    assert record.result_hash
    assert "C-77" not in record.model_dump_json()
    assert "Ada" not in record.model_dump_json()


async def test_async_tool_call(runtime: agentlease.Runtime) -> None:
    async def fetch(n: int) -> int:
        return agentlease.current_grant().expires_at + n

    async with agentlease.task("async") as opened:
        result = await agentlease.ToolGuard("fetch").acall(lambda: fetch(1))
    assert result == opened.grants[0].expires_at + 1


def test_tool_span_is_child_of_task_span(
    runtime: agentlease.Runtime, spans: Callable[[], list[ReadableSpan]]
) -> None:
    with agentlease.task("spans"):
        agentlease.ToolGuard("crm").call(lambda: "ok", call_id="call_3")
    by_name = {s.name: s for s in spans()}
    tool = by_name["execute_tool crm"]
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.call.id"] == "call_3"
    assert tool.parent is not None


def test_tool_without_task_runs_in_implicit_task(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    agentlease.ToolGuard("crm").call(lambda: "ok")
    records = audit_records()
    assert [r.action for r in records] == [
        "task.start",
        "grant.mint",
        "tool.call",
        "grant.revoke",
        "task.end",
    ]
