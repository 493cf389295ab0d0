"""A decision cache in front of any policy engine.

A task repeats the same requests again and again: the same agent, the same routes, the same
tools, the same context. `CachingPolicyEngine` keeps each decision for a fixed time, keyed by
`AccessRequest.cache_key`, so a warm decision is a dictionary lookup and only new questions
reach the engine. Decisions that carry errors are never cached, so a failing engine is asked
again on the next call instead of denying from memory until the entry expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

from agentlease.errors import ConfigurationError
from agentlease.policy.model import AccessRequest, Decision, PolicyEngine

__all__ = ["CachingPolicyEngine"]

_logger = logging.getLogger(__name__)


class CachingPolicyEngine:
    """Cache the decisions of another engine for `ttl` seconds, keeping at most `maxsize`.

    Requests of one batch that miss the cache go to the wrapped engine in a single call, each
    distinct request once. When the cache is full, the least recently used decision is dropped.
    The cache is thread-safe. Policies that change while decisions are cached take effect when
    the entries expire, or at once after `clear`.

    Args:
        engine: The engine that decides requests the cache does not hold.
        ttl: Seconds a decision stays valid.
        maxsize: The maximum number of cached decisions.
        clock: Returns the current time in seconds; any monotonic clock works.

    Raises:
        ConfigurationError: ``ttl`` is not positive or ``maxsize`` is below 1.
    """

    def __init__(
        self,
        engine: PolicyEngine,
        *,
        ttl: float = 60.0,
        maxsize: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ConfigurationError(
                f"CachingPolicyEngine ttl is {ttl!r}; use a positive number of seconds, "
                "or use the engine without the cache."
            )
        if maxsize < 1:
            raise ConfigurationError(
                f"CachingPolicyEngine maxsize is {maxsize!r}; use 1 or more, "
                "or use the engine without the cache."
            )
        self._engine = engine
        self._ttl = ttl
        self._maxsize = maxsize
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Decision]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def engine(self) -> PolicyEngine:
        """The wrapped engine."""
        return self._engine

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every cached decision, such as after the policies changed."""
        with self._lock:
            self._entries.clear()

    def evaluate(self, requests: Sequence[AccessRequest]) -> list[Decision]:
        """Decide a batch, from the cache where possible; see `PolicyEngine.evaluate`."""
        now = self._clock()
        decisions: list[Decision | None] = [None] * len(requests)
        waiting: dict[Hashable, list[int]] = {}
        misses: list[AccessRequest] = []

        with self._lock:
            for index, request in enumerate(requests):
                key = request.cache_key()
                entry = self._entries.get(key)
                if entry is not None:
                    if entry[0] > now:
                        self._entries.move_to_end(key)
                        decisions[index] = entry[1]
                        continue
                    del self._entries[key]
                indexes = waiting.get(key)
                if indexes is None:
                    waiting[key] = [index]
                    misses.append(request)
                else:
                    indexes.append(index)

        if misses:
            fresh = self._evaluate_misses(misses)
            expires = self._clock() + self._ttl
            with self._lock:
                for (key, indexes), decision in zip(waiting.items(), fresh, strict=True):
                    for index in indexes:
                        decisions[index] = decision
                    if not decision.errors:
                        self._entries[key] = (expires, decision)
                        self._entries.move_to_end(key)
                while len(self._entries) > self._maxsize:
                    self._entries.popitem(last=False)

        final: list[Decision] = []
        for decision in decisions:
            if decision is None:
                raise RuntimeError("a request of the batch received no decision")
            final.append(decision)
        return final

    def _evaluate_misses(self, requests: list[AccessRequest]) -> list[Decision]:
        """Ask the wrapped engine, and deny every request if it breaks its contract."""
        try:
            decisions = self._engine.evaluate(requests)
        except Exception as exc:
            _logger.warning(
                "Policy engine %s failed; denying all %d requests of the batch",
                type(self._engine).__name__,
                len(requests),
                exc_info=True,
            )
            error = f"the policy engine raised {type(exc).__name__}: {exc}"
        else:
            if len(decisions) == len(requests) and all(
                isinstance(decision, Decision)  # pyright: ignore[reportUnnecessaryIsInstance]
                for decision in decisions
            ):
                return list(decisions)
            error = (
                f"the policy engine returned {len(decisions)} items for {len(requests)} "
                "requests instead of one Decision per request"
            )
            _logger.warning("Policy engine %s failed: %s", type(self._engine).__name__, error)

        denied = Decision(
            allowed=False,
            reason=f"denied because policy evaluation failed: {error}",
            errors=(error,),
        )
        return [denied] * len(requests)
