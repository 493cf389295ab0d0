"""The conformance scenarios for the LangChain adapter.

Agents are built with `langchain.agents.create_agent` around `SecureChatModel`, with tools
guarded by `secure_tool`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

from conformance_scenarios import AdapterConformance, AgentRun, ToolResult
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

import agentlease
from agentlease_langchain import SecureChatModel, secure_tool

Risk = Literal["low", "medium", "high"]


def agent_run(state: dict[str, Any]) -> AgentRun:
    """Return the final text and the tool results of a finished agent's state."""
    messages = state["messages"]
    final = messages[-1]
    assert isinstance(final, AIMessage)
    results = [
        ToolResult(str(message.name), message.text, message.status == "error")
        for message in messages
        if isinstance(message, ToolMessage)
    ]
    return AgentRun(final.text, results)


class TestLangChainConformance(AdapterConformance):
    def chat_model(self, runtime: agentlease.Runtime) -> SecureChatModel:
        return SecureChatModel(runtime=runtime)

    def guarded_tool(
        self, fn: Callable[..., Any], *, risk: str = "low", data_class: str | None = None
    ) -> Any:
        return secure_tool(fn, risk=cast("Risk", risk), data_class=data_class)

    def ask(self, model: SecureChatModel, prompt: str) -> str:
        return model.invoke(prompt).text

    async def aask(self, model: SecureChatModel, prompt: str) -> str:
        return (await model.ainvoke(prompt)).text

    def run_agent(self, model: SecureChatModel, tools: list[Any], prompt: str) -> AgentRun:
        agent = create_agent(model, tools)
        return agent_run(agent.invoke({"messages": [HumanMessage(prompt)]}))

    async def arun_agent(self, model: SecureChatModel, tools: list[Any], prompt: str) -> AgentRun:
        agent = create_agent(model, tools)
        return agent_run(await agent.ainvoke({"messages": [HumanMessage(prompt)]}))

    def stream_reply(self, model: SecureChatModel, prompt: str) -> list[str]:
        return [chunk.text for chunk in model.stream(prompt)]

    async def astream_reply(self, model: SecureChatModel, prompt: str) -> list[str]:
        return [chunk.text async for chunk in model.astream(prompt)]
