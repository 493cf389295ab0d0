"""secure_tool: guarded LangChain tools keep their interface and report denials to the model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import (
    BaseTool,
    InjectedToolArg,
    InjectedToolCallId,
    StructuredTool,
    Tool,
    ToolException,
    tool,
)
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import InjectedState, ToolNode, ToolRuntime
from pydantic import BaseModel

import agentlease
from agentlease.audit import AuditRecord
from agentlease.errors import ConfigurationError, PolicyDenied
from agentlease_langchain import SecureTool, ToolCallDenied, secure_tool


def _call(name: str, args: dict[str, Any], call_id: str = "call_1") -> ToolCall:
    return ToolCall(name=name, args=args, id=call_id, type="tool_call")


def _tool_node_graph(tools: list[BaseTool]) -> Any:
    """Return a graph that runs one ToolNode, with LangGraph's default error handling."""
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    return builder.compile()


def _tool_messages(state: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


@tool
def lookup_order(order_id: str) -> str:
    """Return the status of an order."""
    return f"order {order_id} shipped"


def make_delete_order(runs: list[str]) -> StructuredTool:
    @tool
    def delete_order(order_id: str) -> str:
        """Delete an order."""
        runs.append(order_id)
        return "deleted"

    return delete_order


# -- interface ---------------------------------------------------------------------------------


def test_guarded_copy_keeps_schema() -> None:
    guarded = secure_tool(lookup_order)
    assert guarded.name == "lookup_order"
    assert guarded.description == lookup_order.description
    assert guarded.args == lookup_order.args
    assert isinstance(guarded, StructuredTool)


def test_guarded_copy_keeps_injected_arguments(runtime: agentlease.Runtime) -> None:
    @tool
    def tag_order(
        order_id: str,
        call_id: Annotated[str, InjectedToolCallId],
        tenant: Annotated[str, InjectedToolArg],
    ) -> str:
        """Tag an order."""
        return f"{order_id}/{call_id}/{tenant}"

    guarded = secure_tool(tag_order)
    assert set(guarded.args) == {"order_id"}
    result = guarded.invoke(_call("tag_order", {"order_id": "A-1", "tenant": "acme"}, "c7"))
    assert isinstance(result, ToolMessage)
    assert result.content == "A-1/c7/acme"


def test_guarded_copy_keeps_artifact(runtime: agentlease.Runtime) -> None:
    @tool(response_format="content_and_artifact")
    def fetch_rows(table: str) -> tuple[str, list[int]]:
        """Fetch rows of a table."""
        return f"3 rows of {table}", [1, 2, 3]

    result = secure_tool(fetch_rows).invoke(_call("fetch_rows", {"table": "orders"}))
    assert isinstance(result, ToolMessage)
    assert result.artifact == [1, 2, 3]
    assert result.tool_call_id == "call_1"


def test_guarded_copy_passes_config(runtime: agentlease.Runtime) -> None:
    @tool
    def whoami(config: RunnableConfig) -> str:
        """Return the run name."""
        return str(config.get("run_name"))

    assert secure_tool(whoami).invoke({}, config={"run_name": "probe"}) == "probe"


def test_secure_tool_accepts_function(runtime: agentlease.Runtime) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    guarded = secure_tool(add)
    assert guarded.name == "add"
    assert guarded.invoke({"a": 2, "b": 3}) == 5


def test_secure_tool_rejects_guarded_tool() -> None:
    with pytest.raises(ConfigurationError, match="already guarded"):
        secure_tool(secure_tool(lookup_order))


def test_secure_tool_rejects_non_callable() -> None:
    with pytest.raises(ConfigurationError, match="pass a LangChain tool"):
        secure_tool(42)  # type: ignore[arg-type]


def test_single_input_tool_stays_tool(runtime: agentlease.Runtime) -> None:
    echo = Tool(name="echo", func=lambda text: f"echo {text}", description="Echo the text.")
    guarded = secure_tool(echo)
    assert isinstance(guarded, Tool)
    assert guarded.invoke("hi") == "echo hi"


# -- guarded calls -----------------------------------------------------------------------------


def test_tool_sees_its_grant(runtime: agentlease.Runtime) -> None:
    @tool
    def call_billing() -> str:
        """Call the billing service."""
        return agentlease.current_grant().audience

    with agentlease.task("billing"):
        assert secure_tool(call_billing).invoke({}) == "tool:call_billing"


def test_tool_call_audited_with_call_id(
    runtime: agentlease.Runtime, audit_records: Callable[[], list[AuditRecord]]
) -> None:
    with agentlease.task("orders") as opened:
        secure_tool(lookup_order).invoke(_call("lookup_order", {"order_id": "A-1"}, "c42"))
    (record,) = [r for r in audit_records() if r.action == "tool.call"]
    assert record.session_id == opened.id
    assert record.attributes["call_id"] == "c42"
    assert record.args_hash is not None


def test_labelled_tool_raises_task_data_class(runtime: agentlease.Runtime) -> None:
    guarded = secure_tool(lookup_order, data_class="confidential")
    with agentlease.task("orders") as opened:
        guarded.invoke({"order_id": "A-1"})
        assert opened.data_class == "confidential"


def test_tool_own_tool_exception_still_raised(runtime: agentlease.Runtime) -> None:
    @tool
    def flaky() -> str:
        """Fail."""
        raise ToolException("downstream timed out")

    with pytest.raises(ToolException, match="downstream timed out"):
        secure_tool(flaky).invoke(_call("flaky", {}))


def test_tool_own_error_handling_kept(runtime: agentlease.Runtime) -> None:
    def fail() -> str:
        raise ToolException("downstream timed out")

    flaky = StructuredTool.from_function(fail, name="flaky", description="Fail.")
    flaky.handle_tool_error = True
    result = secure_tool(flaky).invoke(_call("flaky", {}))
    assert isinstance(result, ToolMessage)
    assert result.content == "downstream timed out"
    assert result.status == "error"


# -- denials -----------------------------------------------------------------------------------


def test_denial_with_tool_call_returns_error_message(runtime: agentlease.Runtime) -> None:
    runs: list[str] = []
    guarded = secure_tool(make_delete_order(runs), risk="high")
    result = guarded.invoke(_call("delete_order", {"order_id": "A-1"}, "c9"))
    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert result.tool_call_id == "c9"
    assert "denied by policy" in str(result.content)
    assert "tool-high-risk-unverified" in str(result.content)
    assert runs == []


def test_denial_without_tool_call_raises_policy_denied(runtime: agentlease.Runtime) -> None:
    runs: list[str] = []
    guarded = secure_tool(make_delete_order(runs), risk="high")
    with pytest.raises(PolicyDenied) as caught:
        guarded.invoke({"order_id": "A-1"})
    assert not isinstance(caught.value, ToolCallDenied)
    assert runs == []


def test_denial_by_clearance_returns_error_message(runtime: agentlease.Runtime) -> None:
    guarded = secure_tool(lookup_order, clearance="internal")
    with agentlease.task("secret", data_class="confidential"):
        result = guarded.invoke(_call("lookup_order", {"order_id": "A-1"}))
    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert "denied by policy" in str(result.content)


async def test_async_denial_returns_error_message(runtime: agentlease.Runtime) -> None:
    runs: list[str] = []

    @tool
    async def purge_orders(region: str) -> str:
        """Purge the orders of a region."""
        runs.append(region)
        return "purged"

    guarded = secure_tool(purge_orders, risk="high")
    result = await guarded.ainvoke(_call("purge_orders", {"region": "eu"}))
    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert runs == []


def test_denial_in_tool_node_default_settings(runtime: agentlease.Runtime) -> None:
    runs: list[str] = []
    graph = _tool_node_graph([secure_tool(make_delete_order(runs), risk="high")])
    request = AIMessage("", tool_calls=[_call("delete_order", {"order_id": "A-1"}, "c3")])
    state = graph.invoke({"messages": [request]})
    (message,) = _tool_messages(state)
    assert message.status == "error"
    assert message.tool_call_id == "c3"
    assert "denied by policy" in str(message.content)
    assert runs == []


async def test_async_denial_in_tool_node_default_settings(runtime: agentlease.Runtime) -> None:
    runs: list[str] = []
    graph = _tool_node_graph([secure_tool(make_delete_order(runs), risk="high")])
    request = AIMessage("", tool_calls=[_call("delete_order", {"order_id": "A-1"}, "c4")])
    state = await graph.ainvoke({"messages": [request]})
    (message,) = _tool_messages(state)
    assert message.status == "error"
    assert message.tool_call_id == "c4"
    assert runs == []


def test_tool_node_injects_state_and_runtime(runtime: agentlease.Runtime) -> None:
    @tool
    def count_messages(
        note: str,
        messages: Annotated[list[Any], InjectedState("messages")],
        runtime: ToolRuntime,
    ) -> str:
        """Count the conversation's messages."""
        return f"{note}: {len(messages)} messages, call {runtime.tool_call_id}"

    graph = _tool_node_graph([secure_tool(count_messages)])
    request = AIMessage("", tool_calls=[_call("count_messages", {"note": "n"}, "c5")])
    (message,) = _tool_messages(graph.invoke({"messages": [request]}))
    assert message.content == "n: 1 messages, call c5"
    assert message.status == "success"


# -- delegating SecureTool ---------------------------------------------------------------------


class SearchInput(BaseModel):
    query: str


class SearchTool(BaseTool):
    """A hand-written tool that records what LangChain passed it."""

    name: str = "search"
    description: str = "Search the knowledge base."
    args_schema: type[BaseModel] = SearchInput
    seen: list[str] = []

    def _run(
        self,
        query: str,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> str:
        self.seen.append(f"sync {query} {run_manager is not None} {config.get('run_name')}")
        return f"results for {query}"

    async def _arun(
        self,
        query: str,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> str:
        self.seen.append(f"async {query} {run_manager is not None} {config.get('run_name')}")
        return f"results for {query}"


def test_base_tool_wrapped_in_secure_tool() -> None:
    search = SearchTool(seen=[])
    guarded = secure_tool(search)
    assert isinstance(guarded, SecureTool)
    assert guarded.args == search.args
    assert guarded.tool_call_schema is search.tool_call_schema


def test_secure_tool_forwards_run_manager_and_config(runtime: agentlease.Runtime) -> None:
    search = SearchTool(seen=[])
    result = secure_tool(search).invoke({"query": "refunds"}, config={"run_name": "probe"})
    assert result == "results for refunds"
    assert search.seen == ["sync refunds True probe"]


async def test_secure_tool_async_forwards_run_manager_and_config(
    runtime: agentlease.Runtime,
) -> None:
    search = SearchTool(seen=[])
    result = await secure_tool(search).ainvoke({"query": "refunds"}, config={"run_name": "probe"})
    assert result == "results for refunds"
    assert search.seen == ["async refunds True probe"]


def test_secure_tool_denial_returns_error_message(runtime: agentlease.Runtime) -> None:
    search = SearchTool(seen=[])
    result = secure_tool(search, risk="high").invoke(_call("search", {"query": "refunds"}))
    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert search.seen == []


def test_secure_tool_exposes_wrapped_function() -> None:
    search = SearchTool(seen=[])
    guarded = secure_tool(search)
    assert isinstance(guarded, SecureTool)
    assert guarded.func == search._run
