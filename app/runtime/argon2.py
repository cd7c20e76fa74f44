"""The argon2id gate: every stored-secret verification of the process goes through it.

argon2 runs off the event loop in a bounded thread pool, at a lower CPU priority than the loop (a
flood of wrong secrets slows its own hashing, not the loop serving cached credentials). At most
`max_pending` verifications are queued or running; beyond that `verify` raises `Saturated` at once
(callers answer 429 / `temporarily_unavailable`). Concurrent checks of one credential with the
same secret share one hash (`share` names the credential: a burst of cold requests costs one).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor

from app.core.crypto import verify_secret

NICE = 10


class Saturated(Exception):
    """Too much argon2 work queued: retry shortly."""

    retry_after = 1


def _lower_thread_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (AttributeError, OSError):  # not Linux, or not permitted: same priority then
        pass


class Argon2Gate:
    def __init__(self, workers: int, max_pending: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="argon2",
                                        initializer=_lower_thread_priority)
        self.max_pending = max(1, max_pending)
        self._pending = 0
        self.hashes = 0
        self._inflight: dict[Hashable, asyncio.Future[bool]] = {}

    @property
    def pending(self) -> int:
        return self._pending

    async def verify(self, stored_hash: str | None, secret: str, *, share: Hashable | None = None
                     ) -> bool:
        """argon2id check of `secret` against `stored_hash` (None: a dummy hash, same timing)."""
        token = (share, stored_hash) if share is not None else None
        shared = self._inflight.get(token) if token is not None else None
        if shared is not None:
            return await asyncio.shield(shared)
        if self._pending >= self.max_pending:
            raise Saturated("Too many secret verifications in progress; retry shortly")
        loop = asyncio.get_running_loop()
        self._pending += 1
        self.hashes += 1
        future = loop.run_in_executor(self._pool, verify_secret, stored_hash, secret)
        if token is not None:
            self._inflight[token] = future
        try:
            return await asyncio.shield(future)
        finally:
            if token is not None:
                self._inflight.pop(token, None)
            self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
