"""End to end: a LangChain agent with a secure model and two guarded tools inside one task.

The scripted model first calls `lookup_customer`, whose results are confidential, then
`delete_customer`, a high-risk tool the starter policy denies to an unverified workload, and
then replies with text. The task starts as internal, so its first model call takes the `fast`
route. Once the lookup has raised the task to confidential, later calls must take `secure`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

import agentlease
from agentlease.audit import AuditRecord, render_tree
from agentlease.errors import GrantRevoked
from agentlease.testing import ModelServer, Reply
from agentlease_langchain import SecureChatModel, secure_tool

PROMPT = "Look up customer C-7 and then delete them."


def build_agent(deleted: list[str]) -> Any:
    @tool
    def lookup_customer(customer_id: str) -> str:
        """Return a customer's record."""
        return f"{customer_id}: Ada Lovelace, account 42"

    @tool
    def delete_customer(customer_id: str) -> str:
        """Delete a customer."""
        deleted.append(customer_id)
        return "deleted"

    return create_agent(
        SecureChatModel(),
        [
            secure_tool(lookup_customer, data_class="confidential"),
            secure_tool(delete_customer, risk="high"),
        ],
    )


def script_model(server: ModelServer) -> None:
    server.script(
        Reply.tool_call("lookup_customer", {"customer_id": "C-7"}, id="call_lookup"),
        Reply.tool_call("delete_customer", {"customer_id": "C-7"}, id="call_delete"),
        Reply.text("C-7 was found but could not be deleted."),
    )


def tool_messages(state: dict[str, Any]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in state["messages"] if isinstance(m, ToolMessage)}


def test_agent_routes_by_data_class(runtime: agentlease.Runtime, model_server: ModelServer) -> None:
    script_model(model_server)
    with agentlease.task("support", purpose="account cleanup") as opened:
        state = build_agent([]).invoke({"messages": [HumanMessage(PROMPT)]})
        assert opened.data_class == "confidential"
    assert [request.path for request in model_server.requests] == [
        "/fast/v1/chat/completions",
        "/secure/v1/chat/completions",
        "/secure/v1/chat/completions",
    ]
    final = state["messages"][-1]
    assert isinstance(final, AIMessage)
    assert final.text == "C-7 was found but could not be deleted."


def test_agent_denied_tool_reaches_model_as_error(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    deleted: list[str] = []
    script_model(model_server)
    with agentlease.task("support"):
        state = build_agent(deleted).invoke({"messages": [HumanMessage(PROMPT)]})
    messages = tool_messages(state)
    assert messages["call_lookup"].status == "success"
    assert messages["call_delete"].status == "error"
    assert "denied by policy" in str(messages["call_delete"].content)
    assert deleted == []
    sent_back = model_server.requests[-1].json["messages"]
    assert "denied by policy" in sent_back[-1]["content"]


def test_agent_grants_minted_and_revoked(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    script_model(model_server)
    with agentlease.task("support") as opened:
        build_agent([]).invoke({"messages": [HumanMessage(PROMPT)]})
    audiences = sorted(grant.audience for grant in opened.grants)
    assert audiences == ["route:fast", "route:secure", "tool:lookup_customer"]
    assert opened.revoked == opened.grants
    verifier = runtime.broker.verifier()
    for grant in opened.grants:
        with pytest.raises(GrantRevoked):
            verifier.verify(grant.token, audience=grant.audience)


def test_agent_audit_tree_shows_whole_run(
    runtime: agentlease.Runtime,
    model_server: ModelServer,
    audit_records: Callable[[], list[AuditRecord]],
) -> None:
    script_model(model_server)
    with agentlease.task("support") as opened:
        build_agent([]).invoke({"messages": [HumanMessage(PROMPT)]})
    records = [r for r in audit_records() if r.session_id == opened.id]
    actions = [r.action for r in records]
    assert actions.count("model.call") == 3
    tool_calls = {r.resource: r.outcome for r in records if r.action == "tool.call"}
    assert tool_calls == {"tool:lookup_customer": "ok", "tool:delete_customer": "denied"}
    assert "task.data_class_raised" in actions
    assert actions[-1] == "task.end"
    tree = render_tree(audit_records(), session_id=opened.id)
    assert "tool:delete_customer" in tree
    assert "route:secure" in tree


async def test_agent_runs_inside_async_task(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    deleted: list[str] = []
    script_model(model_server)
    async with agentlease.task("support") as opened:
        state = await build_agent(deleted).ainvoke({"messages": [HumanMessage(PROMPT)]})
    assert tool_messages(state)["call_delete"].status == "error"
    assert deleted == []
    assert opened.data_class == "confidential"
    assert model_server.requests[-1].path == "/secure/v1/chat/completions"
