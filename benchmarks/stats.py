"""Timing and summary statistics shared by every benchmark."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Summary", "compare", "interleave", "percentile", "summarize", "time_calls"]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the `fraction` quantile of `values`, interpolating linearly between ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = math.floor(position)
    upper = math.ceil(position)
    weight = position - lower
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


@dataclass(frozen=True, slots=True)
class Summary:
    """The median and spread of one figure over the rounds of a benchmark.

    Attributes:
        median: The median over rounds.
        p10: The 10th percentile over rounds.
        p90: The 90th percentile over rounds.
        rounds: How many rounds the figure comes from.
    """

    median: float
    p10: float
    p90: float
    rounds: int


def summarize(values: Sequence[float]) -> Summary:
    """Summarize one value per round."""
    if not values:
        return Summary(math.nan, math.nan, math.nan, 0)
    return Summary(
        statistics.median(values), percentile(values, 0.1), percentile(values, 0.9), len(values)
    )


def time_calls(function: Callable[[], object], count: int) -> list[float]:
    """Call `function` `count` times and return each call's duration in microseconds."""
    clock = time.perf_counter_ns
    durations: list[float] = []
    for _ in range(count):
        start = clock()
        function()
        durations.append((clock() - start) / 1000)
    return durations


def interleave(
    variants: Mapping[str, Callable[[int], list[float]]],
    *,
    rounds: int,
    calls: int,
    chunk: int,
    between: Callable[[], object] | None = None,
) -> dict[str, list[float]]:
    """Run variants in interleaved rounds and return, per variant, the median of each round.

    Each variant is a function that makes a number of calls and returns their durations. A
    round gives every variant `calls` calls, in chunks of `chunk` calls that alternate the
    variants in a rotating order. A burst of load from elsewhere on the machine therefore falls
    on every variant alike, while each chunk still runs one code path several times in a row.
    `between` runs after each round, untimed.
    """
    names = list(variants)
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        durations: dict[str, list[float]] = {name: [] for name in names}
        done = 0
        turn = 0
        while done < calls:
            count = min(chunk, calls - done)
            offset = turn % len(names)
            for name in names[offset:] + names[:offset]:
                durations[name].extend(variants[name](count))
            done += count
            turn += 1
        for name in names:
            per_round[name].append(statistics.median(durations[name]))
        if between is not None:
            between()
    return per_round


def compare(
    per_round: Mapping[str, Sequence[float]], pairs: Mapping[str, tuple[str, str]], *, ratio: bool
) -> dict[str, Summary]:
    """Summarize, per named pair of variants, their ratio or difference round by round."""
    summaries: dict[str, Summary] = {}
    for label, (first, second) in pairs.items():
        rounds = zip(per_round[first], per_round[second], strict=True)
        summaries[label] = summarize([a / b if ratio else a - b for a, b in rounds])
    return summaries
