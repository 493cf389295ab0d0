"""FunctionAgent end to end: routing by data class, a denied tool, revocation and audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llamaindex_context_tools import remember

import agentlease
from agentlease.audit import AuditRecord
from agentlease.errors import GrantRevoked
from agentlease.testing import ModelServer, Reply
from agentlease_llamaindex import Instrumentation, SecureLLM, secure_tool

Actions = Callable[[str], list[AuditRecord]]

# Building a workflow lists its members with inspect.getmembers, which reads every deprecated
# pydantic property of the agent (`__fields__`, `model_computed_fields`, ...) and so warns
# (llama-index-workflows 2.26 with pydantic 2.14).
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning")


def lookup_customer(customer_id: str) -> str:
    """Look up a customer record."""
    return f"record of {customer_id}: balance 120"


def delete_records(table: str) -> str:
    """Delete every record of a table."""
    raise AssertionError("a denied tool must not run")


def tool_messages(body: Any) -> list[dict[str, Any]]:
    assert isinstance(body, dict)
    messages: list[dict[str, Any]] = body["messages"]
    return [message for message in messages if message["role"] == "tool"]


def support_agent(llm: SecureLLM, *, streaming: bool = True) -> FunctionAgent:
    return FunctionAgent(
        tools=[
            secure_tool(lookup_customer, data_class="confidential"),
            secure_tool(delete_records, risk="high"),
        ],
        llm=llm,
        streaming=streaming,
        system_prompt="You help the support team.",
    )


@pytest.fixture
def scripted(model_server: ModelServer, runtime: agentlease.Runtime) -> ModelServer:
    """The model server, scripted to call both tools and then reply with text."""
    model_server.script(
        Reply.tool_calls(
            [
                ("lookup_customer", {"customer_id": "c-7"}),
                ("delete_records", {"table": "customers"}),
            ]
        ),
        Reply.text("The balance is 120; deleting records is not allowed."),
    )
    return model_server


async def test_agent_answers_after_tools(llm: SecureLLM, scripted: ModelServer) -> None:
    async with agentlease.task("support"):
        result = await support_agent(llm).run(user_msg="Check customer c-7 and clean up.")

    assert "balance is 120" in str(result)


async def test_agent_routes_by_raised_data_class(llm: SecureLLM, scripted: ModelServer) -> None:
    async with agentlease.task("support") as task:
        await support_agent(llm).run(user_msg="Check customer c-7 and clean up.")

    paths = [request.path for request in scripted.requests]
    assert paths[0].startswith("/fast/")
    assert paths[1].startswith("/secure/")
    assert task.data_class == "confidential"


async def test_agent_sees_denial_as_tool_error(llm: SecureLLM, scripted: ModelServer) -> None:
    async with agentlease.task("support"):
        await support_agent(llm).run(user_msg="Check customer c-7 and clean up.")

    contents = [str(message["content"]) for message in tool_messages(scripted.requests[1].json)]
    denial = [content for content in contents if "policy denied" in content]
    assert len(denial) == 1
    assert "tool-high-risk-unverified" in denial[0]
    assert any("balance 120" in content for content in contents)


async def test_agent_tool_calls_audited(
    llm: SecureLLM, scripted: ModelServer, actions: Actions
) -> None:
    async with agentlease.task("support"):
        await support_agent(llm).run(user_msg="Check customer c-7 and clean up.")

    outcomes = {record.resource: record.outcome for record in actions("tool.call")}
    assert outcomes == {"tool:lookup_customer": "ok", "tool:delete_records": "denied"}
    assert len(actions("model.call")) == 2


async def test_agent_grants_revoked_at_end(
    llm: SecureLLM, scripted: ModelServer, runtime: agentlease.Runtime, actions: Actions
) -> None:
    async with agentlease.task("support") as task:
        await support_agent(llm).run(user_msg="Check customer c-7 and clean up.")

    audiences = sorted(grant.audience for grant in task.grants)
    assert audiences == ["route:fast", "route:secure", "tool:lookup_customer"]
    assert {grant.jti for grant in task.revoked} == {grant.jti for grant in task.grants}
    assert len(actions("grant.revoke")) == 1
    verifier = runtime.broker.verifier()
    for grant in task.grants:
        with pytest.raises(GrantRevoked):
            verifier.verify(grant.token, audience=grant.audience)


async def test_agent_without_streaming(llm: SecureLLM, scripted: ModelServer) -> None:
    async with agentlease.task("support"):
        result = await support_agent(llm, streaming=False).run(user_msg="Check c-7.")

    assert "balance is 120" in str(result)
    assert scripted.requests[1].path.startswith("/secure/")


async def test_agent_injects_context_into_guarded_tool(
    llm: SecureLLM, model_server: ModelServer, actions: Actions
) -> None:
    agent = FunctionAgent(tools=[secure_tool(remember)], llm=llm)

    async with agentlease.task("notes"):
        handler = agent.run(user_msg="Use remember with fact 'blue'.")
        result = await handler
        fact = await handler.ctx.store.get("fact")

    assert fact == "blue"
    assert "remembered blue" in str(result)
    assert actions("tool.call")[0].outcome == "ok"


async def test_agent_run_audited_by_instrumentation(
    llm: SecureLLM, scripted: ModelServer, instrumentation: Instrumentation, actions: Actions
) -> None:
    async with agentlease.task("support"):
        await support_agent(llm).run(user_msg="Check customer c-7 and clean up.")

    (agent,) = actions("framework.agent")
    assert agent.resource == "agent:Agent"
    tools = {record.resource: record.attributes for record in actions("framework.tool")}
    assert tools["tool:lookup_customer"]["guarded"] is True
    assert tools["tool:delete_records"]["is_error"] is True
    assert [record.attributes["stream"] for record in actions("framework.llm")] == [True, True]
    assert actions("finding") == []
