"""The headline benchmark: one LangChain ``invoke`` through each way of reaching the same server.

Every variant sends one short user message to the same `ModelServer`, which runs in a child
process, and waits for the whole response. The variants:

- ``bare``: an `httpx.Client` POST of the same chat completions body, with its JSON response
  parsed. This is the floor of any client.
- ``langchain_floor``: a trivial `BaseChatModel` whose `_generate` makes that bare POST, so
  its time minus ``bare`` is what LangChain itself costs per ``invoke``.
- ``chat_openai``: `ChatOpenAI` from langchain-openai, pointed at the server with a dummy key.
- ``model_client``: agentlease's `ModelClient.chat` inside an open task, without LangChain.
- ``secure_warm``: `SecureChatModel.invoke` inside one long-lived task, so the grant and the
  policy decision come from their caches.
- ``secure_first``: `SecureChatModel.invoke` as the first call of a fresh task, which mints
  a grant. Opening and closing the task are outside the timed call. The decision cache is
  runtime-wide and keyed by the task's context, so a new task with the same context reuses it.

After a warm-up, rounds alternate the variants in chunks of `CHUNK` calls, and each round yields
one median per variant, so ratios compare variants measured under the same conditions.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

import agentlease
from agentlease.messages import ChatRequest, Message
from benchmarks.harness import MODEL, PROMPT, build_runtime
from benchmarks.server import ServerProcess
from benchmarks.stats import Summary, compare, interleave, summarize, time_calls

__all__ = ["VARIANTS", "CallResults", "run_calls"]

VARIANTS: dict[str, str] = {
    "bare": "bare httpx POST",
    "langchain_floor": "trivial BaseChatModel (bare POST)",
    "chat_openai": "ChatOpenAI (langchain-openai)",
    "model_client": "ModelClient.chat, warm task (no LangChain)",
    "secure_warm": "SecureChatModel, warm task",
    "secure_first": "SecureChatModel, first call of a task",
}
"""Variant keys and their labels in the report, in report order."""


class BareChatModel(BaseChatModel):
    """A chat model with nothing but one bare httpx POST, to price LangChain's own work."""

    url: str
    _client: httpx.Client = PrivateAttr(default_factory=httpx.Client)

    @property
    def _llm_type(self) -> str:
        return "bare-benchmark"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        body = chat_body([_wire_message(m) for m in messages])
        content = post_chat(self._client, self.url, body)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=content))])

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _wire_message(message: BaseMessage) -> dict[str, Any]:
    role = {"human": "user", "ai": "assistant"}.get(message.type, message.type)
    return {"content": message.content, "role": role}


def chat_body(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the chat completions body that ChatOpenAI sends for `messages`."""
    return {"model": MODEL, "stream": False, "messages": messages}


def post_chat(client: httpx.Client, url: str, body: dict[str, Any]) -> str:
    """POST a chat completions body and return the response text."""
    response = client.post(
        url + "/chat/completions",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": "Bearer dummy"},
    )
    response.raise_for_status()
    return json.loads(response.content)["choices"][0]["message"]["content"]


@dataclass
class CallResults:
    """The headline results.

    Attributes:
        latency: Per variant, the summary of its per-round medians, in microseconds.
        ratios: Per named ratio of two variants, the summary of its per-round values.
        differences: Per named difference of two variants, the summary of its per-round
            values, in microseconds.
        calls_per_round: Timed calls of each variant in each round.
        rounds: How many rounds ran.
        requests_checked: Grant-carrying requests the server recorded in the final check of
            the warm secured variant.
        grants_seen: Distinct grants among those requests.
    """

    latency: dict[str, Summary] = field(default_factory=dict[str, Summary])
    ratios: dict[str, Summary] = field(default_factory=dict[str, Summary])
    differences: dict[str, Summary] = field(default_factory=dict[str, Summary])
    calls_per_round: int = 0
    rounds: int = 0
    requests_checked: int = 0
    grants_seen: int = 0


CHUNK = 10
"""Calls of one variant in a row before the next variant takes its turn."""

RATIOS = {
    "secure_warm / chat_openai": ("secure_warm", "chat_openai"),
    "secure_first / chat_openai": ("secure_first", "chat_openai"),
    "secure_warm / langchain_floor": ("secure_warm", "langchain_floor"),
    "chat_openai / langchain_floor": ("chat_openai", "langchain_floor"),
    "model_client / bare": ("model_client", "bare"),
}
"""Named ratios of variant medians, computed round by round."""

DIFFERENCES = {
    "LangChain's own cost (langchain_floor - bare)": ("langchain_floor", "bare"),
    "agentlease core, warm (model_client - bare)": ("model_client", "bare"),
    "SecureChatModel, warm - floor (secure_warm - langchain_floor)": (
        "secure_warm",
        "langchain_floor",
    ),
    "first call extra (secure_first - secure_warm)": ("secure_first", "secure_warm"),
}
"""Named differences of variant medians in microseconds, computed round by round."""


def _build_variants(
    url: str, audit_path: Path
) -> tuple[dict[str, Callable[[int], list[float]]], Callable[[], None]]:
    from langchain_openai import ChatOpenAI

    from agentlease_langchain import SecureChatModel

    runtime = build_runtime(url, audit_path)
    bare_client = httpx.Client()
    bare_body = chat_body([{"content": PROMPT, "role": "user"}])
    floor = BareChatModel(url=url)
    chat_openai = ChatOpenAI(model=MODEL, base_url=url, api_key="dummy")
    secure = SecureChatModel(model="default", runtime=runtime)
    client = agentlease.ModelClient("default", runtime=runtime)
    request = ChatRequest(messages=[Message(role="user", content=PROMPT)])

    # The warm task stays open for the whole run in a context of its own, so the other
    # variants run with no task open and the fresh tasks are never its sub-tasks.
    warm_context = contextvars.Context()
    warm_scope = agentlease.task("bench-warm", runtime=runtime)
    warm_context.run(warm_scope.__enter__)

    def run_first(count: int) -> list[float]:
        durations: list[float] = []
        for _ in range(count):
            with agentlease.task("bench-first", runtime=runtime):
                durations.extend(time_calls(lambda: secure.invoke(PROMPT), 1))
        return durations

    variants: dict[str, Callable[[int], list[float]]] = {
        "bare": lambda n: time_calls(lambda: post_chat(bare_client, url, bare_body), n),
        "langchain_floor": lambda n: time_calls(lambda: floor.invoke(PROMPT), n),
        "chat_openai": lambda n: time_calls(lambda: chat_openai.invoke(PROMPT), n),
        "model_client": lambda n: warm_context.run(time_calls, lambda: client.chat(request), n),
        "secure_warm": lambda n: warm_context.run(time_calls, lambda: secure.invoke(PROMPT), n),
        "secure_first": run_first,
    }

    def close() -> None:
        warm_context.run(warm_scope.__exit__, None, None, None)
        bare_client.close()
        floor.close()
        chat_openai.root_client.close()
        runtime.close()

    return variants, close


def run_calls(
    server: ServerProcess,
    work_dir: Path,
    *,
    rounds: int,
    calls: int,
    warmup: int,
) -> CallResults:
    """Run the interleaved headline benchmark.

    Args:
        server: The model server process.
        work_dir: A directory for the audit file.
        rounds: How many rounds.
        calls: Timed calls of each variant per round, made in chunks of `CHUNK`.
        warmup: Untimed calls of each variant before the first round.
    """
    variants, close = _build_variants(server.url, work_dir / "calls-audit.jsonl")
    try:
        for run in variants.values():
            run(warmup)
        server.reset()
        per_round = interleave(
            variants, rounds=rounds, calls=calls, chunk=CHUNK, between=server.reset
        )
        variants["secure_warm"](calls)
        recorded = server.requests()
    finally:
        close()

    results = CallResults(calls_per_round=calls, rounds=rounds)
    results.latency = {name: summarize(values) for name, values in per_round.items()}
    results.ratios = compare(per_round, RATIOS, ratio=True)
    results.differences = compare(per_round, DIFFERENCES, ratio=False)

    bearer = [auth for auth, _ in recorded if auth.startswith("Bearer ey")]
    results.requests_checked = len(bearer)
    results.grants_seen = len(set(bearer))
    return results
