"""Failure throttling (per client, per username, per address) and a bounded pool for argon2.

Counts live in the process: a determined attacker spread over replicas gets N times the budget,
which still bounds guessing; the point is that a flood of bad secrets cannot starve good ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from app.oidc.errors import TemporarilyUnavailable

T = TypeVar("T")


class FailureThrottle:
    def __init__(self, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window = float(window_seconds)
        self._fails: dict[str, list[float]] = {}

    def _recent(self, key: str) -> list[float]:
        now = time.monotonic()
        hits = [t for t in self._fails.get(key, []) if now - t < self.window]
        if hits:
            self._fails[key] = hits
        else:
            self._fails.pop(key, None)
        return hits

    def retry_after(self, key: str) -> int:
        """Seconds until another attempt is allowed; 0 when allowed now."""
        hits = self._recent(key)
        if len(hits) < self.limit:
            return 0
        return max(1, int(self.window - (time.monotonic() - hits[0])) + 1)

    def check(self, key: str) -> None:
        wait = self.retry_after(key)
        if wait:
            raise TemporarilyUnavailable("Too many failed attempts; try again later",
                                         headers={"Retry-After": str(wait)})

    def fail(self, key: str) -> None:
        if len(self._fails) > 100_000:
            self._fails.clear()
        self._fails.setdefault(key, []).append(time.monotonic())

    def reset(self, key: str) -> None:
        self._fails.pop(key, None)


class HashPool:
    """argon2 runs in threads, at most `workers` at a time, so hashing never blocks the loop."""

    def __init__(self, workers: int) -> None:
        self._sem = asyncio.Semaphore(max(1, workers))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._sem:
            return await asyncio.to_thread(fn, *args)
