"""In-process cost: the headline calls with the network replaced by a canned response.

A loopback round trip costs hundreds of microseconds and varies from call to call, which
hides differences of a few microseconds. Here the provider returns a fixed `ChatResponse` at
once, after running the route's `httpx.Auth` so that the grant is still read per request, and
the LangChain floor returns a fixed `AIMessage`. What is left is the work each layer does:

- ``floor``: a trivial `BaseChatModel`, which is LangChain's own cost per ``invoke``.
- ``client_warm`` and ``client_first``: `ModelClient.chat` in a warm task and as the first
  call of a fresh task, which is agentlease's core without LangChain.
- ``secure_warm`` and ``secure_first``: `SecureChatModel.invoke` in the same two cases.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

import agentlease
from agentlease.messages import ChatChunk, ChatRequest, ChatResponse, Message, Usage
from agentlease.routing import Route
from benchmarks.harness import MODEL, PROMPT, build_runtime
from benchmarks.stats import Summary, compare, interleave, summarize, time_calls

__all__ = ["OVERHEAD_DIFFERENCES", "OVERHEAD_VARIANTS", "run_overhead"]

OVERHEAD_VARIANTS: dict[str, str] = {
    "floor": "trivial BaseChatModel, canned response",
    "client_warm": "ModelClient.chat, warm task",
    "client_first": "ModelClient.chat, first call of a task",
    "secure_warm": "SecureChatModel, warm task",
    "secure_first": "SecureChatModel, first call of a task",
}
"""Variant keys and their labels in the report, in report order."""

OVERHEAD_DIFFERENCES = {
    "SecureChatModel over the LangChain floor, warm": ("secure_warm", "floor"),
    "SecureChatModel over the LangChain floor, first call": ("secure_first", "floor"),
    "first call over warm call (ModelClient)": ("client_first", "client_warm"),
}
"""Named differences of variant medians in microseconds, computed round by round."""

RESPONSE_TEXT = "This is a scripted answer."

CHUNK = 20
"""Calls of one variant in a row before the next variant takes its turn."""


class CannedProvider:
    """A chat provider that returns a canned response after running the route's auth flow."""

    def __init__(self) -> None:
        self._request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")

    def chat(self, route: Route, request: ChatRequest, *, auth: httpx.Auth) -> ChatResponse:
        """Return the canned response after the auth flow has set the Authorization header."""
        next(auth.sync_auth_flow(self._request))
        return ChatResponse(
            message=Message(role="assistant", content=RESPONSE_TEXT),
            model=MODEL,
            route=route.name,
            provider=route.provider,
            finish_reason="stop",
            usage=Usage(input_tokens=6, output_tokens=5),
            id="chatcmpl-canned",
        )

    async def achat(self, route: Route, request: ChatRequest, *, auth: httpx.Auth) -> ChatResponse:
        """Return the canned response."""
        return self.chat(route, request, auth=auth)

    def stream(
        self, route: Route, request: ChatRequest, *, auth: httpx.Auth
    ) -> Iterator[ChatChunk]:
        """Streaming is not measured here."""
        raise NotImplementedError

    def astream(
        self, route: Route, request: ChatRequest, *, auth: httpx.Auth
    ) -> AsyncIterator[ChatChunk]:
        """Streaming is not measured here."""
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to close."""

    async def aclose(self) -> None:
        """Nothing to close."""


class CannedChatModel(BaseChatModel):
    """A chat model that returns a fixed message, to price LangChain's own work per call."""

    @property
    def _llm_type(self) -> str:
        return "canned-benchmark"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=RESPONSE_TEXT))])


def run_overhead(
    work_dir: Path, *, rounds: int, calls: int, warmup: int
) -> tuple[dict[str, Summary], dict[str, Summary]]:
    """Time every variant in interleaved rounds.

    Returns:
        Per variant, the summary of per-round medians in microseconds, and per named
        difference, the summary of per-round differences.
    """
    from agentlease_langchain import SecureChatModel

    runtime = build_runtime(
        "http://127.0.0.1:9/v1",
        work_dir / "overhead-audit.jsonl",
        providers={"openai": CannedProvider()},
    )
    floor = CannedChatModel()
    secure = SecureChatModel(runtime=runtime)
    client = agentlease.ModelClient("default", runtime=runtime)
    request = ChatRequest(messages=[Message(role="user", content=PROMPT)])

    warm_context = contextvars.Context()
    warm_scope = agentlease.task("bench-overhead-warm", runtime=runtime)
    warm_context.run(warm_scope.__enter__)

    def first_calls(call: Callable[[], object]) -> Callable[[int], list[float]]:
        def run(count: int) -> list[float]:
            durations: list[float] = []
            for _ in range(count):
                with agentlease.task("bench-overhead-first", runtime=runtime):
                    durations.extend(time_calls(call, 1))
            return durations

        return run

    variants: dict[str, Callable[[int], list[float]]] = {
        "floor": lambda n: time_calls(lambda: floor.invoke(PROMPT), n),
        "client_warm": lambda n: warm_context.run(time_calls, lambda: client.chat(request), n),
        "client_first": first_calls(lambda: client.chat(request)),
        "secure_warm": lambda n: warm_context.run(time_calls, lambda: secure.invoke(PROMPT), n),
        "secure_first": first_calls(lambda: secure.invoke(PROMPT)),
    }
    try:
        for run in variants.values():
            run(warmup)
        per_round = interleave(variants, rounds=rounds, calls=calls, chunk=CHUNK)
    finally:
        warm_context.run(warm_scope.__exit__, None, None, None)
        runtime.close()

    latency = {name: summarize(values) for name, values in per_round.items()}
    differences = compare(per_round, OVERHEAD_DIFFERENCES, ratio=False)
    return latency, differences
