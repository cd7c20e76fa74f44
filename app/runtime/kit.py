"""The process's runtime kit, started once with the app (or alone by `authpi worker`)."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.config import Settings
from app.core.db import to_asyncpg_dsn
from app.events.batcher import EventBatcher
from app.runtime.address import ClientAddress
from app.runtime.argon2 import Argon2Gate
from app.runtime.hub import Hub
from app.runtime.throttle import FailureThrottle, PostgresStore, RedisStore, Store

# A cold lookup waits at most this long for a new connection: during an outage it fails fast.
CONNECT_TIMEOUT_SECONDS = 3.0


@dataclass
class RuntimeKit:
    settings: Settings
    pool: asyncpg.Pool
    hub: Hub
    argon2: Argon2Gate
    throttle: FailureThrottle
    address: ClientAddress
    events: EventBatcher
    store: Store

    @classmethod
    async def start(cls, settings: Settings, database_url: str) -> RuntimeKit:
        dsn = to_asyncpg_dsn(database_url)
        # A plain asyncpg pool: cold lookups, throttle counters and batch COPYs skip the ORM.
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=settings.hot_path_pool_size, timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": "authpi-hot-path"})
        events = EventBatcher(pool, min_interval=min(settings.event_batch_interval_seconds, 1.0))
        events.start()
        store: Store = RedisStore(settings.redis_url) if settings.redis_url else PostgresStore(pool)
        throttle = FailureThrottle(store, limit=settings.auth_fail_limit,
                                   address_limit=settings.auth_fail_address_limit,
                                   window_seconds=settings.auth_fail_window_seconds)
        hub = Hub(dsn)
        kit = cls(settings=settings, pool=pool, hub=hub,
                  argon2=Argon2Gate(settings.argon2_workers, settings.argon2_max_pending),
                  throttle=throttle, address=ClientAddress.from_settings(settings), events=events,
                  store=store)
        return kit

    async def stop(self) -> None:
        await self.hub.stop()
        # Every acknowledged event is written before the pool closes.
        await self.events.shutdown()
        self.argon2.close()
        close: Any = getattr(self.store, "close", None)
        if close is not None:
            await close()
        await self.pool.close()


def freeze_startup_objects() -> None:
    """The app is built: ~200k long-lived objects (routes, models, schemas). A full collection
    that scans them takes 100+ ms, which was the hot path's p99; move them out of its sight."""
    gc.collect()
    gc.freeze()
