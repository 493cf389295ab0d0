"""LangChain's standard chat model unit tests, with sockets disabled."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from agentlease import Route, Runtime
from agentlease.audit import AuditLog, MemoryAuditSink
from agentlease_langchain import SecureChatModel

# Nothing listens here: the unit tests build models and never call them.
_UNUSED_URL = "http://127.0.0.1:9/v1"

_runtime: Runtime | None = None


def unit_runtime() -> Runtime:
    """Return one runtime for every unit test model, with a route that is never called."""
    global _runtime
    if _runtime is None:
        route = Route(name="unit", base_url=_UNUSED_URL, model="unit-model", groups=("default",))
        _runtime = Runtime(routes=[route], audit=AuditLog(MemoryAuditSink()))
    return _runtime


@pytest.mark.disable_socket
class TestSecureChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[SecureChatModel]:
        return SecureChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "default", "runtime": unit_runtime()}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # SecureChatModel rejects api_key, timeout and max_retries by design: credentials,
        # timeouts and fallbacks belong to routes, and a silently ignored key would mislead.
        params = super().standard_chat_model_params
        for name in ("api_key", "timeout", "max_retries"):
            params.pop(name)
        return params

    @property
    def supports_json_mode(self) -> bool:
        return True
