"""Helpers shared by the LlamaIndex adapter tests."""

from __future__ import annotations

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode


class FixedRetriever(BaseRetriever):
    """A retriever that returns the same nodes for every query."""

    def __init__(self, nodes: list[TextNode]) -> None:
        super().__init__()
        self._nodes = nodes

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [NodeWithScore(node=node, score=1.0) for node in self._nodes]


def labelled_node(text: str, data_class: str | None, node_id: str) -> TextNode:
    """Return a text node with a `data_class` metadata label (or none)."""
    metadata = {} if data_class is None else {"data_class": data_class}
    return TextNode(text=text, id_=node_id, metadata=metadata)
