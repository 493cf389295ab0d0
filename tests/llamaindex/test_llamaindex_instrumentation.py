"""Instrumentation handlers: framework records, bypass findings and streaming usage."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.llms import MockLLM
from llama_index.core.tools import FunctionTool
from llamaindex_helpers import FixedRetriever, labelled_node
from pydantic import BaseModel

import agentlease
from agentlease.audit import AuditRecord
from agentlease.errors import NoPermittedRouteError, StreamInterrupted
from agentlease.testing import ModelServer, Reply
from agentlease_llamaindex import (
    AuditSpanHandler,
    Instrumentation,
    SecureLLM,
    instrument,
    secure_tool,
)

Actions = Callable[[str], list[AuditRecord]]


class Song(BaseModel):
    """A song."""

    title: str
    year: int


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def shout(text: str) -> str:
    """Return the text in capitals."""
    return text.upper()


# -- registration --------------------------------------------------------------------------


def test_instrument_is_idempotent(instrumentation: Instrumentation) -> None:
    with instrument() as again:
        handlers = [h for h in get_dispatcher().span_handlers if isinstance(h, AuditSpanHandler)]

        assert again is instrumentation
        assert len(handlers) == 1


def test_inner_release_keeps_outer(instrumentation: Instrumentation) -> None:
    with instrument():
        pass

    assert instrumentation.active


def test_uninstrument_removes_handlers() -> None:
    handle = instrument()

    handle.uninstrument()

    assert not handle.active
    assert handle.event_handler not in get_dispatcher().event_handlers


def test_uninstrument_twice_is_harmless() -> None:
    handle = instrument()

    handle.uninstrument()
    handle.uninstrument()

    assert not handle.active


# -- bypass findings -----------------------------------------------------------------------


def test_plain_llm_in_task_is_finding(
    runtime: agentlease.Runtime, instrumentation: Instrumentation, actions: Actions
) -> None:
    with agentlease.task("research"):
        MockLLM().complete("hello")

    (finding,) = actions("finding")
    assert finding.resource == "llm:MockLLM"
    assert finding.credential is not None
    assert finding.credential.mode == "unmediated"
    assert finding.attributes["finding"] == "unmediated_llm_call"


def test_nested_plain_llm_calls_one_finding(
    runtime: agentlease.Runtime, instrumentation: Instrumentation, actions: Actions
) -> None:
    with agentlease.task("research"):
        MockLLM().chat(user("hello"))

    assert len(actions("finding")) == 1
    assert len(actions("framework.llm")) == 1


def test_llm_built_before_instrument_seen(runtime: agentlease.Runtime, actions: Actions) -> None:
    plain = MockLLM()

    with instrument(), agentlease.task("research"):
        plain.complete("hello")

    assert len(actions("finding")) == 1


def test_secure_llm_is_not_finding(
    llm: SecureLLM, instrumentation: Instrumentation, actions: Actions
) -> None:
    with agentlease.task("research"):
        llm.chat(user("hello"))

    assert actions("finding") == []
    (record,) = actions("framework.llm")
    assert record.attributes["mediated"] is True


def test_structured_secure_llm_is_not_finding(
    llm: SecureLLM, model_server: ModelServer, instrumentation: Instrumentation, actions: Actions
) -> None:
    model_server.script(Reply.tool_call("Song", {"title": "Rain", "year": 1966}))

    with agentlease.task("research"):
        llm.as_structured_llm(Song).chat(user("Name a song"))

    assert actions("finding") == []
    assert [record.resource for record in actions("framework.llm")] == ["llm:StructuredLLM"]


def test_no_records_without_task(
    runtime: agentlease.Runtime, instrumentation: Instrumentation, actions: Actions
) -> None:
    MockLLM().complete("hello")

    assert actions("finding") == []
    assert actions("framework.llm") == []


# -- LLM calls -----------------------------------------------------------------------------


def test_llm_call_usage_recorded(
    llm: SecureLLM, instrumentation: Instrumentation, actions: Actions
) -> None:
    with agentlease.task("research"):
        llm.chat(user("hello"))

    (record,) = actions("framework.llm")
    (model_call,) = actions("model.call")
    assert record.usage == model_call.usage
    assert record.attributes["stream"] is False
    assert record.attributes["method"] == "chat"


def test_stream_usage_rebuilt_from_events(
    llm: SecureLLM, instrumentation: Instrumentation, actions: Actions
) -> None:
    with agentlease.task("research"):
        responses = list(llm.stream_chat(user("stream this please")))

    (record,) = actions("framework.llm")
    (model_call,) = actions("model.call")
    assert record.attributes["stream"] is True
    assert record.attributes["chunks"] == len(responses)
    assert "time_to_first_chunk_ms" in record.attributes
    assert record.usage is not None
    assert record.usage == model_call.usage


async def test_async_stream_usage_rebuilt(
    llm: SecureLLM, instrumentation: Instrumentation, actions: Actions
) -> None:
    async with agentlease.task("research"):
        async for _ in await llm.astream_complete("stream this please"):
            pass

    (record,) = actions("framework.llm")
    assert record.attributes["method"] == "astream_complete"
    assert record.usage == actions("model.call")[0].usage


def test_stream_closed_early_recorded(
    llm: SecureLLM, instrumentation: Instrumentation, actions: Actions
) -> None:
    with agentlease.task("research"):
        stream = llm.stream_chat(user("a long answer to stop early"))
        next(stream)
        stream.close()

    (record,) = actions("framework.llm")
    assert record.outcome == "ok"
    assert record.attributes["stream_closed_early"] is True


def test_stream_failure_recorded(
    llm: SecureLLM, model_server: ModelServer, instrumentation: Instrumentation, actions: Actions
) -> None:
    model_server.script(Reply.cut_stream(2))

    with agentlease.task("research"), pytest.raises(StreamInterrupted):
        list(llm.stream_chat(user("an answer that breaks")))

    (record,) = actions("framework.llm")
    assert record.outcome == "error"
    assert record.error is not None
    assert record.error.type.endswith("StreamInterrupted")


def test_denied_llm_call_recorded(
    llm: SecureLLM, instrumentation: Instrumentation, actions: Actions
) -> None:
    with agentlease.task("vault", data_class="restricted"), pytest.raises(NoPermittedRouteError):
        llm.chat(user("secret"))

    (record,) = actions("framework.llm")
    assert record.outcome == "denied"


# -- tools, retrieval ----------------------------------------------------------------------


def test_unguarded_tool_recorded(
    runtime: agentlease.Runtime, instrumentation: Instrumentation, actions: Actions
) -> None:
    with agentlease.task("research"):
        FunctionTool.from_defaults(shout).call(text="hi")

    (record,) = actions("framework.tool")
    assert record.resource == "tool:shout"
    assert record.attributes["guarded"] is False
    assert actions("tool.call") == []


def test_guarded_tool_recorded_once(
    runtime: agentlease.Runtime, instrumentation: Instrumentation, actions: Actions
) -> None:
    with agentlease.task("research"):
        secure_tool(shout).call(text="hi")

    (record,) = actions("framework.tool")
    assert record.attributes["guarded"] is True
    assert len(actions("tool.call")) == 1


def test_retrieval_recorded_with_labels(
    runtime: agentlease.Runtime, instrumentation: Instrumentation, actions: Actions
) -> None:
    retriever = FixedRetriever(
        [labelled_node("a", "public", "a"), labelled_node("b", "confidential", "b")]
    )

    with agentlease.task("research"):
        retriever.retrieve("query")

    (record,) = actions("framework.retrieve")
    assert record.resource == "retriever:FixedRetriever"
    assert record.attributes["nodes"] == 2
    assert record.attributes["data_classes"] == ["confidential", "public"]
