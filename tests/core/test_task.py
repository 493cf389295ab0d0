"""Tasks: context inheritance, grants and their revocation, sub-tasks, audit sessions."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import ReadableSpan

import agentlease
from agentlease.audit import AuditRecord
from agentlease.errors import ConfigurationError, GrantRevoked, TaskError


def actions(records: list[AuditRecord], session_id: str) -> list[str]:
    return [r.action for r in records if r.session_id == session_id]


def test_task_is_current_inside_block(runtime: agentlease.Runtime) -> None:
    assert agentlease.current_task() is None
    with agentlease.task("outer") as opened:
        assert agentlease.current_task() is opened
    assert agentlease.current_task() is None


def test_grants_revoked_when_task_ends(runtime: agentlease.Runtime) -> None:
    verifier = runtime.broker.verifier()
    with agentlease.task("revoke") as opened:
        grant = opened.grant("tool:search", "call_tool")
        claims = verifier.verify(grant.token, audience="tool:search")
        assert claims.task_id == opened.id
    with pytest.raises(GrantRevoked):
        verifier.verify(grant.token, audience="tool:search")
    assert opened.revoked == [grant]


def test_grants_revoked_when_task_raises(runtime: agentlease.Runtime) -> None:
    verifier = runtime.broker.verifier()
    with pytest.raises(RuntimeError), agentlease.task("fails") as opened:
        grant = opened.grant("tool:search", "call_tool")
        raise RuntimeError("boom")
    with pytest.raises(GrantRevoked):
        verifier.verify(grant.token, audience="tool:search")


async def test_grants_revoked_when_task_cancelled(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    verifier = runtime.broker.verifier()
    started = asyncio.Event()
    holder: dict[str, agentlease.Task] = {}

    async def work() -> None:
        async with agentlease.task("cancelled") as opened:
            holder["task"] = opened
            opened.grant("tool:search", "call_tool")
            started.set()
            await asyncio.sleep(3600)

    running = asyncio.create_task(work())
    await started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    opened = holder["task"]
    with pytest.raises(GrantRevoked):
        verifier.verify(opened.grants[0].token, audience="tool:search")
    end = [r for r in audit_records() if r.action == "task.end" and r.session_id == opened.id]
    assert end[0].outcome == "cancelled"


def test_grant_cached_per_audience_and_scope(runtime: agentlease.Runtime) -> None:
    with agentlease.task("cache") as opened:
        first = opened.grant("tool:a", "call_tool")
        assert opened.grant("tool:a", "call_tool") is first
        assert opened.grant("tool:b", "call_tool").jti != first.jti
        assert opened.grant("tool:a", "read").jti != first.jti
        assert len(opened.grants) == 3


def test_grant_after_end_raises(runtime: agentlease.Runtime) -> None:
    with agentlease.task("ended") as opened:
        pass
    with pytest.raises(TaskError, match="has ended"):
        opened.grant("tool:a", "call_tool")


async def test_asyncio_tasks_inherit_task(runtime: agentlease.Runtime) -> None:
    async def inner() -> agentlease.Task | None:
        await asyncio.sleep(0)
        return agentlease.current_task()

    async with agentlease.task("parent") as opened:
        seen = await asyncio.gather(inner(), inner())
    assert seen == [opened, opened]


def test_threads_with_copied_context_inherit_task(runtime: agentlease.Runtime) -> None:
    seen: list[agentlease.Task | None] = []
    with agentlease.task("threads") as opened:
        context = contextvars.copy_context()
        thread = threading.Thread(target=lambda: seen.append(context.run(agentlease.current_task)))
        thread.start()
        thread.join()
    assert seen == [opened]


def test_subtask_inherits_and_narrows(runtime: agentlease.Runtime) -> None:
    with (
        agentlease.task("parent", data_class="confidential", jurisdiction="eu") as parent,
        agentlease.task("child", data_class="public") as child,
    ):
        assert child.parent is parent
        assert child.data_class == "confidential"
        assert child.jurisdiction == "eu"
        assert child.depth == 1


def test_subtask_cannot_widen_jurisdiction(runtime: agentlease.Runtime) -> None:
    with (
        agentlease.task("parent", jurisdiction="eu"),
        pytest.raises(ConfigurationError, match="jurisdiction"),
        agentlease.task("child", jurisdiction="us"),
    ):
        pass


def test_subtask_grant_carries_actor_chain(runtime: agentlease.Runtime) -> None:
    verifier = runtime.broker.verifier()
    with (
        agentlease.task("parent", on_behalf_of="user:alice") as parent,
        agentlease.task("child") as child,
    ):
        grant = child.grant("tool:search", "call_tool")
        claims = verifier.verify(grant.token, audience="tool:search")
    assert claims.subject == "user:alice"
    assert claims.act is not None
    assert claims.act["task_id"] == child.id
    assert claims.act["act"]["task_id"] == parent.id
    assert claims.client_id == child.identity.id


def test_raise_data_class_reaches_parent_and_is_audited(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with agentlease.task("parent") as parent, agentlease.task("child") as child:
        assert child.raise_data_class("confidential", source="tool:crm") is True
        assert child.raise_data_class("internal") is False
    assert parent.data_class == "confidential"
    raised = [r for r in audit_records() if r.action == "task.data_class_raised"]
    assert {r.session_id for r in raised} == {parent.id, child.id}
    assert raised[0].resource == "tool:crm"


def test_unknown_data_class_is_rejected(runtime: agentlease.Runtime) -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        agentlease.task("bad", data_class="secret").__enter__()


def test_task_audit_session_opens_and_closes(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with agentlease.task("audited") as parent:
        parent.grant("tool:a", "call_tool")
        with agentlease.task("sub") as child:
            pass
    records = audit_records()
    assert actions(records, parent.id) == ["task.start", "grant.mint", "grant.revoke", "task.end"]
    assert actions(records, child.id) == ["task.start", "task.end"]
    assert all(r.parent_session_id == parent.id for r in records if r.session_id == child.id)


def test_task_is_one_trace(
    runtime: agentlease.Runtime, spans: Callable[[], list[ReadableSpan]]
) -> None:
    with agentlease.task("traced"), agentlease.task("sub"):
        pass
    finished = spans()
    names = sorted(s.name for s in finished)
    assert names == ["invoke_agent sub", "invoke_agent traced"]
    assert len({s.context.trace_id for s in finished if s.context is not None}) == 1


def test_task_repr_shows_no_token(runtime: agentlease.Runtime) -> None:
    with agentlease.task("repr") as opened:
        grant = opened.grant("tool:a", "call_tool")
        assert grant.token not in repr(opened)
        assert grant.token not in repr(grant)
        assert grant.token not in opened._repr_html_()


class CountingSink:
    """A sink that records which thread each flush ran on."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []
        self.flush_threads: list[int] = []

    def write(self, record: AuditRecord) -> None:
        self.records.append(record)

    def flush(self) -> None:
        self.flush_threads.append(threading.get_ident())

    def close(self) -> None:
        pass


def test_sync_task_flushes_audit_log_on_exit() -> None:
    sink = CountingSink()
    runtime = agentlease.Runtime(audit=agentlease.audit.AuditLog(sink))
    with agentlease.task("flushed", runtime=runtime), agentlease.task("sub"):
        pass
    assert sink.flush_threads == [threading.get_ident()]


async def test_async_task_flushes_audit_log_off_event_loop() -> None:
    sink = CountingSink()
    runtime = agentlease.Runtime(audit=agentlease.audit.AuditLog(sink))
    async with agentlease.task("flushed", runtime=runtime):
        pass
    assert len(sink.flush_threads) == 1
    assert sink.flush_threads[0] != threading.get_ident()
    assert sink.records[-1].action == "task.end"
