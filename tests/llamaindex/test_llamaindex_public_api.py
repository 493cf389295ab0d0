"""The public API of agentlease_llamaindex: exported names and documented examples."""

from __future__ import annotations

import doctest

import agentlease_llamaindex
from agentlease_llamaindex import instrumentation, llms, postprocessors, tools

EXPORTED = [
    "AuditEventHandler",
    "AuditSpanHandler",
    "DataClassLabeler",
    "DataClassRetriever",
    "Instrumentation",
    "SecureFunctionTool",
    "SecureLLM",
    "SecureTool",
    "denial_message",
    "instrument",
    "secure_function_tool",
    "secure_tool",
]


def test_all_pinned() -> None:
    assert agentlease_llamaindex.__all__ == EXPORTED


def test_all_sorted() -> None:
    assert agentlease_llamaindex.__all__ == sorted(agentlease_llamaindex.__all__)


def test_all_names_exist() -> None:
    for name in agentlease_llamaindex.__all__:
        assert hasattr(agentlease_llamaindex, name)


def test_examples_run() -> None:
    for module in (instrumentation, llms, postprocessors, tools):
        result = doctest.testmod(module)

        assert result.failed == 0
        assert result.attempted > 0
