"""AgentleaseMiddleware: guards plain tools of a create_agent agent and checks its model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

import agentlease
from agentlease.audit import AuditRecord
from agentlease.errors import ConfigurationError
from agentlease.testing import ModelServer, Reply
from agentlease_langchain import SecureChatModel, secure_tool
from agentlease_langchain.middleware import AgentleaseMiddleware

PROMPT = "Handle customer C-7."


def make_tools(seen: list[str]) -> list[Any]:
    @tool
    def lookup_customer(customer_id: str) -> str:
        """Return a customer's record."""
        seen.append(f"lookup {agentlease.current_grant().audience}")
        return f"{customer_id}: Ada Lovelace"

    @tool
    def delete_customer(customer_id: str) -> str:
        """Delete a customer."""
        seen.append("delete")
        return "deleted"

    return [lookup_customer, delete_customer]


def script_model(server: ModelServer) -> None:
    server.script(
        Reply.tool_calls(
            [
                ("lookup_customer", {"customer_id": "C-7"}),
                ("delete_customer", {"customer_id": "C-7"}),
            ]
        ),
        Reply.text("Done."),
    )


def middleware() -> AgentleaseMiddleware:
    return AgentleaseMiddleware(
        tool_options={
            "lookup_customer": {"data_class": "confidential"},
            "delete_customer": {"risk": "high"},
        }
    )


def statuses(state: dict[str, Any]) -> dict[str, str]:
    return {str(m.name): m.status for m in state["messages"] if isinstance(m, ToolMessage)}


def test_middleware_guards_plain_tools(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    seen: list[str] = []
    script_model(model_server)
    agent = create_agent(SecureChatModel(), make_tools(seen), middleware=[middleware()])
    with agentlease.task("support") as opened:
        state = agent.invoke({"messages": [HumanMessage(PROMPT)]})
    assert statuses(state) == {"lookup_customer": "success", "delete_customer": "error"}
    assert seen == ["lookup tool:lookup_customer"]
    assert opened.data_class == "confidential"


def test_middleware_denial_text_names_policy(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    script_model(model_server)
    agent = create_agent(SecureChatModel(), make_tools([]), middleware=[middleware()])
    with agentlease.task("support"):
        state = agent.invoke({"messages": [HumanMessage(PROMPT)]})
    (denied,) = [m for m in state["messages"] if isinstance(m, ToolMessage) and m.status == "error"]
    assert "denied by policy" in str(denied.content)
    assert "tool-high-risk-unverified" in str(denied.content)


async def test_middleware_guards_plain_tools_async(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    seen: list[str] = []
    script_model(model_server)
    agent = create_agent(SecureChatModel(), make_tools(seen), middleware=[middleware()])
    async with agentlease.task("support"):
        state = await agent.ainvoke({"messages": [HumanMessage(PROMPT)]})
    assert statuses(state) == {"lookup_customer": "success", "delete_customer": "error"}
    assert seen == ["lookup tool:lookup_customer"]


def test_middleware_skips_secure_tools(
    runtime: agentlease.Runtime,
    model_server: ModelServer,
    audit_records: Callable[[], list[AuditRecord]],
) -> None:
    lookup, delete = make_tools([])
    script_model(model_server)
    tools = [secure_tool(lookup), secure_tool(delete, risk="high")]
    agent = create_agent(SecureChatModel(), tools, middleware=[AgentleaseMiddleware()])
    with agentlease.task("support"):
        agent.invoke({"messages": [HumanMessage(PROMPT)]})
    tool_calls = [r for r in audit_records() if r.action == "tool.call"]
    assert len(tool_calls) == 2


def test_middleware_rejects_model_outside_agentlease() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("hi")]))
    agent = create_agent(model, [], middleware=[AgentleaseMiddleware()])
    with pytest.raises(ConfigurationError, match="GenericFakeChatModel"):
        agent.invoke({"messages": [HumanMessage("hello")]})


def test_middleware_allows_other_model_when_told() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("hi")]))
    agent = create_agent(model, [], middleware=[AgentleaseMiddleware(require_secure_model=False)])
    state = agent.invoke({"messages": [HumanMessage("hello")]})
    assert state["messages"][-1].text == "hi"
