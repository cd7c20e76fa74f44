"""Single flight: concurrent requests for the same key share one load."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class SingleFlight(Generic[V]):
    def __init__(self) -> None:
        self._pending: dict[Hashable, asyncio.Future[V]] = {}

    def run(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> asyncio.Future[V]:
        """The load under way for `key`, or a new one. A failed load is retried by the next call
        (its exception is retrieved here, so an unawaited background refresh logs nothing)."""
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(load())
            self._pending[key] = pending

            def done(future: asyncio.Future[V]) -> None:
                if self._pending.get(key) is future:
                    self._pending.pop(key, None)
                if not future.cancelled():
                    future.exception()

            pending.add_done_callback(done)
        return pending

    def forget(self, key: Hashable) -> None:
        """The next call starts a new load (the one under way still answers its callers)."""
        self._pending.pop(key, None)

    def clear(self) -> None:
        self._pending.clear()
