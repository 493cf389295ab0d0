"""Runtime.verify_grant: services verify incoming grants, and every rejection is audited."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import agentlease
from agentlease.audit import AuditRecord
from agentlease.errors import GrantExpired, GrantInvalid, GrantRevoked
from agentlease.grants import LocalBroker


def rejections(records: list[AuditRecord]) -> list[AuditRecord]:
    return [r for r in records if r.action == "grant.verify"]


def test_valid_grant_verifies_without_audit_noise(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with agentlease.task("ok") as opened:
        grant = opened.grant("tool:crm", "call_tool")
        claims = runtime.verify_grant(grant.token, audience="tool:crm")
    assert claims.task_id == opened.id
    assert rejections(audit_records()) == []


def test_revoked_grant_is_rejected_and_audited(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with agentlease.task("ended") as opened:
        grant = opened.grant("tool:crm", "call_tool")
    with pytest.raises(GrantRevoked):
        runtime.verify_grant(grant.token, audience="tool:crm")
    [record] = rejections(audit_records())
    assert record.session_id == opened.id
    assert record.outcome == "denied"
    assert record.attributes["claimed_jti"] == grant.jti
    assert grant.token not in record.model_dump_json()


def test_forged_grant_is_rejected_and_audited(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    forger = LocalBroker(issuer="urn:agentlease:local")
    forged = forger.mint(
        subject="spiffe://evil/agent",
        audience="tool:crm",
        scope="call_tool",
        task_id="forged-task",
        data_class="internal",
        lifetime=60,
    )
    with pytest.raises(GrantInvalid):
        runtime.verify_grant(forged.token, audience="tool:crm")
    [record] = rejections(audit_records())
    assert record.session_id == "forged-task"
    assert record.actor == "spiffe://evil/agent"


def test_grant_for_other_audience_is_rejected(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with agentlease.task("aud") as opened:
        grant = opened.grant("tool:crm", "call_tool")
        with pytest.raises(GrantInvalid, match="audience"):
            runtime.verify_grant(grant.token, audience="tool:billing")
    assert rejections(audit_records())[0].attributes["reason"] == "wrong_audience"


def test_expired_grant_is_rejected_and_audited(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    now = [1_000_000.0]
    broker = LocalBroker(clock=lambda: now[0])
    service = agentlease.Runtime(broker=broker, audit=runtime.audit)
    grant = broker.mint(
        subject="spiffe://agentlease.local/dev/a",
        audience="tool:crm",
        scope="call_tool",
        task_id="t-1",
        data_class="internal",
        lifetime=60,
    )
    now[0] += 3600
    with pytest.raises(GrantExpired):
        service.verify_grant(grant.token, audience="tool:crm")
    [record] = rejections(audit_records())
    assert record.session_id == "t-1"
    assert record.attributes["reason"] == "expired"


def test_malformed_token_is_rejected_and_audited(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with pytest.raises(GrantInvalid):
        runtime.verify_grant("not-a-jwt", audience="tool:crm")
    [record] = rejections(audit_records())
    assert record.session_id == "unknown"
