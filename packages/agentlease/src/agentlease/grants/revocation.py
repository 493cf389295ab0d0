"""Revocation lists: revoked grant ids and task ids, each kept until it can no longer matter."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["InMemoryRevocationList", "RevocationList"]


class RevocationList(Protocol):
    """A store of revoked grant and task ids, written by brokers and read by verifiers.

    Each entry carries an ``until`` time in seconds since the epoch, after which every grant it
    covers has expired. The list may then drop the entry, which keeps the list bounded.
    """

    def revoke_jti(self, jti: str, *, until: int) -> None:
        """Revoke one grant by its ``jti``."""
        ...

    def revoke_task(self, task_id: str, *, until: int) -> None:
        """Revoke every grant of a task."""
        ...

    def is_revoked(self, *, jti: str, task_id: str) -> bool:
        """Return whether the grant or its task is revoked."""
        ...

    def prune(self, now: float | None = None) -> int:
        """Drop entries whose ``until`` has passed and return how many were dropped."""
        ...

    def __len__(self) -> int:
        """Return the number of entries kept."""
        ...


class InMemoryRevocationList:
    """A thread-safe revocation list for one process.

    Writes prune expired entries now and then: when the list has doubled in size since the
    last prune, or when `prune_interval` seconds have passed. Each write therefore costs
    amortised constant time, and memory stays proportional to the entries still in force.

    Example:
        >>> revocations = InMemoryRevocationList(clock=lambda: 1000.0)
        >>> revocations.revoke_task("t-1", until=1900)
        >>> revocations.is_revoked(jti="any", task_id="t-1")
        True
    """

    __slots__ = (
        "_clock",
        "_jtis",
        "_last_prune",
        "_lock",
        "_prune_at_size",
        "_prune_interval",
        "_tasks",
    )

    _MIN_PRUNE_SIZE = 1024

    def __init__(
        self, *, clock: Callable[[], float] = time.time, prune_interval: float = 60.0
    ) -> None:
        """Create an empty list.

        Args:
            clock: Returns the current time in seconds since the epoch.
            prune_interval: Seconds after which the next write prunes, whatever the size.
        """
        self._clock = clock
        self._prune_interval = prune_interval
        self._lock = threading.Lock()
        self._jtis: dict[str, int] = {}
        self._tasks: dict[str, int] = {}
        self._last_prune = clock()
        self._prune_at_size = self._MIN_PRUNE_SIZE

    def revoke_jti(self, jti: str, *, until: int) -> None:
        """Revoke one grant until `until`; a later `until` for the same id wins."""
        self._add(self._jtis, jti, until)

    def revoke_task(self, task_id: str, *, until: int) -> None:
        """Revoke every grant of a task until `until`; a later `until` for the same id wins."""
        self._add(self._tasks, task_id, until)

    def is_revoked(self, *, jti: str, task_id: str) -> bool:
        """Return whether the grant or its task is revoked.

        An entry counts until it is pruned, even past its ``until``. By then every grant it
        covers has expired, so returning True is still correct.
        """
        with self._lock:
            return jti in self._jtis or task_id in self._tasks

    def prune(self, now: float | None = None) -> int:
        """Drop entries whose ``until`` is before `now` (default: the clock) and count them."""
        if now is None:
            now = self._clock()
        with self._lock:
            return self._prune_locked(now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._jtis) + len(self._tasks)

    def _add(self, entries: dict[str, int], key: str, until: int) -> None:
        now = self._clock()
        with self._lock:
            previous = entries.get(key)
            if previous is None or until > previous:
                entries[key] = until
            size = len(self._jtis) + len(self._tasks)
            if size >= self._prune_at_size or now - self._last_prune >= self._prune_interval:
                self._prune_locked(now)

    def _prune_locked(self, now: float) -> int:
        dropped = 0
        for entries in (self._jtis, self._tasks):
            expired = [key for key, until in entries.items() if until < now]
            for key in expired:
                del entries[key]
            dropped += len(expired)
        self._last_prune = now
        size = len(self._jtis) + len(self._tasks)
        self._prune_at_size = max(self._MIN_PRUNE_SIZE, 2 * size)
        return dropped

    def __repr__(self) -> str:
        return f"InMemoryRevocationList(entries={len(self)})"
