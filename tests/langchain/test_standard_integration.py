"""LangChain's standard chat model integration tests, run against the local model server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from agentlease import Route, Runtime
from agentlease.audit import AuditLog, MemoryAuditSink
from agentlease_langchain import SecureChatModel

# The variable tests/langchain/conftest.py sets; properties cannot reach fixtures.
SERVER_URL_ENV = "AGENTLEASE_LANGCHAIN_TEST_SERVER_URL"

_runtimes: dict[str, Runtime] = {}


def standard_runtime() -> Runtime:
    """Return the runtime of the standard tests, built once per server URL."""
    url = os.environ[SERVER_URL_ENV]
    runtime = _runtimes.get(url)
    if runtime is None:
        base = url.rsplit("/v1", 1)[0]
        routes = [
            Route(
                name="fast",
                base_url=f"{base}/fast/v1",
                model="fast-model",
                jurisdiction="us",
                clearance="internal",
                groups=("default",),
                priority=10,
            ),
            Route(
                name="secure",
                base_url=f"{base}/secure/v1",
                model="secure-model",
                jurisdiction="eu",
                clearance="confidential",
                groups=("default",),
                priority=20,
            ),
        ]
        runtime = Runtime(routes=routes, audit=AuditLog(MemoryAuditSink()))
        _runtimes[url] = runtime
    return runtime


@pytest.fixture(scope="module", autouse=True)
def _close_runtimes(server_url_env: str) -> Iterator[None]:
    yield
    for runtime in _runtimes.values():
        runtime.close()
    _runtimes.clear()


@pytest.mark.integration
class TestSecureChatModelIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[SecureChatModel]:
        return SecureChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "default", "runtime": standard_runtime()}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "secure-model"
