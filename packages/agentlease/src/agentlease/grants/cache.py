"""The per-task grant cache, so a hot loop signs once per audience and scope, not per call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agentlease.errors import ConfigurationError
from agentlease.grants.broker import Grant

__all__ = ["GrantCache"]


class GrantCache:
    """The grants of one task, keyed by audience and scope; thread-safe.

    `get` returns a cached grant until it comes within `refresh_margin` seconds of expiry, so
    a caller never sends a grant that may expire in flight. `grants` lists every grant that
    was put, so the task can revoke all of them when it ends. Grants that expired more than
    `retention` seconds ago are dropped from that list, because no verifier accepts them any
    more and a long task should not grow without bound.

    Example:
        >>> from agentlease.grants import LocalBroker
        >>> broker, cache = LocalBroker(), GrantCache()
        >>> cache.put(broker.mint(subject="spiffe://example.org/agent", audience="route:fast",
        ...                       scope="invoke", task_id="t-1", data_class="internal",
        ...                       lifetime=300))
        >>> cache.get("route:fast", "invoke") is not None
        True
    """

    __slots__ = ("_clock", "_current", "_history", "_lock", "_refresh_margin", "_retention")

    def __init__(
        self,
        *,
        refresh_margin: float = 30.0,
        retention: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create an empty cache.

        Args:
            refresh_margin: Seconds before expiry at which `get` stops returning a grant.
            retention: Seconds after expiry at which a grant leaves `grants`; keep it above
                the leeway of every verifier of these grants.
            clock: Returns the current time in seconds since the epoch.

        Raises:
            ConfigurationError: `refresh_margin` or `retention` is negative.
        """
        if refresh_margin < 0 or retention < 0:
            raise ConfigurationError(
                f"GrantCache refresh_margin {refresh_margin!r} and retention {retention!r} "
                "must not be negative; pass numbers of seconds."
            )
        self._refresh_margin = refresh_margin
        self._retention = retention
        self._clock = clock
        self._lock = threading.Lock()
        self._current: dict[tuple[str, str], Grant] = {}
        self._history: dict[str, Grant] = {}

    def get(self, audience: str, scope: str) -> Grant | None:
        """Return the cached grant, or None if there is none or it expires within the margin."""
        now = self._clock()
        with self._lock:
            grant = self._current.get((audience, scope))
        if grant is None or grant.expires_within(self._refresh_margin, now):
            return None
        return grant

    def put(self, grant: Grant) -> None:
        """Cache a grant under its audience and scope, replacing any older one."""
        now = self._clock()
        with self._lock:
            self._current[(grant.audience, grant.scope)] = grant
            self._history[grant.jti] = grant
            stale = [
                jti for jti, old in self._history.items() if old.expires_at + self._retention < now
            ]
            for jti in stale:
                del self._history[jti]

    def grants(self) -> list[Grant]:
        """Return every grant put, oldest first, except those expired beyond `retention`."""
        with self._lock:
            return list(self._history.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._current)

    def __repr__(self) -> str:
        return f"GrantCache(entries={len(self)})"
