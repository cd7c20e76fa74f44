"""Metered, trail-only events (`api-key.verified`, ...) written in batches off the request path.

A request enqueues the event's arguments with its id and timestamp taken *now*, so the trail keeps
true order however late the batch lands. A background task turns them into rows with
`build_event` (the same checks and scrubbing as `record`) and writes each batch with one COPY.

Flushing: at once when the batcher was idle (a lone request is visible within milliseconds); under
load, whatever accumulated since the previous COPY, at least `min_interval` apart so batches grow
with traffic; never later than `max_delay` (1 s). `shutdown()` drains everything before the pool closes,
so a clean stop loses nothing. A failed COPY is retried; events are dropped (and logged) only when
the queue exceeds `max_pending`, which bounds memory if the database is down for long.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import asyncpg

from app.core.ids import new_id, now_ms
from app.events.service import build_event
from app.observability.context import current_request_id

log = logging.getLogger("authpi.events.batcher")

_COLUMNS = ("id", "account_id", "issuer_id", "org_id", "user_id", "client_id", "type", "source",
            "timestamp", "subject", "data", "auth", "trigger", "trace", "deliverable")


def event_row(**kwargs: Any) -> tuple[Any, ...]:
    """One COPY row, built (and checked, and scrubbed) by `build_event`."""
    event = build_event(**kwargs)
    return (event.id, event.account_id, event.issuer_id, event.org_id, event.user_id, event.client_id,
            event.type, event.source, event.timestamp, json.dumps(event.subject), json.dumps(event.data),
            None if event.auth is None else json.dumps(event.auth), event.trigger, event.trace,
            bool(event.deliverable))


# Positions of the per-occurrence fields in a row.
_ID, _TIMESTAMP, _DATA, _TRACE = 0, 8, 10, 13


def _row(item: Any) -> tuple[Any, ...]:
    if isinstance(item, dict):
        return event_row(**item)
    # (template, id, timestamp, data_json): a row built once by `event_row` for a recurring event
    # (one verified key), with this occurrence's id, time, data and request id put in.
    template, event_id, timestamp, data, trace = item
    row = list(template)
    row[_ID], row[_TIMESTAMP], row[_DATA], row[_TRACE] = event_id, timestamp, data, trace
    return tuple(row)


class EventBatcher:
    def __init__(self, pool: asyncpg.Pool, *, max_delay: float = 1.0, min_interval: float = 0.05,
                 max_batch: int = 5000, max_pending: int = 200_000) -> None:
        self._pool = pool
        self._max_delay = max_delay
        # Under load, successive COPYs are at least this far apart, so batches grow with traffic.
        self._min_interval = min_interval
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._pending: list[Any] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._flush_lock = asyncio.Lock()
        self._last_flush = 0.0
        self.dropped = 0
        self.written = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="authpi-event-batcher")

    def add(self, **kwargs: Any) -> str:
        """Queue one event (the arguments of `build_event`); returns its id. Never blocks."""
        kwargs.setdefault("event_id", new_id("evt"))
        kwargs.setdefault("timestamp", now_ms())
        if kwargs.get("trace") is None:
            kwargs["trace"] = current_request_id()
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            if self.dropped % 10_000 == 1:
                log.error("event batcher backlog full: %d metered events dropped so far", self.dropped)
            return kwargs["event_id"]
        self._pending.append(kwargs)
        if not self._wake.is_set():
            self._wake.set()
        return kwargs["event_id"]

    def add_occurrence(self, template: tuple[Any, ...], data_json: str) -> str:
        """Queue one more occurrence of a templated event (see `event_row`); the cheap path."""
        event_id = new_id("evt")
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return event_id
        self._pending.append((template, event_id, now_ms(), data_json, current_request_id()))
        if not self._wake.is_set():
            self._wake.set()
        return event_id

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Write everything queued so far (and wait for a COPY already in flight)."""
        async with self._flush_lock:
            while self._pending:
                batch = self._pending[: self._max_batch]
                rows = []
                for item in batch:
                    try:
                        rows.append(_row(item))
                    except Exception:  # noqa: BLE001 - one bad event must not block the trail
                        log.exception("dropping an invalid metered event")
                if rows:
                    async with self._pool.acquire() as conn:
                        await conn.copy_records_to_table("events", records=rows, columns=_COLUMNS)
                # Removed only once written: a failed COPY leaves them queued for the retry.
                del self._pending[: len(batch)]
                self.written += len(rows)
            self._last_flush = time.monotonic()

    async def _run(self) -> None:
        backoff = 0.1
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._max_delay)
            except TimeoutError:
                pass
            self._wake.clear()
            if not self._pending:
                continue
            wait = self._min_interval - (time.monotonic() - self._last_flush)
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self.flush()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the database may be briefly away; keep the events
                log.exception("metered event batch failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_delay)
                self._wake.set()

    async def shutdown(self) -> None:
        """Stop the loop and write what is left (called before the database pool closes)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            # Let a COPY in flight finish rather than cancel it (a cancelled COPY may or may not
            # have committed, which would duplicate or lose the batch).
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
            except (TimeoutError, Exception):  # noqa: BLE001
                self._task.cancel()
        for _attempt in range(3):
            try:
                await self.flush()
                return
            except Exception:  # noqa: BLE001
                log.exception("final metered event flush failed")
                await asyncio.sleep(0.2)
        if self._pending:
            log.error("%d metered events could not be written at shutdown", len(self._pending))
