"""The public names of agentlease_langchain, and the examples in its docstrings."""

from __future__ import annotations

import doctest
import socket

import pytest
from pytest_socket import SocketBlockedError

import agentlease
import agentlease_langchain
from agentlease_langchain import middleware, tools


def test_package_exports_pinned_names() -> None:
    assert agentlease_langchain.__all__ == [
        "AgentleaseCallbackHandler",
        "Instrumentation",
        "SecureChatModel",
        "SecureTool",
        "ToolCallDenied",
        "instrument",
        "secure_tool",
    ]


def test_middleware_exports_pinned_names() -> None:
    assert middleware.__all__ == ["AgentleaseMiddleware", "ToolOptions"]


@pytest.mark.parametrize("module", [tools, middleware])
def test_docstring_examples_run(runtime: agentlease.Runtime, module: object) -> None:
    results = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert results.attempted > 0
    assert results.failed == 0


@pytest.mark.disable_socket
def test_disable_socket_marker_blocks_sockets() -> None:
    # The standard unit tests rely on this marker to prove they make no network call.
    with pytest.warns(UserWarning, match="socket"), pytest.raises(SocketBlockedError):
        socket.socket()
