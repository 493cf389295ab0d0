"""The audit callback handler: framework records, bypass findings, registration, async runs."""

from __future__ import annotations

import asyncio
import doctest
import json
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from langchain_core.vectorstores import InMemoryVectorStore
from langgraph.errors import GraphInterrupt
from pydantic import BaseModel

import agentlease
from agentlease.audit import AuditLog, AuditRecord, MemoryAuditSink
from agentlease.testing import ModelServer, Reply
from agentlease_langchain import (
    AgentleaseCallbackHandler,
    SecureChatModel,
    callbacks,
    instrument,
    secure_tool,
)
from agentlease_langchain.middleware import AgentleaseMiddleware

Records = Callable[[], list[AuditRecord]]

SECRET_PROMPT = "prompt-canary-5f1e"
SECRET_ARGUMENT = "argument-canary-9c2d"
SECRET_RESULT = "result-canary-0b7a"
SECRET_DOCUMENT = "document-canary-44e1"


# -- components ---------------------------------------------------------------------------


class ToolCallingFakeModel(GenericFakeChatModel):
    """A scripted chat model that accepts tools, for agents that bypass agentlease."""

    def bind_tools(
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self


def scripted_fake_model(*messages: AIMessage) -> ToolCallingFakeModel:
    return ToolCallingFakeModel(messages=iter(messages))


@tool
def lookup_order(order_id: str) -> str:
    """Return the status of an order."""
    return f"{order_id}: shipped {SECRET_RESULT}"


@tool
def plain_lookup(order_id: str) -> str:
    """Return the status of an order, without agentlease."""
    return f"{order_id}: shipped {SECRET_RESULT}"


def with_handler(handler: BaseCallbackHandler | None = None) -> RunnableConfig:
    return {"callbacks": [handler or AgentleaseCallbackHandler()]}


def of_action(records: list[AuditRecord], action: str) -> list[AuditRecord]:
    return [record for record in records if record.action == action]


def in_session(records: Records, task: agentlease.Task) -> list[AuditRecord]:
    return [record for record in records() if record.session_id == task.id]


def tool_call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"type": "tool_call", "name": name, "args": args, "id": call_id}


def retriever_over(documents: list[Document]) -> Any:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents(documents)
    return store.as_retriever(search_kwargs={"k": len(documents)})


# -- models -------------------------------------------------------------------------------


def test_bypassing_model_gets_finding(runtime: agentlease.Runtime, audit_records: Records) -> None:
    model = FakeListChatModel(responses=["hello"])
    with agentlease.task("greet") as opened:
        model.invoke("Hi", config=with_handler())
    [finding] = of_action(in_session(audit_records, opened), "finding")
    assert finding.resource == "llm:FakeListChatModel"
    assert finding.credential is not None
    assert finding.credential.mode == "unmediated"
    assert finding.attributes["finding"] == "unmediated_llm_call"
    assert "model call bypassed agentlease" in finding.attributes["detail"]


def test_bypassing_model_run_recorded(runtime: agentlease.Runtime, audit_records: Records) -> None:
    model = FakeListChatModel(responses=["hello"])
    with agentlease.task("greet") as opened:
        model.invoke("Hi", config=with_handler())
    [record] = of_action(in_session(audit_records, opened), "framework.llm")
    assert record.outcome == "ok"
    assert record.attributes["mediated"] is False
    assert record.attributes["llm_class"] == "FakeListChatModel"
    assert record.attributes["duration_ms"] >= 0


def test_secure_model_has_no_finding(runtime: agentlease.Runtime, audit_records: Records) -> None:
    with agentlease.task("greet") as opened:
        SecureChatModel().invoke("Hi", config=with_handler())
    records = in_session(audit_records, opened)
    assert of_action(records, "finding") == []
    [record] = of_action(records, "framework.llm")
    assert record.attributes["mediated"] is True
    assert record.resource == "llm:SecureChatModel"
    assert len(of_action(records, "model.call")) == 1


def test_secure_model_usage_recorded(runtime: agentlease.Runtime, audit_records: Records) -> None:
    with agentlease.task("greet") as opened:
        SecureChatModel().invoke("Hi", config=with_handler())
    [record] = of_action(in_session(audit_records, opened), "framework.llm")
    assert record.usage is not None
    assert record.usage.total_tokens > 0
    assert record.attributes["model_name"] == "fast-model"


class Answer(BaseModel):
    text: str


def bound_to_tools(model: SecureChatModel) -> Runnable[Any, Any]:
    return model.bind_tools([lookup_order])


def structured(model: SecureChatModel) -> Runnable[Any, Any]:
    return model.with_structured_output(Answer)


def behind_fallback(model: SecureChatModel) -> Runnable[Any, Any]:
    failing = scripted_fake_model()  # an exhausted script raises, so the fallback runs
    return failing.with_fallbacks([model])


@pytest.mark.parametrize("wrap", [bound_to_tools, structured, behind_fallback])
def test_wrapped_secure_model_has_no_finding(
    runtime: agentlease.Runtime,
    model_server: ModelServer,
    audit_records: Records,
    wrap: Callable[[SecureChatModel], Runnable[Any, Any]],
) -> None:
    model_server.script(Reply.tool_call("Answer", {"text": "hi"}))
    runnable = wrap(SecureChatModel())
    with agentlease.task("greet") as opened:
        runnable.invoke("Hi", config=with_handler())
    records = in_session(audit_records, opened)
    resources = [f.resource for f in of_action(records, "finding")]
    assert "llm:SecureChatModel" not in resources
    mediated = [r for r in of_action(records, "framework.llm") if r.attributes["mediated"]]
    assert len(mediated) == 1


def test_subclassed_secure_model_has_no_finding(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    class TeamModel(SecureChatModel):
        pass

    with agentlease.task("greet") as opened:
        TeamModel().invoke("Hi", config=with_handler())
    assert of_action(in_session(audit_records, opened), "finding") == []


def test_streamed_model_run_counts_chunks(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    with agentlease.task("greet") as opened:
        chunks = list(SecureChatModel().stream("Hi there", config=with_handler()))
    [record] = of_action(in_session(audit_records, opened), "framework.llm")
    assert record.attributes["stream"] is True
    assert record.attributes["chunks"] == len(chunks)
    assert record.attributes["time_to_first_chunk_ms"] >= 0
    assert record.usage is not None


def test_failed_model_run_recorded_as_error(
    runtime: agentlease.Runtime, model_server: ModelServer, audit_records: Records
) -> None:
    model_server.script(Reply.error(400, "bad request"), prefix="/fast")
    with agentlease.task("greet") as opened, pytest.raises(agentlease.ProviderError):
        SecureChatModel(model="fast").invoke("Hi", config=with_handler())
    [record] = of_action(in_session(audit_records, opened), "framework.llm")
    assert record.outcome == "error"
    assert record.error is not None


def test_run_outside_task_not_recorded(runtime: agentlease.Runtime, audit_records: Records) -> None:
    FakeListChatModel(responses=["hello"]).invoke("Hi", config=with_handler())
    plain_lookup.invoke({"order_id": "A-1"}, config=with_handler())
    actions = {record.action for record in audit_records()}
    assert actions.isdisjoint({"finding", "framework.llm", "framework.tool"})


class FrameworkFailingSink(MemoryAuditSink):
    """Fails to write framework records and findings, and keeps the others."""

    def write(self, record: AuditRecord) -> None:
        if record.action.startswith("framework.") or record.action == "finding":
            raise OSError("disk full")
        super().write(record)


def test_audit_failure_leaves_run_intact(
    runtime: agentlease.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    failing = agentlease.Runtime(routes=[], audit=AuditLog([FrameworkFailingSink()]))
    model = FakeListChatModel(responses=["hello"])
    try:
        with agentlease.task("greet", runtime=failing):
            reply = model.invoke("Hi", config=with_handler())
    finally:
        failing.close()
    assert reply.text == "hello"
    assert "audit callback failed" in caplog.text


# -- tools --------------------------------------------------------------------------------


def test_unguarded_tool_gets_finding(runtime: agentlease.Runtime, audit_records: Records) -> None:
    with agentlease.task("orders") as opened:
        plain_lookup.invoke({"order_id": "A-1"}, config=with_handler())
    [finding] = of_action(in_session(audit_records, opened), "finding")
    assert finding.resource == "tool:plain_lookup"
    assert finding.attributes["finding"] == "unguarded_tool_call"
    assert "tool call bypassed agentlease" in finding.attributes["detail"]
    assert finding.credential is not None
    assert finding.credential.mode == "unmediated"


def test_unguarded_model_tool_call_gets_finding(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    call = tool_call("plain_lookup", {"order_id": "A-1"}, "call_1")
    with agentlease.task("orders") as opened:
        plain_lookup.invoke(call, config=with_handler())
    [finding] = of_action(in_session(audit_records, opened), "finding")
    assert finding.attributes["call_id"] == "call_1"


def test_unguarded_tool_run_recorded(runtime: agentlease.Runtime, audit_records: Records) -> None:
    call = tool_call("plain_lookup", {"order_id": "A-1"}, "call_1")
    with agentlease.task("orders") as opened:
        plain_lookup.invoke(call, config=with_handler())
    [record] = of_action(in_session(audit_records, opened), "framework.tool")
    assert record.resource == "tool:plain_lookup"
    assert record.attributes["guarded"] is False
    assert record.attributes["status"] == "success"
    assert record.args_hash is not None
    assert record.result_hash is not None


@pytest.mark.parametrize(
    "tool_input",
    [
        pytest.param({"order_id": "A-1"}, id="direct"),
        pytest.param(tool_call("lookup_order", {"order_id": "A-1"}, "call_1"), id="tool_call"),
    ],
)
def test_secure_tool_has_no_finding(
    runtime: agentlease.Runtime, audit_records: Records, tool_input: dict[str, Any]
) -> None:
    guarded = secure_tool(lookup_order)
    with agentlease.task("orders") as opened:
        guarded.invoke(tool_input, config=with_handler())
    records = in_session(audit_records, opened)
    assert of_action(records, "finding") == []
    [record] = of_action(records, "framework.tool")
    assert record.attributes["guarded"] is True
    assert len(of_action(records, "tool.call")) == 1


async def test_secure_tool_async_has_no_finding(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    guarded = secure_tool(lookup_order)
    call = tool_call("lookup_order", {"order_id": "A-1"}, "call_1")
    handler = AgentleaseCallbackHandler(run_inline=False)
    async with agentlease.task("orders") as opened:
        await guarded.ainvoke(call, config=with_handler(handler))
    records = in_session(audit_records, opened)
    assert of_action(records, "finding") == []
    assert len(of_action(records, "framework.tool")) == 1


def test_denied_secure_tool_recorded_as_error(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    guarded = secure_tool(lookup_order, risk="high")
    call = tool_call("lookup_order", {"order_id": "A-1"}, "call_1")
    with agentlease.task("orders") as opened:
        message = guarded.invoke(call, config=with_handler())
    assert message.status == "error"
    records = in_session(audit_records, opened)
    [record] = of_action(records, "framework.tool")
    assert record.outcome == "error"
    assert of_action(records, "finding") == []


def test_failing_tool_recorded_without_message(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    @tool
    def broken(order_id: str) -> str:
        """Fail."""
        raise RuntimeError(f"cannot read {order_id}")

    with agentlease.task("orders") as opened, pytest.raises(RuntimeError):
        broken.invoke({"order_id": SECRET_ARGUMENT}, config=with_handler())
    [record] = of_action(in_session(audit_records, opened), "framework.tool")
    assert record.outcome == "error"
    assert record.error is not None
    assert record.error.type == "RuntimeError"
    assert record.error.message == ""


def test_plain_tool_inside_secure_tool_gets_finding(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    @tool
    def outer(order_id: str) -> str:
        """Look an order up through another tool."""
        return plain_lookup.invoke({"order_id": order_id})

    guarded = secure_tool(outer)
    with agentlease.task("orders") as opened:
        guarded.invoke({"order_id": "A-1"}, config=with_handler())
    findings = of_action(in_session(audit_records, opened), "finding")
    assert [finding.resource for finding in findings] == ["tool:plain_lookup"]


def test_secure_tool_inside_secure_tool_has_no_finding(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    inner = secure_tool(lookup_order)

    @tool
    def outer(order_id: str) -> str:
        """Look an order up through another guarded tool."""
        return inner.invoke({"order_id": order_id})

    guarded = secure_tool(outer)
    with agentlease.task("orders") as opened:
        guarded.invoke({"order_id": "A-1"}, config=with_handler())
    records = in_session(audit_records, opened)
    assert of_action(records, "finding") == []
    assert len(of_action(records, "tool.call")) == 2


def test_secure_tool_marks_metadata() -> None:
    guarded = secure_tool(lookup_order)
    assert guarded.metadata is not None
    assert guarded.metadata["agentlease_guarded"] is True
    assert lookup_order.metadata is None or "agentlease_guarded" not in lookup_order.metadata


def test_tool_nested_via_input_config_gets_finding(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    @tool
    def outer(order_id: str, config: RunnableConfig) -> str:
        """Look an order up through another tool, passing the tool's input config on."""
        return plain_lookup.invoke({"order_id": order_id}, config=config)

    guarded = secure_tool(outer)
    with agentlease.task("orders") as opened:
        guarded.invoke({"order_id": "A-1"}, config=with_handler())
    findings = of_action(in_session(audit_records, opened), "finding")
    assert [finding.resource for finding in findings] == ["tool:plain_lookup"]


def test_nested_tool_run_names_parent(runtime: agentlease.Runtime, audit_records: Records) -> None:
    @tool
    def outer(order_id: str) -> str:
        """Look an order up through another tool."""
        return plain_lookup.invoke({"order_id": order_id})

    with agentlease.task("orders") as opened:
        outer.invoke({"order_id": "A-1"}, config=with_handler())
    records = {
        r.resource: r for r in of_action(in_session(audit_records, opened), "framework.tool")
    }
    outer_record = records["tool:outer"]
    assert (
        records["tool:plain_lookup"].attributes["parent_run_id"]
        == outer_record.attributes["run_id"]
    )


# -- retrievers ---------------------------------------------------------------------------


def test_retriever_run_records_document_count(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    retriever = retriever_over(
        [
            Document("refund policy", metadata={"data_class": "confidential"}),
            Document("shipping times", metadata={"data_class": "public"}),
            Document("opening hours"),
        ]
    )
    with agentlease.task("search") as opened:
        found = retriever.invoke("refunds", config=with_handler())
    [record] = of_action(in_session(audit_records, opened), "framework.retrieve")
    assert record.attributes["documents"] == len(found) == 3
    assert record.attributes["data_classes"] == ["confidential", "public"]
    assert record.resource == "retriever:VectorStoreRetriever"
    assert record.args_hash is not None


def test_retriever_record_excludes_content(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    retriever = retriever_over([Document(SECRET_DOCUMENT, metadata={"source": SECRET_DOCUMENT})])
    with agentlease.task("search") as opened:
        retriever.invoke(SECRET_PROMPT, config=with_handler())
    [record] = of_action(in_session(audit_records, opened), "framework.retrieve")
    text = record.model_dump_json()
    assert SECRET_DOCUMENT not in text
    assert SECRET_PROMPT not in text


# -- chains and agents --------------------------------------------------------------------


def build_secure_agent() -> Any:
    agent: Any = create_agent(SecureChatModel(), [secure_tool(lookup_order)], name="orders_agent")
    return agent


def script_lookup(server: ModelServer) -> None:
    server.script(
        Reply.tool_call("lookup_order", {"order_id": SECRET_ARGUMENT}, id="call_lookup"),
        Reply.text("The order has shipped."),
    )


def test_agent_run_records_outermost_chain_only(
    runtime: agentlease.Runtime, model_server: ModelServer, audit_records: Records
) -> None:
    script_lookup(model_server)
    with agentlease.task("orders") as opened:
        build_secure_agent().invoke(
            {"messages": [HumanMessage("Where is my order?")]}, config=with_handler()
        )
    records = in_session(audit_records, opened)
    [agent] = of_action(records, "framework.agent")
    assert agent.resource == "agent:orders_agent"
    assert agent.outcome == "ok"
    assert len(of_action(records, "framework.llm")) == 2
    assert len(of_action(records, "framework.tool")) == 1
    assert of_action(records, "finding") == []


def test_agent_run_tree_links_parent(
    runtime: agentlease.Runtime, model_server: ModelServer, audit_records: Records
) -> None:
    script_lookup(model_server)
    with agentlease.task("orders") as opened:
        build_secure_agent().invoke(
            {"messages": [HumanMessage("Where is my order?")]}, config=with_handler()
        )
    records = in_session(audit_records, opened)
    [agent] = of_action(records, "framework.agent")
    assert agent.attributes["parent_run_id"] is None
    children = of_action(records, "framework.llm") + of_action(records, "framework.tool")
    for child in children:
        assert child.attributes["parent_run_id"] == agent.attributes["run_id"]
    assert {child.attributes["node"] for child in children} == {"model", "tools"}


def test_bypassing_agent_gets_findings(runtime: agentlease.Runtime, audit_records: Records) -> None:
    model = scripted_fake_model(
        AIMessage("", tool_calls=[tool_call("plain_lookup", {"order_id": "A-1"}, "call_1")]),
        AIMessage("Shipped."),
    )
    agent: Any = create_agent(model, [plain_lookup])
    with agentlease.task("orders") as opened:
        agent.invoke({"messages": [HumanMessage("Where is my order?")]}, config=with_handler())
    findings = of_action(in_session(audit_records, opened), "finding")
    assert [f.resource for f in findings] == [
        "llm:ToolCallingFakeModel",
        "tool:plain_lookup",
        "llm:ToolCallingFakeModel",
    ]


def test_middleware_guarded_tool_has_no_finding(
    runtime: agentlease.Runtime, model_server: ModelServer, audit_records: Records
) -> None:
    model_server.script(
        Reply.tool_call("plain_lookup", {"order_id": "A-1"}, id="call_lookup"),
        Reply.text("The order has shipped."),
    )
    agent: Any = create_agent(
        SecureChatModel(), [plain_lookup], middleware=[AgentleaseMiddleware()]
    )
    with agentlease.task("orders") as opened:
        agent.invoke({"messages": [HumanMessage("Where is my order?")]}, config=with_handler())
    records = in_session(audit_records, opened)
    assert of_action(records, "finding") == []
    [record] = of_action(records, "framework.tool")
    assert record.attributes["guarded"] is True


def shout(text: str) -> str:
    return text.upper()


def test_chain_started_inside_task_is_outermost(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    opened: list[agentlease.Task] = []

    def in_task(question: str, config: RunnableConfig) -> str:
        with agentlease.task("inner") as inner:
            opened.append(inner)
            return RunnableLambda(shout, name="shout").invoke(question, config=config)

    RunnableLambda(in_task, name="outer").invoke("hi", config=with_handler())
    [agent] = of_action(in_session(audit_records, opened[0]), "framework.agent")
    assert agent.resource == "agent:shout"


def test_interrupted_graph_not_recorded_as_error(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    def pause(_: str) -> str:
        raise GraphInterrupt(())

    with agentlease.task("orders") as opened, pytest.raises(GraphInterrupt):
        RunnableLambda(pause, name="review").invoke("hi", config=with_handler())
    [agent] = of_action(in_session(audit_records, opened), "framework.agent")
    assert agent.outcome == "ok"
    assert agent.attributes["interrupted"] is True


# -- async runs ---------------------------------------------------------------------------


class ThreadRecordingHandler(AgentleaseCallbackHandler):
    """Remembers the threads LangChain calls it on."""

    def __init__(self, *, run_inline: bool) -> None:
        super().__init__(run_inline=run_inline)
        self.threads: set[int] = set()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.threads.add(threading.get_ident())
        super().on_chat_model_start(
            serialized,
            messages,
            run_id=run_id,
            parent_run_id=parent_run_id,
            tags=tags,
            metadata=metadata,
            **kwargs,
        )


async def test_async_run_on_executor_thread_finds_task(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    handler = ThreadRecordingHandler(run_inline=False)
    model = FakeListChatModel(responses=["hello"])
    async with agentlease.task("greet") as opened:
        await model.ainvoke("Hi", config=with_handler(handler))
    assert threading.get_ident() not in handler.threads
    [finding] = of_action(in_session(audit_records, opened), "finding")
    assert finding.resource == "llm:FakeListChatModel"


async def test_async_run_inline_finds_task(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    handler = ThreadRecordingHandler(run_inline=True)
    model = FakeListChatModel(responses=["hello"])
    async with agentlease.task("greet") as opened:
        await model.ainvoke("Hi", config=with_handler(handler))
    assert handler.threads == {threading.get_ident()}
    assert len(of_action(in_session(audit_records, opened), "finding")) == 1


@pytest.mark.xfail(
    sys.version_info < (3, 11),
    reason=(
        "before Python 3.11 asyncio cannot pass a context to new tasks, so LangGraph does not "
        "propagate callbacks to the model runs inside an async graph node"
    ),
    strict=True,
)
async def test_async_agent_run_recorded(
    runtime: agentlease.Runtime, model_server: ModelServer, audit_records: Records
) -> None:
    script_lookup(model_server)
    handler = AgentleaseCallbackHandler(run_inline=False)
    async with agentlease.task("orders") as opened:
        await build_secure_agent().ainvoke(
            {"messages": [HumanMessage("Where is my order?")]}, config=with_handler(handler)
        )
    records = in_session(audit_records, opened)
    assert len(of_action(records, "framework.agent")) == 1
    assert len(of_action(records, "framework.llm")) == 2
    assert len(of_action(records, "framework.tool")) == 1
    assert of_action(records, "finding") == []


async def test_concurrent_tasks_keep_their_runs(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    async def run(name: str) -> agentlease.Task:
        model = FakeListChatModel(responses=["hello"])
        async with agentlease.task(name) as opened:
            await model.ainvoke(
                "Hi", config=with_handler(AgentleaseCallbackHandler(run_inline=False))
            )
        return opened

    tasks = await asyncio.gather(run("first"), run("second"))
    for opened in tasks:
        assert len(of_action(in_session(audit_records, opened), "finding")) == 1


# -- registration -------------------------------------------------------------------------


def test_instrument_records_without_config(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    model = FakeListChatModel(responses=["hello"])
    with instrument(), agentlease.task("greet") as opened:
        model.invoke("Hi")
    assert len(of_action(in_session(audit_records, opened), "finding")) == 1


def test_uninstrument_stops_records(runtime: agentlease.Runtime, audit_records: Records) -> None:
    model = FakeListChatModel(responses=["hello"])
    registration = instrument()
    registration.uninstrument()
    with agentlease.task("greet") as opened:
        model.invoke("Hi")
    assert not registration.active
    assert of_action(in_session(audit_records, opened), "finding") == []


def test_nested_instrument_keeps_outer_registration() -> None:
    with instrument() as outer:
        with instrument() as inner:
            assert inner.handler is outer.handler
        assert outer.active
    assert not outer.active


def test_uninstrument_twice_does_nothing() -> None:
    with instrument() as outer:
        inner = instrument()
        inner.uninstrument()
        inner.uninstrument()
        assert outer.active


async def test_instrument_reaches_async_tasks(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    model = FakeListChatModel(responses=["hello"])

    async def run() -> agentlease.Task:
        async with agentlease.task("greet") as opened:
            await model.ainvoke("Hi")
        return opened

    with instrument():
        opened = await asyncio.create_task(run())
    assert len(of_action(in_session(audit_records, opened), "finding")) == 1


def test_instrumented_and_explicit_handlers_record_once(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    chain = RunnableLambda(shout) | FakeListChatModel(responses=["hello"])
    with instrument(), agentlease.task("greet") as opened:
        chain.invoke("Hi", config=with_handler())
        plain_lookup.invoke({"order_id": "A-1"}, config=with_handler())
    records = in_session(audit_records, opened)
    assert len(of_action(records, "framework.llm")) == 1
    assert len(of_action(records, "framework.tool")) == 1
    assert len(of_action(records, "finding")) == 2


def test_instrument_reaches_nested_tool_runs(
    runtime: agentlease.Runtime, audit_records: Records
) -> None:
    def look_up(order_id: str) -> str:
        return plain_lookup.invoke({"order_id": order_id})

    with instrument(), agentlease.task("orders") as opened:
        RunnableLambda(look_up).invoke("A-1")
    [record] = of_action(in_session(audit_records, opened), "framework.tool")
    assert record.attributes["parent_run_id"] is not None


def test_docstring_examples_run(runtime: agentlease.Runtime) -> None:
    results = doctest.testmod(callbacks, raise_on_error=False)
    assert results.attempted > 0
    assert results.failed == 0


# -- secrets ------------------------------------------------------------------------------


def test_audit_records_leak_no_grant_token(
    runtime: agentlease.Runtime,
    model_server: ModelServer,
    audit_records: Records,
    audit_path: Path,
) -> None:
    script_lookup(model_server)
    with instrument(), agentlease.task("orders") as opened:
        build_secure_agent().invoke({"messages": [HumanMessage("Where is my order?")]})
    tokens = [grant.token for grant in opened.grants]
    assert tokens
    framework = [r for r in audit_records() if r.action.startswith("framework.")]
    assert framework
    for record in framework:
        text = record.model_dump_json()
        for token in tokens:
            assert token not in text
            assert token.split(".")[2] not in text
    written = audit_path.read_text()
    for token in tokens:
        assert token not in written


def test_audit_records_leak_no_prompt_or_tool_values(
    runtime: agentlease.Runtime, audit_records: Records, audit_path: Path
) -> None:
    model = scripted_fake_model(
        AIMessage(
            f"thinking {SECRET_RESULT}",
            tool_calls=[tool_call("plain_lookup", {"order_id": SECRET_ARGUMENT}, "call_1")],
        ),
        AIMessage(f"Shipped {SECRET_RESULT}."),
    )
    agent: Any = create_agent(model, [plain_lookup])
    with instrument(), agentlease.task("orders"):
        agent.invoke({"messages": [HumanMessage(SECRET_PROMPT)]})
    assert of_action(audit_records(), "framework.tool")
    written = audit_path.read_text()
    for secret in (SECRET_PROMPT, SECRET_ARGUMENT, SECRET_RESULT):
        assert secret not in written
    for record in audit_records():
        assert SECRET_ARGUMENT not in json.dumps(record.attributes)
