"""Task benchmarks: task throughput, memory over a long run, and concurrent tasks.

- Throughput: tasks per second that each open, make one `SecureChatModel.invoke` and close.
  Rounds alternate two audit fsync modes: the default ``flush``, where every top-level task
  fsyncs the audit file when it closes, and ``never``.
- Memory: many tasks that each open, make one policy decision, mint a grant and close, with
  no model call. The broker, its revocation list and the decision cache run on a fake clock
  that moves one second per task, so revocation entries and cached decisions reach their
  expiry within the run instead of after minutes of real time. Checkpoints record the
  process's resident set size, the memory traced by `tracemalloc`, and the sizes of the
  revocation list and the decision cache.
- Concurrency: 200 asyncio tasks on one event loop make five calls each, through a bare
  `httpx.AsyncClient`, through `ChatOpenAI.ainvoke`, and through `SecureChatModel.ainvoke`
  inside one agentlease task each, alternating round by round. Every secured request names its
  task in the prompt. The server records the Authorization header of each, and every grant is
  verified (signature, issuer, audience) and its ``task_id`` compared with the task that sent
  it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import agentlease
from agentlease.errors import GrantError
from agentlease.grants import GrantVerifier, InMemoryRevocationList, LocalBroker
from agentlease.policy import CachingPolicyEngine, CedarEngine
from agentlease.testing import FrozenClock
from benchmarks.calls import chat_body
from benchmarks.harness import MODEL, PROMPT, bench_route, build_runtime
from benchmarks.server import ServerProcess
from benchmarks.stats import Summary, summarize

__all__ = [
    "CONCURRENCY_VARIANTS",
    "ConcurrencyResult",
    "MemoryCheckpoint",
    "MemoryResult",
    "run_concurrency",
    "run_memory",
    "run_throughput",
]

_TASK_MARK = re.compile(r"\[task ([0-9a-f]+) call (\d+)\]")


# -- throughput ------------------------------------------------------------------------------


def run_throughput(
    server: ServerProcess, work_dir: Path, *, rounds: int, tasks: int, warmup: int
) -> dict[str, Summary]:
    """Return tasks per second (open, one call, close) per audit fsync mode."""
    from agentlease_langchain import SecureChatModel

    runtimes = {
        "flush": build_runtime(server.url, work_dir / "throughput-flush.jsonl", fsync="flush"),
        "never": build_runtime(server.url, work_dir / "throughput-never.jsonl", fsync="never"),
    }
    models = {mode: SecureChatModel(runtime=runtime) for mode, runtime in runtimes.items()}
    per_round: dict[str, list[float]] = {mode: [] for mode in runtimes}

    def run(mode: str, count: int) -> float:
        runtime, model = runtimes[mode], models[mode]
        start = time.perf_counter_ns()
        for _ in range(count):
            with agentlease.task("bench-throughput", runtime=runtime):
                model.invoke(PROMPT)
        return count / ((time.perf_counter_ns() - start) / 1e9)

    try:
        for mode in runtimes:
            run(mode, warmup)
        server.reset()
        modes = list(runtimes)
        for index in range(rounds):
            for mode in modes[index % 2 :] + modes[: index % 2]:
                per_round[mode].append(run(mode, tasks))
            server.reset()
    finally:
        for runtime in runtimes.values():
            runtime.close()
    return {mode: summarize(values) for mode, values in per_round.items()}


# -- memory ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryCheckpoint:
    """Memory after a number of tasks.

    Attributes:
        tasks: Tasks completed so far.
        rss_mib: The process's resident set size in MiB.
        traced_mib: Memory allocated since `tracemalloc` started and still alive, in MiB.
        revocations: Entries in the broker's revocation list.
        cached_decisions: Entries in the decision cache.
        tasks_per_second: The rate since the previous checkpoint, tracemalloc included.
    """

    tasks: int
    rss_mib: float
    traced_mib: float
    revocations: int
    cached_decisions: int
    tasks_per_second: float


@dataclass
class MemoryResult:
    """The memory run: its settings and checkpoints."""

    tasks: int
    seconds_per_task: float
    max_lifetime: int
    leeway: int
    decision_ttl: float
    decision_maxsize: int
    checkpoints: list[MemoryCheckpoint] = field(default_factory=list[MemoryCheckpoint])


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import resource

        # NOTE: without /proc this is the peak resident size, which never goes down.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_memory(
    work_dir: Path, *, tasks: int, checkpoints: int, warmup: int, decision_maxsize: int = 4096
) -> MemoryResult:
    """Run `tasks` tasks that each decide, mint and close, and record memory at checkpoints.

    Each task has its own name, so each sends the policy a request that the cache has not seen.
    The decision cache fills up, and its maximum size is what keeps its memory flat.
    """
    clock = FrozenClock(time.time())
    result = MemoryResult(
        tasks=tasks,
        seconds_per_task=1.0,
        max_lifetime=60,
        leeway=5,
        decision_ttl=30.0,
        decision_maxsize=decision_maxsize,
    )
    revocations = InMemoryRevocationList(clock=clock, prune_interval=60.0)
    broker = LocalBroker(
        revocations=revocations,
        max_lifetime=result.max_lifetime,
        leeway=result.leeway,
        clock=clock,
    )
    policy = CachingPolicyEngine(
        CedarEngine(), ttl=result.decision_ttl, maxsize=decision_maxsize, clock=clock
    )
    route = bench_route("http://127.0.0.1:9/v1")
    runtime = build_runtime(
        route.base_url, work_dir / "memory-audit.jsonl", broker=broker, policy=policy
    )
    runtime.grant_lifetime = result.max_lifetime
    resource = runtime.route_resource(route)

    def run(first: int, count: int) -> None:
        for number in range(first, first + count):
            with agentlease.task(f"bench-memory-{number}", runtime=runtime) as task:
                task.decide([task.access_request("invoke_model", resource)])
                task.grant(route.audience, "invoke_model")
            clock.advance(result.seconds_per_task)

    try:
        run(0, warmup)
        gc.collect()
        tracemalloc.start()
        done = 0
        step = max(1, tasks // checkpoints)
        start = time.perf_counter_ns()
        result.checkpoints.append(_checkpoint(0, revocations, policy, 0.0))
        while done < tasks:
            count = min(step, tasks - done)
            run(warmup + done, count)
            done += count
            rate = count / ((time.perf_counter_ns() - start) / 1e9)
            result.checkpoints.append(_checkpoint(done, revocations, policy, rate))
            start = time.perf_counter_ns()
    finally:
        tracemalloc.stop()
        runtime.close()
    return result


def _checkpoint(
    done: int, revocations: InMemoryRevocationList, policy: CachingPolicyEngine, rate: float
) -> MemoryCheckpoint:
    gc.collect()
    return MemoryCheckpoint(
        tasks=done,
        rss_mib=_rss_mib(),
        traced_mib=tracemalloc.get_traced_memory()[0] / 2**20,
        revocations=len(revocations),
        cached_decisions=len(policy),
        tasks_per_second=rate,
    )


# -- concurrency -----------------------------------------------------------------------------


CONCURRENCY_VARIANTS: dict[str, str] = {
    "bare": "bare httpx.AsyncClient (pool limits as agentlease)",
    "chat_openai": "ChatOpenAI.ainvoke",
    "secure": "SecureChatModel.ainvoke, one agentlease task each",
}
"""Variant keys of the concurrent run and their labels in the report, in report order."""

# The pool limits agentlease's providers use, so the bare variant differs only in the client.
_POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


@dataclass
class ConcurrencyResult:
    """The concurrent run.

    Attributes:
        tasks: Concurrent tasks per round.
        calls_per_task: Calls each task makes.
        calls_per_second: Per variant, the summary of per-round calls per second.
        requests_checked: Requests of the secured variant whose grant was verified and whose
            ``task_id`` matched the task that sent it.
        mismatches: Requests whose grant failed verification or named another task.
        missing: Calls the secured variant made that the server did not record.
        distinct_grants: Distinct grants among the checked requests.
    """

    tasks: int
    calls_per_task: int
    calls_per_second: dict[str, Summary] = field(default_factory=dict[str, Summary])
    requests_checked: int = 0
    mismatches: int = 0
    missing: int = 0
    distinct_grants: int = 0


def run_concurrency(
    server: ServerProcess, work_dir: Path, *, rounds: int, tasks: int, calls: int
) -> ConcurrencyResult:
    """Run `rounds` interleaved rounds of `tasks` concurrent tasks making `calls` calls each."""
    from langchain_openai import ChatOpenAI

    from agentlease_langchain import SecureChatModel

    broker = LocalBroker()
    runtime = build_runtime(server.url, work_dir / "concurrency-audit.jsonl", broker=broker)
    secure = SecureChatModel(runtime=runtime)
    chat_openai = ChatOpenAI(model=MODEL, base_url=server.url, api_key="dummy")
    route = bench_route(server.url)
    verifier = GrantVerifier(issuer=broker.issuer, keys=[broker.signing_key])
    result = ConcurrencyResult(tasks=tasks, calls_per_task=calls)
    per_round: dict[str, list[float]] = {name: [] for name in CONCURRENCY_VARIANTS}
    body = json.dumps(chat_body([{"content": PROMPT, "role": "user"}])).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer dummy"}

    async def bare_task(client: httpx.AsyncClient) -> None:
        for _ in range(calls):
            response = await client.post(
                server.url + "/chat/completions", content=body, headers=headers
            )
            response.raise_for_status()
            json.loads(response.content)

    async def chat_openai_task() -> None:
        for _ in range(calls):
            await chat_openai.ainvoke(PROMPT)

    async def secure_task(number: int) -> str:
        async with agentlease.task(f"bench-concurrent-{number}", runtime=runtime) as task:
            for call in range(calls):
                await secure.ainvoke(f"{PROMPT} [task {task.id} call {call}]")
            return task.id

    async def one_round(name: str, client: httpx.AsyncClient, check: bool) -> None:
        if name == "secure":
            server.reset()
        start = time.perf_counter_ns()
        if name == "bare":
            await asyncio.gather(*(bare_task(client) for _ in range(tasks)))
        elif name == "chat_openai":
            await asyncio.gather(*(chat_openai_task() for _ in range(tasks)))
        else:
            task_ids = await asyncio.gather(*(secure_task(n) for n in range(tasks)))
        elapsed = (time.perf_counter_ns() - start) / 1e9
        if not check:
            return
        per_round[name].append(tasks * calls / elapsed)
        if name == "secure":
            _check_grants(result, server.requests(), task_ids, calls, verifier, route.audience)

    async def main() -> None:
        names = list(CONCURRENCY_VARIANTS)
        async with httpx.AsyncClient(limits=_POOL_LIMITS) as client:
            try:
                for name in names:
                    await one_round(name, client, check=False)
                for index in range(rounds):
                    offset = index % len(names)
                    for name in names[offset:] + names[:offset]:
                        await one_round(name, client, check=True)
            finally:
                await chat_openai.root_async_client.close()

    try:
        asyncio.run(main())
    finally:
        runtime.close()
    result.calls_per_second = {name: summarize(values) for name, values in per_round.items()}
    return result


def _check_grants(
    result: ConcurrencyResult,
    recorded: list[tuple[str, str]],
    task_ids: list[str],
    calls: int,
    verifier: GrantVerifier,
    audience: str,
) -> None:
    """Verify the grant of every recorded request and match its task id to the sender's."""
    expected = {(task_id, call) for task_id in task_ids for call in range(calls)}
    seen: set[tuple[str, int]] = set()
    tokens: set[str] = set()
    for authorization, text in recorded:
        mark = _TASK_MARK.search(text)
        token = authorization.removeprefix("Bearer ")
        if mark is None:
            result.mismatches += 1
            continue
        sender = (mark.group(1), int(mark.group(2)))
        try:
            claims = verifier.verify(token, audience=audience)
        except GrantError:
            result.mismatches += 1
            continue
        if claims.task_id != sender[0]:
            result.mismatches += 1
            continue
        seen.add(sender)
        tokens.add(token)
        result.requests_checked += 1
    result.missing += len(expected - seen)
    result.distinct_grants += len(tokens)
