"""Scenarios that every framework adapter must pass, written once against abstract hooks.

Each adapter's test module subclasses `AdapterConformance` and implements its hooks with the
framework's own pieces: the adapter's chat model, its guarded tools and the framework's agent
loop. The scenarios then run real agents against the local `ModelServer` and check the
requests the server received, the agent's output and the audit records. An adapter may mark a
scenario ``xfail(strict=True, reason=...)`` by overriding the test method, with the reason.

The model server's replies are scripted, so every run is deterministic. The first model call
requests a tool, the tool runs (or the policy denies it), and the next model call returns text.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import agentlease
from agentlease.audit import AuditRecord, read_log, render_tree, verify_log
from agentlease.errors import GrantRevoked
from agentlease.grants import GrantClaims
from agentlease.task import Task
from agentlease.testing import ModelServer, Reply

__all__ = ["AdapterConformance", "AgentRun", "ToolResult"]

Records = Callable[[], list[AuditRecord]]

FAST = "/fast/v1/chat/completions"
SECURE = "/secure/v1/chat/completions"

LOOKUP_PROMPT = "Look up customer C-7."
LOOKUP_RESULT = "C-7: Ada Lovelace, account 42"
LOOKUP_REPLY = "Ada Lovelace holds account 42."

DELETE_PROMPT = "Delete the customers table."
DELETE_REPLY = "Deleting the customers table is not allowed."
HIGH_RISK_POLICY = "tool-high-risk-unverified"

STREAM_TEXT = "Routes follow the data class of the task."
STREAM_USAGE = (11, 8)

RESEARCH_REPLY = "Pricing is tiered by seat count."
PLANNER_REPLY = "The research is done."


@dataclass(frozen=True)
class ToolResult:
    """One tool result of an agent run, as the agent handed it back to the model.

    Attributes:
        name: The tool name.
        content: The text the model receives.
        is_error: Whether the framework marked the result as an error.
    """

    name: str
    content: str
    is_error: bool


@dataclass(frozen=True)
class AgentRun:
    """The outcome of one agent run, in terms common to every framework.

    Attributes:
        final_text: The text of the agent's final message.
        tool_results: The tool results, in the order the agent produced them.
    """

    final_text: str
    tool_results: list[ToolResult]


@dataclass
class SubAgentRun:
    """State recorded by a tool that runs a sub-agent: its task, reply and grant claims."""

    task: Task | None = None
    reply: str = ""
    claims: list[GrantClaims] | None = None


def request_paths(server: ModelServer) -> list[str]:
    """Return the paths of the requests the model server received, in order."""
    return [request.path for request in server.requests]


def sent_tool_messages(server: ModelServer) -> list[dict[str, Any]]:
    """Return the tool messages of the last request, as the model received them."""
    body = server.requests[-1].json
    assert isinstance(body, dict)
    messages: list[dict[str, Any]] = body["messages"]
    return [message for message in messages if message["role"] == "tool"]


def session_records(records: list[AuditRecord], session: Task) -> list[AuditRecord]:
    """Return the records of one task's audit session, in order."""
    return [record for record in records if record.session_id == session.id]


def script_lookup(server: ModelServer) -> None:
    """Script a call of `lookup_customer`, then a text reply."""
    server.script(
        Reply.tool_call("lookup_customer", {"customer_id": "C-7"}, id="call_lookup"),
        Reply.text(LOOKUP_REPLY),
    )


class AdapterConformance(abc.ABC):
    """The conformance scenarios. Each subclass implements the hooks for one framework."""

    # -- hooks -----------------------------------------------------------------------------

    @abc.abstractmethod
    def chat_model(self, runtime: agentlease.Runtime) -> Any:
        """Return the adapter's chat model for the `default` route group of `runtime`."""

    @abc.abstractmethod
    def guarded_tool(
        self, fn: Callable[..., Any], *, risk: str = "low", data_class: str | None = None
    ) -> Any:
        """Return the adapter's guarded tool built from a documented sync or async function."""

    @abc.abstractmethod
    def ask(self, model: Any, prompt: str) -> str:
        """Send one user message with the framework's sync chat call and return the reply text."""

    @abc.abstractmethod
    async def aask(self, model: Any, prompt: str) -> str:
        """Send one user message with the framework's async chat call and return the reply text."""

    @abc.abstractmethod
    def run_agent(self, model: Any, tools: list[Any], prompt: str) -> AgentRun:
        """Run the framework's agent loop to its end, called from synchronous code."""

    @abc.abstractmethod
    async def arun_agent(self, model: Any, tools: list[Any], prompt: str) -> AgentRun:
        """Run the framework's agent loop to its end with its async API."""

    @abc.abstractmethod
    def stream_reply(self, model: Any, prompt: str) -> list[str]:
        """Stream a reply with the framework's sync streaming call and return its text chunks."""

    @abc.abstractmethod
    async def astream_reply(self, model: Any, prompt: str) -> list[str]:
        """Stream a reply with the framework's async streaming call and return its text chunks."""

    # -- shared runs -----------------------------------------------------------------------

    def lookup_tool(self) -> Any:
        """Return a guarded `lookup_customer` tool whose results are confidential."""

        def lookup_customer(customer_id: str) -> str:
            """Return a customer's record."""
            return f"{customer_id}: Ada Lovelace, account 42"

        return self.guarded_tool(lookup_customer, data_class="confidential")

    def run_lookup(self, runtime: agentlease.Runtime, server: ModelServer) -> tuple[Task, AgentRun]:
        """Run an agent that calls `lookup_customer` once inside an internal task."""
        script_lookup(server)
        with agentlease.task("support", purpose="customer lookup") as opened:
            run = self.run_agent(self.chat_model(runtime), [self.lookup_tool()], LOOKUP_PROMPT)
        return opened, run

    def denied_tool(self, server: ModelServer, calls: list[str]) -> Any:
        """Return a high-risk tool, which the policy denies, and script the model to call it."""

        def delete_records(table: str) -> str:
            """Delete every record of a table."""
            calls.append(table)
            return f"deleted {table}"

        server.script(
            Reply.tool_call("delete_records", {"table": "customers"}, id="call_delete"),
            Reply.text(DELETE_REPLY),
        )
        return self.guarded_tool(delete_records, risk="high")

    def run_denied(
        self, runtime: agentlease.Runtime, server: ModelServer, calls: list[str]
    ) -> tuple[Task, AgentRun]:
        """Run an agent whose only tool is high-risk, so the policy denies its call."""
        tool = self.denied_tool(server, calls)
        with agentlease.task("cleanup") as opened:
            run = self.run_agent(self.chat_model(runtime), [tool], DELETE_PROMPT)
        return opened, run

    def run_subagent(
        self, runtime: agentlease.Runtime, server: ModelServer
    ) -> tuple[Task, SubAgentRun]:
        """Run an agent whose tool opens a sub-task and calls the chat model in it."""
        model = self.chat_model(runtime)
        verifier = runtime.broker.verifier()
        seen = SubAgentRun()

        def research(topic: str) -> str:
            """Research a topic with a sub-agent and return its findings."""
            with agentlease.task("research", purpose="sub-agent") as sub:
                reply = self.ask(model, f"Research {topic}.")
                # The grants are revoked when the sub-task ends, so verify them while it runs.
                seen.claims = [
                    verifier.verify(grant.token, audience=grant.audience) for grant in sub.grants
                ]
            seen.task = sub
            seen.reply = reply
            return reply

        server.script(
            Reply.tool_call("research", {"topic": "pricing"}, id="call_research"),
            Reply.text(RESEARCH_REPLY),
            Reply.text(PLANNER_REPLY),
        )
        with agentlease.task("planner") as opened:
            self.run_agent(model, [self.guarded_tool(research)], "Research pricing.")
        return opened, seen

    async def arun_subagent(
        self, runtime: agentlease.Runtime, server: ModelServer
    ) -> tuple[Task, SubAgentRun]:
        """Run `run_subagent`'s scenario with async tasks, an async tool and async calls."""
        model = self.chat_model(runtime)
        verifier = runtime.broker.verifier()
        seen = SubAgentRun()

        async def research(topic: str) -> str:
            """Research a topic with a sub-agent and return its findings."""
            async with agentlease.task("research", purpose="sub-agent") as sub:
                reply = await self.aask(model, f"Research {topic}.")
                seen.claims = [
                    verifier.verify(grant.token, audience=grant.audience) for grant in sub.grants
                ]
            seen.task = sub
            seen.reply = reply
            return reply

        server.script(
            Reply.tool_call("research", {"topic": "pricing"}, id="call_research"),
            Reply.text(RESEARCH_REPLY),
            Reply.text(PLANNER_REPLY),
        )
        async with agentlease.task("planner") as opened:
            await self.arun_agent(model, [self.guarded_tool(research)], "Research pricing.")
        return opened, seen

    # -- 1. routing by data class ----------------------------------------------------------

    def test_routing_confidential_task_uses_secure(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        with agentlease.task("review", data_class="confidential"):
            self.ask(self.chat_model(runtime), "Summarise the contract.")

        assert request_paths(model_server) == [SECURE]

    def test_routing_internal_task_uses_fast(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        with agentlease.task("review", data_class="internal"):
            self.ask(self.chat_model(runtime), "Summarise the release notes.")

        assert request_paths(model_server) == [FAST]

    def test_routing_follows_confidential_tool(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        opened, run = self.run_lookup(runtime, model_server)

        assert request_paths(model_server) == [FAST, SECURE]
        assert opened.data_class == "confidential"
        assert run.final_text == LOOKUP_REPLY

    # -- 2. a denied tool ------------------------------------------------------------------

    def test_denied_tool_returns_error_output(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        opened, run = self.run_denied(runtime, model_server, [])

        assert opened.identity.verified is False
        (result,) = run.tool_results
        assert result.name == "delete_records"
        assert result.is_error is True
        assert "denied" in result.content.lower()
        assert HIGH_RISK_POLICY in result.content

    def test_denied_tool_error_reaches_model(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        self.run_denied(runtime, model_server, [])

        (message,) = sent_tool_messages(model_server)
        assert message["tool_call_id"] == "call_delete"
        assert "denied" in str(message["content"]).lower()
        assert HIGH_RISK_POLICY in str(message["content"])

    def test_denied_tool_run_finishes(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        _, run = self.run_denied(runtime, model_server, [])

        assert run.final_text == DELETE_REPLY
        assert len(model_server.requests) == 2

    def test_denied_tool_never_runs(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        calls: list[str] = []

        self.run_denied(runtime, model_server, calls)

        assert calls == []

    def test_denied_tool_audited(
        self,
        runtime: agentlease.Runtime,
        model_server: ModelServer,
        audit_records: Records,
    ) -> None:
        opened, _ = self.run_denied(runtime, model_server, [])

        records = session_records(audit_records(), opened)
        (denial,) = [record for record in records if record.action == "tool.call"]
        assert denial.resource == "tool:delete_records"
        assert denial.outcome == "denied"
        assert denial.decision is not None
        assert denial.decision.allowed is False
        assert HIGH_RISK_POLICY in denial.decision.policy_ids
        assert denial.credential is None

    # -- 3. revocation at task end ---------------------------------------------------------

    def test_revocation_valid_during_task(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        verifier = runtime.broker.verifier()
        script_lookup(model_server)
        with agentlease.task("support") as opened:
            self.run_agent(self.chat_model(runtime), [self.lookup_tool()], LOOKUP_PROMPT)
            claims = [verifier.verify(g.token, audience=g.audience) for g in opened.grants]

        assert {claim.task_id for claim in claims} == {opened.id}

    def test_revocation_covers_every_minted_grant(
        self,
        runtime: agentlease.Runtime,
        model_server: ModelServer,
        audit_records: Records,
    ) -> None:
        opened, _ = self.run_lookup(runtime, model_server)

        minted = [
            record.credential.jti
            for record in session_records(audit_records(), opened)
            if record.action == "grant.mint" and record.credential is not None
        ]
        assert sorted(grant.audience for grant in opened.grants) == [
            "route:fast",
            "route:secure",
            "tool:lookup_customer",
        ]
        assert sorted(minted) == sorted(grant.jti for grant in opened.grants)
        assert sorted(g.jti for g in opened.revoked) == sorted(minted)

    def test_revocation_rejects_grants_after_task(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        opened, _ = self.run_lookup(runtime, model_server)
        verifier = runtime.broker.verifier()

        assert opened.grants
        for grant in opened.grants:
            with pytest.raises(GrantRevoked):
                verifier.verify(grant.token, audience=grant.audience)

    # -- 4. a streamed reply ---------------------------------------------------------------

    def test_stream_chunks_join_to_reply(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        model_server.script(Reply.text(STREAM_TEXT, usage=STREAM_USAGE))
        with agentlease.task("explain"):
            chunks = self.stream_reply(self.chat_model(runtime), "Explain routing.")

        assert len([chunk for chunk in chunks if chunk]) > 1
        assert "".join(chunks) == STREAM_TEXT

    def test_stream_usage_audited(
        self,
        runtime: agentlease.Runtime,
        model_server: ModelServer,
        audit_records: Records,
    ) -> None:
        model_server.script(Reply.text(STREAM_TEXT, usage=STREAM_USAGE))
        with agentlease.task("explain") as opened:
            self.stream_reply(self.chat_model(runtime), "Explain routing.")

        records = session_records(audit_records(), opened)
        (call,) = [record for record in records if record.action == "model.call"]
        assert call.attributes["stream"] is True
        assert call.usage is not None
        assert (call.usage.input_tokens, call.usage.output_tokens) == STREAM_USAGE
        assert call.usage.total_tokens == sum(STREAM_USAGE)

    async def test_stream_async_chunks_join_to_reply(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        model_server.script(Reply.text(STREAM_TEXT, usage=STREAM_USAGE))
        async with agentlease.task("explain"):
            chunks = await self.astream_reply(self.chat_model(runtime), "Explain routing.")

        assert len([chunk for chunk in chunks if chunk]) > 1
        assert "".join(chunks) == STREAM_TEXT

    async def test_stream_async_usage_audited(
        self,
        runtime: agentlease.Runtime,
        model_server: ModelServer,
        audit_records: Records,
    ) -> None:
        model_server.script(Reply.text(STREAM_TEXT, usage=STREAM_USAGE))
        async with agentlease.task("explain") as opened:
            await self.astream_reply(self.chat_model(runtime), "Explain routing.")

        records = session_records(audit_records(), opened)
        (call,) = [record for record in records if record.action == "model.call"]
        assert call.usage is not None
        assert (call.usage.input_tokens, call.usage.output_tokens) == STREAM_USAGE

    # -- 5. an async run -------------------------------------------------------------------

    async def test_async_run_returns_final_text(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        script_lookup(model_server)
        async with agentlease.task("support"):
            run = await self.arun_agent(
                self.chat_model(runtime), [self.lookup_tool()], LOOKUP_PROMPT
            )

        assert run.final_text == LOOKUP_REPLY
        assert run.tool_results == [ToolResult("lookup_customer", LOOKUP_RESULT, False)]

    async def test_async_run_routes_by_data_class(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        script_lookup(model_server)
        async with agentlease.task("support") as opened:
            await self.arun_agent(self.chat_model(runtime), [self.lookup_tool()], LOOKUP_PROMPT)

        assert request_paths(model_server) == [FAST, SECURE]
        assert opened.data_class == "confidential"

    async def test_async_run_audited_in_task(
        self,
        runtime: agentlease.Runtime,
        model_server: ModelServer,
        audit_records: Records,
    ) -> None:
        script_lookup(model_server)
        async with agentlease.task("support") as opened:
            await self.arun_agent(self.chat_model(runtime), [self.lookup_tool()], LOOKUP_PROMPT)

        actions = [record.action for record in session_records(audit_records(), opened)]
        assert actions.count("model.call") == 2
        assert actions.count("tool.call") == 1
        assert {record.session_id for record in audit_records()} == {opened.id}

    async def test_async_run_revokes_grants(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        script_lookup(model_server)
        async with agentlease.task("support") as opened:
            await self.arun_agent(self.chat_model(runtime), [self.lookup_tool()], LOOKUP_PROMPT)
        verifier = runtime.broker.verifier()

        assert len(opened.grants) == 3
        for grant in opened.grants:
            with pytest.raises(GrantRevoked):
                verifier.verify(grant.token, audience=grant.audience)

    async def test_async_run_denied_tool_returns_error(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        calls: list[str] = []
        tool = self.denied_tool(model_server, calls)
        async with agentlease.task("cleanup"):
            run = await self.arun_agent(self.chat_model(runtime), [tool], DELETE_PROMPT)

        (result,) = run.tool_results
        assert result.is_error is True
        assert HIGH_RISK_POLICY in result.content
        assert run.final_text == DELETE_REPLY
        assert calls == []

    # -- 6. an audit tree ------------------------------------------------------------------

    def test_audit_tree_shows_agent_run(
        self,
        runtime: agentlease.Runtime,
        model_server: ModelServer,
        audit_records: Records,
    ) -> None:
        opened, _ = self.run_lookup(runtime, model_server)

        lines = render_tree(audit_records(), session_id=opened.id).splitlines()
        assert lines[0].startswith(f"session {opened.id}")
        assert "task=support" in lines[0]
        assert any("model.call" in line and "route:fast" in line for line in lines)
        assert any("model.call" in line and "route:secure" in line for line in lines)
        assert any("tool.call" in line and "tool:lookup_customer" in line for line in lines)
        assert "task.end" in lines[-1]

    def test_audit_log_file_verifies(
        self,
        runtime: agentlease.Runtime,
        model_server: ModelServer,
        audit_records: Records,
        audit_path: Path,
    ) -> None:
        self.run_lookup(runtime, model_server)

        report = verify_log(audit_path)
        records = audit_records()
        assert report.records == len(records)
        assert report.sessions == len({record.session_id for record in records})
        assert [record.hash for record in read_log(audit_path)] == [r.hash for r in records]

    # -- 7. a sub-agent --------------------------------------------------------------------

    def test_subagent_reply_reaches_agent(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        _, seen = self.run_subagent(runtime, model_server)

        assert seen.reply == RESEARCH_REPLY
        (message,) = sent_tool_messages(model_server)
        assert RESEARCH_REPLY in str(message["content"])

    def test_subagent_session_nests_under_task(
        self,
        runtime: agentlease.Runtime,
        model_server: ModelServer,
        audit_records: Records,
    ) -> None:
        opened, seen = self.run_subagent(runtime, model_server)

        assert seen.task is not None
        assert seen.task.parent is opened
        records = session_records(audit_records(), seen.task)
        assert records
        assert {record.parent_session_id for record in records} == {opened.id}
        assert [record.action for record in records].count("model.call") == 1

    def test_subagent_tree_nests_session(
        self,
        runtime: agentlease.Runtime,
        model_server: ModelServer,
        audit_records: Records,
    ) -> None:
        opened, seen = self.run_subagent(runtime, model_server)

        assert seen.task is not None
        lines = render_tree(audit_records(), session_id=opened.id).splitlines()
        (header,) = [line for line in lines if f"session {seen.task.id}" in line]
        assert not header.startswith("session")
        assert "task=research" in header

    def test_subagent_grants_carry_actor_chain(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        opened, seen = self.run_subagent(runtime, model_server)

        assert seen.task is not None
        assert seen.claims
        for claims in seen.claims:
            assert claims.task_id == seen.task.id
            act = claims.act
            assert act is not None
            assert act["task_id"] == seen.task.id
            assert act["sub"] == seen.task.identity.id
            parent_act = act["act"]
            assert isinstance(parent_act, Mapping)
            assert parent_act["task_id"] == opened.id
            assert "act" not in parent_act

    def test_subagent_grants_revoked_at_subtask_end(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        _, seen = self.run_subagent(runtime, model_server)
        verifier = runtime.broker.verifier()

        assert seen.task is not None
        assert seen.task.grants
        for grant in seen.task.grants:
            with pytest.raises(GrantRevoked):
                verifier.verify(grant.token, audience=grant.audience)

    async def test_subagent_async_nests_under_task(
        self,
        runtime: agentlease.Runtime,
        model_server: ModelServer,
        audit_records: Records,
    ) -> None:
        opened, seen = await self.arun_subagent(runtime, model_server)

        assert seen.reply == RESEARCH_REPLY
        assert seen.task is not None
        records = session_records(audit_records(), seen.task)
        assert {record.parent_session_id for record in records} == {opened.id}
        assert [record.action for record in records].count("model.call") == 1

    async def test_subagent_async_grants_carry_actor_chain(
        self, runtime: agentlease.Runtime, model_server: ModelServer
    ) -> None:
        opened, seen = await self.arun_subagent(runtime, model_server)

        assert seen.task is not None
        assert seen.claims
        for claims in seen.claims:
            assert claims.act is not None
            assert claims.act["task_id"] == seen.task.id
            assert claims.act["act"]["task_id"] == opened.id
