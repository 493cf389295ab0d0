"""DataClassLabeler and DataClassRetriever: routing follows the data class of retrieved nodes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore
from llamaindex_helpers import FixedRetriever, labelled_node
from pydantic import ValidationError

import agentlease
from agentlease.audit import AuditRecord
from agentlease.errors import TaskError
from agentlease.testing import ModelServer
from agentlease_llamaindex import DataClassLabeler, DataClassRetriever, SecureLLM

Actions = Callable[[str], list[AuditRecord]]


def scored(*labels: str | None) -> list[NodeWithScore]:
    return [
        NodeWithScore(node=labelled_node(f"text {index}", label, f"n{index}"), score=1.0)
        for index, label in enumerate(labels)
    ]


def test_labeler_raises_task_class(runtime: agentlease.Runtime) -> None:
    with agentlease.task("research") as task:
        DataClassLabeler().postprocess_nodes(scored("public", "confidential", None))

        assert task.data_class == "confidential"


def test_labeler_audits_source_node(runtime: agentlease.Runtime, actions: Actions) -> None:
    with agentlease.task("research"):
        DataClassLabeler().postprocess_nodes(scored("public", "confidential"))

    (record,) = actions("task.data_class_raised")
    assert record.resource == "node:n1"
    assert record.attributes == {"from": "internal", "to": "confidential"}


def test_labeler_returns_nodes_unchanged(runtime: agentlease.Runtime) -> None:
    nodes = scored("public", "internal")

    with agentlease.task("research"):
        result = DataClassLabeler().postprocess_nodes(nodes)

    assert result == nodes


def test_labeler_never_lowers_class(runtime: agentlease.Runtime) -> None:
    with agentlease.task("research", data_class="confidential") as task:
        DataClassLabeler().postprocess_nodes(scored("public"))

        assert task.data_class == "confidential"


def test_unknown_label_counts_as_restricted(runtime: agentlease.Runtime) -> None:
    with agentlease.task("research") as task:
        DataClassLabeler().postprocess_nodes(scored("top-secret"))

        assert task.data_class == "restricted"


def test_label_case_ignored(runtime: agentlease.Runtime) -> None:
    with agentlease.task("research") as task:
        DataClassLabeler().postprocess_nodes(scored(" Confidential "))

        assert task.data_class == "confidential"


def test_custom_metadata_key(runtime: agentlease.Runtime) -> None:
    node = labelled_node("text", None, "n0")
    node.metadata["sensitivity"] = "confidential"

    with agentlease.task("research") as task:
        DataClassLabeler(metadata_key="sensitivity").postprocess_nodes([NodeWithScore(node=node)])

        assert task.data_class == "confidential"


def test_default_class_for_unlabelled(runtime: agentlease.Runtime) -> None:
    with agentlease.task("research") as task:
        DataClassLabeler(default_class="confidential").postprocess_nodes(scored(None))

        assert task.data_class == "confidential"


def test_unknown_configured_class_rejected() -> None:
    with pytest.raises(ValidationError, match="Unknown data class"):
        DataClassLabeler(unknown_class="secret")


def test_no_task_high_label_raises(runtime: agentlease.Runtime) -> None:
    with pytest.raises(TaskError, match="no task is open"):
        DataClassLabeler().postprocess_nodes(scored("confidential"))


def test_no_task_internal_label_passes(runtime: agentlease.Runtime) -> None:
    assert DataClassLabeler().apply(scored("public", "internal")) == "internal"


async def test_async_postprocess_raises_class(runtime: agentlease.Runtime) -> None:
    async with agentlease.task("research") as task:
        await DataClassLabeler().apostprocess_nodes(scored("confidential"))

        assert task.data_class == "confidential"


def test_retriever_wrapper_raises_class(runtime: agentlease.Runtime) -> None:
    retriever = DataClassRetriever(FixedRetriever([labelled_node("memo", "confidential", "m1")]))

    with agentlease.task("research") as task:
        nodes = retriever.retrieve("memo")

        assert task.data_class == "confidential"
    assert [node.node.node_id for node in nodes] == ["m1"]


async def test_retriever_wrapper_async(runtime: agentlease.Runtime) -> None:
    retriever = DataClassRetriever(FixedRetriever([labelled_node("memo", "confidential", "m1")]))

    async with agentlease.task("research") as task:
        await retriever.aretrieve("memo")

        assert task.data_class == "confidential"


def test_routing_follows_retrieved_docs(llm: SecureLLM, model_server: ModelServer) -> None:
    retriever = DataClassRetriever(FixedRetriever([labelled_node("memo", "confidential", "m1")]))

    with agentlease.task("research"):
        llm.chat([ChatMessage(role="user", content="before")])
        retriever.retrieve("memo")
        llm.chat([ChatMessage(role="user", content="after")])

    paths = [request.path for request in model_server.requests]
    assert paths[0].startswith("/fast/")
    assert paths[1].startswith("/secure/")


def test_query_engine_routes_by_labels(llm: SecureLLM, model_server: ModelServer) -> None:
    engine = RetrieverQueryEngine.from_args(
        FixedRetriever([labelled_node("Q3 revenue was 12M.", "confidential", "r1")]),
        llm=llm,
        node_postprocessors=[DataClassLabeler()],
    )

    with agentlease.task("research"):
        response = engine.query("What was Q3 revenue?")

    assert model_server.requests[-1].path.startswith("/secure/")
    assert "Q3 revenue" in str(response)
