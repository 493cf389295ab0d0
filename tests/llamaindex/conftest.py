"""Fixtures for the LlamaIndex adapter: a SecureLLM on the shared runtime, and audit handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import agentlease
from agentlease.audit import AuditRecord
from agentlease_llamaindex import Instrumentation, SecureLLM, instrument


@pytest.fixture
def llm(runtime: agentlease.Runtime) -> SecureLLM:
    """A SecureLLM for the `default` route group of the test runtime."""
    return SecureLLM("default", runtime=runtime)


@pytest.fixture
def instrumentation() -> Iterator[Instrumentation]:
    """agentlease's handlers on LlamaIndex's root dispatcher, removed after the test."""
    with instrument() as handle:
        yield handle


@pytest.fixture
def actions(audit_records: Callable[[], list[AuditRecord]]) -> Callable[[str], list[AuditRecord]]:
    """Return the audit records with one action, in order."""
    return lambda action: [record for record in audit_records() if record.action == action]
