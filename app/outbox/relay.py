"""The outbox relay: claims due messages with FOR UPDATE SKIP LOCKED, delivers each through its
kind, records the outcome; runs beside the webhook relay (`authpi serve`, `authpi worker`).

As for webhooks, the row lock is the claim: the batch's transaction stays open while its messages
are being delivered, so any number of relays skip them; a process killed mid-send releases its
locks with its connection and the messages are simply pending again, with the same Message-ID
(at least once). A message is marked sent, its payload erased and its kind's `on_sent` run in that
same transaction. Wake-up: NOTIFY `authpi_outbox` on commit (app.outbox.service.enqueue), backed by
a poll and by the time of the next scheduled retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.db import Database
from app.core.ids import now_ms
from app.models.outbox import OutboxMessage
from app.outbox.registry import DeliveryContext, Kind, PermanentFailure, get_kind
from app.outbox.service import CHANNEL, open_payload
from app.runtime.hub import Hub, Message

log = logging.getLogger("authpi.outbox")
MAX_ERROR = 1000


def retry_delay_ms(settings: Settings, attempts_made: int) -> int:
    """Exponential backoff (x4) from AUTHPI_OUTBOX_RETRY_INITIAL_SECONDS, capped, +/-20% jitter."""
    base = settings.outbox_retry_initial_seconds * 4 ** max(0, attempts_made - 1)
    base = min(settings.outbox_retry_max_seconds, base)
    return max(0, int(base * 1000 * (1.0 + random.uniform(-0.2, 0.2))))


def claim_statement(limit: int) -> Any:
    return (select(OutboxMessage)
            .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now_ms())
            .order_by(OutboxMessage.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True))


class OutboxRelay:
    def __init__(self, db: Database, settings: Settings, server_key: str, hub: Hub | None) -> None:
        self.db = db
        self.settings = settings
        self.server_key = server_key
        self.hub = hub
        self.context = DeliveryContext(settings=settings, server_key=server_key)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.attempted = 0

    async def start(self) -> None:
        if self.hub is not None:
            self.hub.subscribe(CHANNEL, self._on_notify, self.wake)
        self._task = asyncio.create_task(self._loop(), name="outbox-relay")
        log.info("outbox relay started")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self.hub is not None:
            self.hub.unsubscribe(self._on_notify)
        if self._task is not None:
            _, pending = await asyncio.wait({self._task}, timeout=self.settings.smtp_timeout_seconds + 2)
            for task in pending:
                task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _on_notify(self, _message: Message) -> None:
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bad batch must not stop the relay
                log.exception("outbox batch failed")
                claimed = 0
                await asyncio.sleep(1)
            if claimed or self._stopping:
                continue
            try:
                timeout = await self._idle_timeout()
            except Exception:  # noqa: BLE001
                timeout = self.settings.webhooks_poll_interval_seconds
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                pass

    async def _idle_timeout(self) -> float:
        poll = self.settings.webhooks_poll_interval_seconds
        async with self.db.sessionmaker() as session:
            due = await session.scalar(select(func.min(OutboxMessage.next_attempt_at))
                                       .where(OutboxMessage.status == "pending"))
        if due is None:
            return poll
        return max(0.005, min(poll, (due - now_ms()) / 1000.0))

    async def run_once(self) -> int:
        """Claim one batch, deliver it, record the outcomes. Returns how many were attempted."""
        async with self.db.unit_of_work() as session:
            rows = list((await session.scalars(claim_statement(self.settings.outbox_batch_size))).all())
            for row in rows:
                await self._one(session, row)
            self.attempted += len(rows)
            return len(rows)

    async def _one(self, session: AsyncSession, row: OutboxMessage) -> None:
        kind = get_kind(row.kind)
        now = now_ms()
        row.attempts += 1
        row.updated_at = now
        payload: dict[str, Any] = {}
        error: str | None = None
        permanent = False
        try:
            if kind is None:
                raise PermanentFailure(f"no outbox kind {row.kind!r} is registered in this process")
            payload = open_payload(self.server_key, row)
            await kind.deliver(self.context, row, payload)
        except asyncio.CancelledError:
            raise
        except PermanentFailure as exc:
            error, permanent = str(exc) or type(exc).__name__, True
        except Exception as exc:  # noqa: BLE001 - a failed attempt, retried with backoff
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            row.status, row.sent_at, row.last_error = "sent", now_ms(), None
            row.payload_encrypted = None  # link tokens live only until the message is sent
            await self._hook(session, row, kind, payload, None, final=True)
            return
        budget = (kind.max_attempts if kind else None) or self.settings.outbox_max_attempts
        final = permanent or row.attempts >= budget
        row.last_error = error[:MAX_ERROR]
        if final:
            row.status = "failed"
            row.payload_encrypted = None
        else:
            row.next_attempt_at = now_ms() + retry_delay_ms(self.settings, row.attempts)
        log.warning("outbox message %s (%s) attempt %d failed%s", row.id, row.kind, row.attempts,
                    " for good" if final else "")
        await self._hook(session, row, kind, payload, error, final=final)

    async def _hook(self, session: AsyncSession, row: OutboxMessage, kind: Kind | None,
                    payload: dict[str, Any], error: str | None, *, final: bool) -> None:
        """The kind's bookkeeping, in a savepoint: its failure must not undo the delivery's record."""
        if kind is None:
            return
        try:
            async with session.begin_nested():
                if error is None and kind.on_sent is not None:
                    await kind.on_sent(session, row, payload)
                elif error is not None and kind.on_failed is not None:
                    await kind.on_failed(session, row, payload, error, final)
        except Exception:  # noqa: BLE001
            log.exception("outbox %s hook failed for %s", row.kind, row.id)
