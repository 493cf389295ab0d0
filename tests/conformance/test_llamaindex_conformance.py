"""The conformance scenarios for the LlamaIndex adapter.

Agents are `FunctionAgent`s around `SecureLLM`, with tools guarded by `secure_tool`.
LlamaIndex agents are workflows and have no synchronous API, so the synchronous run drives
the async one with `asyncio.run`, as synchronous LlamaIndex applications do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import pytest
from conformance_scenarios import AdapterConformance, AgentRun, ToolResult
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, MessageRole

import agentlease
from agentlease_llamaindex import SecureLLM, secure_tool

# Building a workflow lists its members with inspect.getmembers, which reads every deprecated
# pydantic property of the agent (`__fields__`, `model_computed_fields`, ...) and so warns
# (llama-index-workflows 2.26 with pydantic 2.14).
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning")

Risk = Literal["low", "medium", "high"]


def user_message(prompt: str) -> Sequence[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=prompt)]


class TestLlamaIndexConformance(AdapterConformance):
    def chat_model(self, runtime: agentlease.Runtime) -> SecureLLM:
        return SecureLLM("default", runtime=runtime)

    def guarded_tool(
        self, fn: Callable[..., Any], *, risk: str = "low", data_class: str | None = None
    ) -> Any:
        return secure_tool(fn, risk=cast("Risk", risk), data_class=data_class)

    def ask(self, model: SecureLLM, prompt: str) -> str:
        return model.chat(user_message(prompt)).message.content or ""

    async def aask(self, model: SecureLLM, prompt: str) -> str:
        return (await model.achat(user_message(prompt))).message.content or ""

    def run_agent(self, model: SecureLLM, tools: list[Any], prompt: str) -> AgentRun:
        return asyncio.run(self.arun_agent(model, tools, prompt))

    async def arun_agent(self, model: SecureLLM, tools: list[Any], prompt: str) -> AgentRun:
        agent = FunctionAgent(tools=tools, llm=model)
        handler = agent.run(user_msg=prompt)
        results: list[ToolResult] = []
        async for event in handler.stream_events():
            if isinstance(event, ToolCallResult):
                output = event.tool_output
                results.append(ToolResult(event.tool_name, str(output.content), output.is_error))
        final = await handler
        return AgentRun(final.response.content or "", results)

    def stream_reply(self, model: SecureLLM, prompt: str) -> list[str]:
        return [response.delta or "" for response in model.stream_chat(user_message(prompt))]

    async def astream_reply(self, model: SecureLLM, prompt: str) -> list[str]:
        responses = await model.astream_chat(user_message(prompt))
        return [response.delta or "" async for response in responses]
