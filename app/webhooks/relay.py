"""The webhook relay: claims due deliveries with FOR UPDATE SKIP LOCKED, sends them, records attempts.

Why the row lock is the claim: a batch's transaction stays open while its requests are in flight,
holding the lock on each delivery. Any number of relays (processes or tasks) skip those rows, so each
(event, endpoint) pair is sent once per attempt. If a process dies (SIGKILL) its connection goes, the
locks go with it, and the uncommitted deliveries are simply pending again: at least once, with the
same webhook-id on the repeat, and no lease to wait out.

Order per subject: a delivery is claimable only when no earlier pending delivery of the same
(endpoint, subject) exists, so one subject's events reach an endpoint one at a time, in event order,
across every relay; different subjects and endpoints go in parallel.

Wake-up: the events trigger NOTIFYs `authpi_webhooks` on commit; the relay subscribes to it on the
process's hub (app.runtime.hub). A poll (and the time of the next scheduled retry) backs it up, so
a lost notification or listener connection delays a delivery, never loses it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import aliased

from app.config import Settings
from app.core.db import Database, to_asyncpg_dsn
from app.core.ids import now_ms
from app.models.event import Event
from app.models.webhook import Webhook
from app.models.webhook_delivery import WebhookDelivery
from app.outbox.relay import OutboxRelay
from app.runtime.hub import Hub, Message
from app.webhooks.delivery import AttemptResult, Sender, attempt
from app.webhooks.schemas import RetryPolicy, policy_with_defaults
from app.webhooks.service import CHANNEL, apply_result, record_health

log = logging.getLogger("authpi.webhooks")


def claim_statement(limit: int) -> Any:
    """Due deliveries of active endpoints that head their (endpoint, subject) queue, locked.

    The head test is a correlated min() over the partial index (webhook_id, ordering_key, event_id)
    WHERE pending: always an index probe per candidate. (A NOT EXISTS anti-join was planned as a
    scan of the whole queue per row when the table's statistics were stale: 400 ms at 1,000 pending.)
    """
    earlier = aliased(WebhookDelivery)
    head = (select(func.min(earlier.event_id))
            .where(earlier.webhook_id == WebhookDelivery.webhook_id,
                   earlier.ordering_key == WebhookDelivery.ordering_key,
                   earlier.status == "pending")
            .scalar_subquery())
    return (
        select(WebhookDelivery)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.status == "pending",
               WebhookDelivery.next_attempt_at <= func.authpi_webhooks_now_ms(),
               Webhook.status == "active",
               WebhookDelivery.event_id == head)
        # The due index's own order, so the scan streams and stops at `limit` (adding event_id
        # made the planner sort every candidate first). Per-subject order comes from the head test.
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )


def prefer_custom_plans(db: Database) -> None:
    """Plan the relay's statements for the queue as it is now, every time.

    asyncpg prepares statements; after five runs Postgres may keep a generic plan, chosen while the
    queue was empty or its statistics stale, and keep it through a burst (measured: the claim at
    2-3 s instead of 10-20 ms until an ANALYZE replanned it). Planning costs well under a ms.
    """

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.run_async(lambda conn: conn.execute("SET plan_cache_mode = force_custom_plan"))

    event.listen(db.engine.sync_engine, "connect", on_connect)


class Relay:
    def __init__(self, db: Database, settings: Settings, server_key: str, hub: Hub,
                 sender: Sender | None = None) -> None:
        """`db` should be the relay's own (its connections get plan_cache_mode=force_custom_plan);
        `hub` is the process's LISTEN connection (app.runtime.hub), which wakes the relay."""
        self.db = db
        self.hub = hub
        prefer_custom_plans(db)
        self.settings = settings
        self.server_key = server_key
        self.sender = sender or Sender(timeout_seconds=settings.webhooks_timeout_seconds,
                                       allow_private=settings.webhooks_allow_private)
        self._own_sender = sender is None
        self._wakes: list[asyncio.Event] = []
        self._idle: list[int] = []  # workers waiting for work, most recent last
        self._missed = False  # a wake-up came while every worker was busy
        # Built once: SQLAlchemy caches the compiled form per statement structure, and a fresh
        # aliased() each time defeated that (measured: 2-3 ms of CPU per claim).
        self._claim = claim_statement(settings.webhooks_relay_batch_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.delivered = 0  # attempts made by this process (for logs and benchmarks)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        concurrency = max(1, self.settings.webhooks_relay_concurrency)
        self._wakes = [asyncio.Event() for _ in range(concurrency)]
        self._tasks = [asyncio.create_task(self._worker(i), name=f"webhook-relay-{i}")
                       for i in range(concurrency)]
        self.hub.subscribe(CHANNEL, self._on_notify, self._on_resync)
        log.info("webhook relay started (%d workers)", concurrency)

    async def stop(self) -> None:
        """Let in-flight batches finish (bounded by the attempt timeout), then stop."""
        self._stopping = True
        self.wake(all_workers=True)
        self.hub.unsubscribe(self._on_notify)
        workers = self._tasks
        if workers:
            _, pending = await asyncio.wait(workers, timeout=self.settings.webhooks_timeout_seconds + 2)
            for task in pending:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._own_sender:
            await self.sender.aclose()

    def _on_notify(self, _message: Message) -> None:
        self.wake()

    def _on_resync(self) -> None:
        self.wake(all_workers=True)  # whatever was notified while the hub was not listening

    def wake(self, *, all_workers: bool = False) -> None:
        """Wake one idle worker (a busy one comes back for more on its own): a notification
        per committed event must not send every worker to the database at once."""
        if all_workers:
            for flag in self._wakes:
                flag.set()
            return
        if not self._idle:
            self._missed = True
            return
        self._wakes[self._idle.pop()].set()

    # -- the workers -------------------------------------------------------------------------
    async def _worker(self, index: int) -> None:
        wake = self._wakes[index]
        while not self._stopping:
            wake.clear()
            try:
                claimed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bad batch must not stop the relay
                log.exception("webhook relay batch failed")
                claimed = 0
                await asyncio.sleep(1)
            if claimed >= self.settings.webhooks_relay_batch_size:
                self.wake()  # a full batch: there may be more, bring in a helper
            if claimed or self._stopping:
                continue
            if self._missed:
                self._missed = False
                continue
            try:
                timeout = await self._idle_timeout()
            except Exception:  # noqa: BLE001
                timeout = self.settings.webhooks_poll_interval_seconds
            if self._missed:
                self._missed = False
                continue
            self._idle.append(index)
            try:
                await asyncio.wait_for(wake.wait(), timeout=timeout)
            except TimeoutError:
                pass
            finally:
                if index in self._idle:
                    self._idle.remove(index)

    async def _idle_timeout(self) -> float:
        """Sleep until the next scheduled retry, or the poll interval, whichever comes first."""
        poll = self.settings.webhooks_poll_interval_seconds
        async with self.db.sessionmaker() as session:
            row = (await session.execute(
                select(func.min(WebhookDelivery.next_attempt_at) - func.authpi_webhooks_now_ms())
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.status == "pending", Webhook.status == "active",
                       WebhookDelivery.next_attempt_at > func.authpi_webhooks_now_ms()))).scalar()
        if row is None:
            return poll
        return max(0.005, min(poll, row / 1000.0))

    async def run_once(self) -> int:
        """Claim one batch, send it, record it. Returns how many deliveries were attempted."""
        health: dict[str, list[tuple[float, AttemptResult]]] = defaultdict(list)
        async with self.db.unit_of_work() as session:
            deliveries = list((await session.scalars(self._claim)).all())
            if not deliveries:
                return 0
            webhook_ids = {d.webhook_id for d in deliveries}
            webhooks = {w.id: w for w in (await session.scalars(
                select(Webhook).where(Webhook.id.in_(webhook_ids)))).all()}
            events = {e.id: e for e in (await session.scalars(
                select(Event).where(Event.id.in_({d.event_id for d in deliveries})))).all()}

            async def one(delivery: WebhookDelivery) -> tuple[WebhookDelivery, AttemptResult]:
                webhook, event = webhooks[delivery.webhook_id], events[delivery.event_id]
                if event.account_id != webhook.account_id:  # never: the trigger matches on account
                    raise RuntimeError("delivery crosses accounts")
                try:
                    result = await attempt(self.sender, webhook, event, self.server_key)
                except Exception as exc:  # noqa: BLE001 - e.g. a secret sealed under another server key
                    # One bad delivery is a failed attempt, not a batch that rolls back forever.
                    log.exception("webhook delivery %s could not be attempted", delivery.id)
                    result = AttemptResult(ok=False, started_at=now_ms(), duration_ms=0,
                                           error=f"internal error: {type(exc).__name__}")
                health[webhook.id].append((time.monotonic(), result))
                return delivery, result

            results = await asyncio.gather(*(one(d) for d in deliveries))
            for delivery, result in results:
                policy = policy_with_defaults(RetryPolicy, webhooks[delivery.webhook_id].retry, None)
                session.add(apply_result(delivery, result, policy=policy, manual=False, retry_delay=None))
            self.delivered += len(results)
        await self._record_health(health)
        return len(results)

    async def _record_health(self, health: dict[str, list[tuple[float, AttemptResult]]]) -> None:
        for webhook_id in sorted(health):  # one order everywhere: no lock-order deadlocks
            outcomes = [r for _, r in sorted(health[webhook_id], key=lambda x: x[0])]
            succeeded = any(r.ok for r in outcomes)
            trailing: list[AttemptResult] = []
            for result in reversed(outcomes):
                if result.ok:
                    break
                trailing.append(result)
            if not succeeded and not trailing:
                continue
            if succeeded and not trailing:
                # The common case: touch (and lock) the row only when there is a count to reset.
                async with self.db.unit_of_work() as session:
                    await session.execute(
                        update(Webhook)
                        .where(Webhook.id == webhook_id,
                               (Webhook.consecutive_failures != 0) | Webhook.failing_since.is_not(None))
                        .values(consecutive_failures=0, failing_since=None))
                continue
            first_failure = min((r.started_at for r in trailing), default=None)
            try:
                async with self.db.unit_of_work() as session:
                    await record_health(session, webhook_id, succeeded=succeeded,
                                        trailing_failures=len(trailing), first_failure_at=first_failure)
            except Exception:  # noqa: BLE001 - breaker bookkeeping must not lose deliveries
                log.exception("webhook health update failed for %s", webhook_id)


async def run_worker(settings: Settings, database_url: str, stop: asyncio.Event) -> None:
    """`authpi worker`: the relays (webhook deliveries and the outbox) alone, until `stop` is set."""
    db = Database(database_url, pool_size=max(2, settings.webhooks_relay_concurrency + 2))
    hub = Hub(to_asyncpg_dsn(database_url), name="authpi-relay")
    relay = Relay(db, settings, settings.resolved_secret_key(), hub)
    outbox = OutboxRelay(db, settings, settings.resolved_secret_key(), hub)
    await relay.start()
    await outbox.start()
    await hub.start()
    try:
        await stop.wait()
    finally:
        await outbox.stop()
        await relay.stop()
        await hub.stop()
        await db.dispose()
