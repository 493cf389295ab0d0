"""The results of one benchmark run, and the targets they are checked against."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from benchmarks.calls import CallResults
from benchmarks.stats import Summary
from benchmarks.tasks import ConcurrencyResult, MemoryResult

__all__ = ["Results", "Target", "evaluate_targets"]

WARM_BUDGET_US = 100.0
"""The bound, in microseconds, taken for "at most tens of microseconds" over the floor."""

FIRST_CALL_BUDGET_US = 300.0
"""The bound, in microseconds, taken for "a few hundred microseconds" for a first call."""

RSS_GROWTH_BUDGET_MIB = 2.0
"""The maximum growth of the resident set over the second half of the memory run, in MiB."""

TRACED_GROWTH_BUDGET_MIB = 0.5
"""The maximum growth of traced memory over the second half of the memory run, in MiB."""


@dataclass
class Results:
    """Everything one run measured."""

    profile: str
    started: str
    machine: dict[str, str]
    versions: dict[str, str]
    calls: CallResults
    overhead: dict[str, Summary]
    overhead_differences: dict[str, Summary]
    stages: dict[str, Summary]
    throughput: dict[str, Summary]
    memory: MemoryResult
    concurrency: ConcurrencyResult
    startup: dict[str, Summary]
    import_breakdown: list[tuple[str, float]]
    duration_s: float = 0.0
    targets: list[Target] = field(default_factory=list["Target"])

    def to_json(self) -> dict[str, Any]:
        """Return the results as plain JSON values."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Target:
    """One target and whether this run met it.

    Attributes:
        name: What the target asks.
        measured: The measured figure, formatted.
        met: Whether the figure meets the target.
    """

    name: str
    measured: str
    met: bool


def _second_half_growth(memory: MemoryResult) -> tuple[float, float]:
    checkpoints = memory.checkpoints
    if len(checkpoints) < 2:
        return math.nan, math.nan
    middle = checkpoints[len(checkpoints) // 2]
    last = checkpoints[-1]
    return last.rss_mib - middle.rss_mib, last.traced_mib - middle.traced_mib


def evaluate_targets(results: Results) -> list[Target]:
    """Check the run against the performance targets of agentlease."""
    ratios = results.calls.ratios
    differences = results.calls.differences
    overhead = results.overhead_differences
    targets: list[Target] = []

    for variant in ("secure_warm", "secure_first"):
        ratio = ratios[f"{variant} / chat_openai"]
        case = "warm task" if variant == "secure_warm" else "first call of a task"
        targets.append(
            Target(
                f"SecureChatModel ({case}) no slower than ChatOpenAI",
                f"{ratio.median:.2f}x ChatOpenAI's time",
                ratio.median <= 1.0,
            )
        )

    warm = overhead["SecureChatModel over the LangChain floor, warm"]
    targets.append(
        Target(
            "Warm SecureChatModel within tens of microseconds (under "
            f"{WARM_BUDGET_US:.0f} µs) of the bare request plus LangChain's own cost, "
            "measured without the network",
            f"{warm.median:.1f} µs over the floor",
            warm.median < WARM_BUDGET_US,
        )
    )
    headline = differences["SecureChatModel, warm - floor (secure_warm - langchain_floor)"]
    targets.append(
        Target(
            f"The same over the loopback network (under {WARM_BUDGET_US:.0f} µs)",
            f"{headline.median:.1f} µs over the floor "
            f"(p10 {headline.p10:.1f}, p90 {headline.p90:.1f})",
            headline.median < WARM_BUDGET_US,
        )
    )

    first = results.overhead["client_first"]
    targets.append(
        Target(
            "First call of a task (mint, decide, call, audit) within a few hundred "
            f"microseconds (under {FIRST_CALL_BUDGET_US:.0f} µs of agentlease's own work)",
            f"{first.median:.1f} µs for ModelClient.chat without the network",
            first.median < FIRST_CALL_BUDGET_US,
        )
    )

    rss_growth, traced_growth = _second_half_growth(results.memory)
    targets.append(
        Target(
            f"Memory flat over {results.memory.tasks:,} tasks (second half: RSS under "
            f"{RSS_GROWTH_BUDGET_MIB} MiB, traced under {TRACED_GROWTH_BUDGET_MIB} MiB growth)",
            f"RSS {rss_growth:+.2f} MiB, traced {traced_growth:+.2f} MiB",
            rss_growth < RSS_GROWTH_BUDGET_MIB and traced_growth < TRACED_GROWTH_BUDGET_MIB,
        )
    )

    concurrency = results.concurrency
    targets.append(
        Target(
            f"No task among {concurrency.tasks} concurrent ones receives another task's grant",
            f"{concurrency.requests_checked} requests verified, {concurrency.mismatches} "
            f"mismatched, {concurrency.missing} missing",
            concurrency.mismatches == 0
            and concurrency.missing == 0
            and concurrency.requests_checked > 0,
        )
    )
    return targets
