"""Data-class labels on retrieved nodes: routing follows the documents an agent reads.

`DataClassLabeler` reads each retrieved node's data class from its metadata and raises the
current task's data class to the highest one found. Every later model call in the task is
then routed to a model the policy clears for that class. `DataClassRetriever` applies the
labeller to any retriever, for code that uses retrievers without a query engine.
"""

from __future__ import annotations

import logging
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.bridge.pydantic import Field, field_validator
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from agentlease.errors import TaskError
from agentlease.routing import DATA_CLASSES, data_class_level
from agentlease.task import current_task

__all__ = ["DataClassLabeler", "DataClassRetriever"]

logger = logging.getLogger(__name__)

# Tasks opened implicitly around a single call start at this class, so data above it must
# not pass through with no task open.
_IMPLICIT_TASK_CLASS = "internal"


class DataClassLabeler(BaseNodePostprocessor):
    """A node postprocessor that raises the current task's data class from node labels.

    Nodes pass through unchanged. A label that is not a known data class counts as
    `unknown_class`, so a typo in a label never lowers the protection. With no task open,
    labels up to ``internal`` pass, and a higher label raises `TaskError`: a model call made
    next would open an implicit ``internal`` task and could send the data to a route that
    is not cleared for it.

    Args:
        metadata_key: The node metadata key that contains the data class.
        unknown_class: The class assumed for a label that is not a known data class.
        default_class: The class assumed for a node without a label, or None to ignore it.

    Example:
        >>> from agentlease_llamaindex import DataClassLabeler
        >>> labeler = DataClassLabeler(metadata_key="sensitivity")
        >>> labeler.metadata_key
        'sensitivity'
    """

    metadata_key: str = Field(
        default="data_class", description="The node metadata key that contains the data class."
    )
    unknown_class: str = Field(
        default="restricted",
        description="The class assumed for a label that is not a known data class.",
    )
    default_class: str | None = Field(
        default=None,
        description="The class assumed for a node without a label; None ignores such nodes.",
    )

    @field_validator("unknown_class", "default_class")
    @classmethod
    def _check_class(cls, value: str | None) -> str | None:
        if value is not None:
            data_class_level(value)
        return value

    @classmethod
    def class_name(cls) -> str:
        """Return the name LlamaIndex uses to serialize this class."""
        return "agentlease_DataClassLabeler"

    def label(self, node: NodeWithScore) -> str | None:
        """Return the data class of one node, or None when it has no label and no default."""
        value: Any = node.node.metadata.get(self.metadata_key)
        if value is None:
            return self.default_class
        label = str(value).strip().lower()
        if label in DATA_CLASSES:
            return label
        logger.debug(
            "node %s has unknown data class label; using %s", node.node.node_id, self.unknown_class
        )
        return self.unknown_class

    def apply(self, nodes: list[NodeWithScore]) -> str | None:
        """Raise the current task's data class to the highest label among `nodes`.

        Returns:
            The highest label found, or None when no node has one.

        Raises:
            TaskError: No task is open and a node is labelled above ``internal``.
        """
        highest: str | None = None
        source: NodeWithScore | None = None
        for node in nodes:
            label = self.label(node)
            if label is None:
                continue
            if highest is None or data_class_level(label) > data_class_level(highest):
                highest, source = label, node
        if highest is None or source is None:
            return None

        task = current_task()
        if task is None:
            if data_class_level(highest) > data_class_level(_IMPLICIT_TASK_CLASS):
                raise TaskError(
                    f"Retrieved node {source.node.node_id!r} is labelled {highest!r} but no "
                    "task is open; retrieve inside agentlease.task(...) so model calls are "
                    "routed for that data class."
                )
            return highest
        task.raise_data_class(highest, source=f"node:{source.node.node_id}")
        return highest

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        self.apply(nodes)
        return nodes

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        self.apply(nodes)
        return nodes


class DataClassRetriever(BaseRetriever):
    """A retriever that labels what another retriever returns; see `DataClassLabeler`.

    Args:
        retriever: The retriever to wrap.
        labeler: The labeller to apply; defaults to one reading the ``data_class`` key.
    """

    def __init__(
        self, retriever: BaseRetriever, *, labeler: DataClassLabeler | None = None
    ) -> None:
        super().__init__(  # pyright: ignore[reportUnknownMemberType]
            callback_manager=retriever.callback_manager
        )
        self._retriever = retriever
        self._labeler = labeler if labeler is not None else DataClassLabeler()

    @property
    def retriever(self) -> BaseRetriever:
        """The wrapped retriever."""
        return self._retriever

    @property
    def labeler(self) -> DataClassLabeler:
        """The labeller applied to every result."""
        return self._labeler

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        nodes = self._retriever.retrieve(query_bundle)
        self._labeler.apply(nodes)
        return nodes

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        nodes = await self._retriever.aretrieve(query_bundle)
        self._labeler.apply(nodes)
        return nodes
