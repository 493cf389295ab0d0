"""Canary tests: the grant tokens of a task never reach LangChain callbacks, reprs or messages.

Each test makes real calls inside a task, then looks for every grant token the task minted in
one channel that LangChain exposes to tracers, loggers or the model.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.tools import tool

import agentlease
from agentlease.testing import ModelServer
from agentlease_langchain import SecureChatModel, secure_tool


class RecordingHandler(BaseCallbackHandler):
    """Keeps the repr of every callback payload."""

    def __init__(self) -> None:
        self.payloads: list[str] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self.payloads.append(repr((serialized, messages, kwargs)))

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.payloads.append(repr((token, kwargs)))

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.payloads.append(repr((response, kwargs)))

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
        self.payloads.append(repr((serialized, input_str, kwargs)))

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        self.payloads.append(repr((output, kwargs)))


@tool
def lookup_order(order_id: str) -> str:
    """Return the status of an order."""
    return f"order {order_id} shipped"


def _tokens(task: agentlease.Task) -> list[str]:
    tokens = [grant.token for grant in task.grants]
    assert tokens, "the task minted no grant, so the test would prove nothing"
    return tokens


def _assert_absent(tokens: list[str], text: str) -> None:
    for token in tokens:
        assert token not in text
        # The signature alone is as secret as the token.
        assert token.rsplit(".", 1)[-1] not in text


def test_grant_token_sent_only_in_authorization_header(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    with agentlease.task("canary") as opened:
        SecureChatModel().invoke("Hello")
    (request,) = model_server.requests
    assert request.headers["authorization"] == f"Bearer {opened.grants[0].token}"
    _assert_absent(_tokens(opened), repr(request.json))


def test_grant_token_absent_from_callback_payloads(runtime: agentlease.Runtime) -> None:
    handler = RecordingHandler()
    model = SecureChatModel(tags=["canary"], metadata={"team": "support"})
    config: Any = {"callbacks": [handler]}
    with agentlease.task("canary") as opened:
        model.invoke("Hello", config=config)
        list(model.stream("Hello again", config=config))
        secure_tool(lookup_order).invoke(
            {"type": "tool_call", "name": "lookup_order", "args": {"order_id": "A-1"}, "id": "c1"},
            config=config,
        )
    assert len(handler.payloads) > 4
    _assert_absent(_tokens(opened), "\n".join(handler.payloads))


def test_grant_token_absent_from_model_repr_and_dumpd(runtime: agentlease.Runtime) -> None:
    model = SecureChatModel(runtime=runtime)
    with agentlease.task("canary") as opened:
        model.invoke("Hello")
    exposed = [repr(model), str(model), repr(dumpd(model)), repr(model.model_dump())]
    _assert_absent(_tokens(opened), "\n".join(exposed))


def test_grant_token_absent_from_messages(runtime: agentlease.Runtime) -> None:
    model = SecureChatModel()
    with agentlease.task("canary") as opened:
        message = model.invoke("Hello")
        chunks = list(model.stream("Hello"))
        tool_message = secure_tool(lookup_order).invoke(
            {"type": "tool_call", "name": "lookup_order", "args": {"order_id": "A-1"}, "id": "c1"}
        )
    exposed = [repr(message), repr(chunks), repr(tool_message)]
    _assert_absent(_tokens(opened), "\n".join(exposed))


@pytest.mark.parametrize("field", ["api_key", "openai_api_key"])
def test_static_key_argument_rejected_not_stored(field: str) -> None:
    with pytest.raises(agentlease.ConfigurationError) as caught:
        SecureChatModel(**{field: "sk-canary-0001"})
    assert "sk-canary-0001" not in str(caught.value)
