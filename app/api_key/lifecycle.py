"""Start and stop the hot path's per-process services: the lookup pool, the metered event batcher
and the verified-key cache with its invalidation listener."""

from __future__ import annotations

import gc

import asyncpg
from fastapi import FastAPI

from app.api_key.verification import KeyVerifier
from app.core.db import to_asyncpg_dsn
from app.events.batcher import EventBatcher


async def start_hot_path(app: FastAPI) -> None:
    # The app is built: ~200k long-lived objects (routes, models, schemas). A full collection that
    # scans them takes 100+ ms, which was the hot path's p99. Move them out of the collector's
    # sight (what they reference stays alive anyway).
    gc.collect()
    gc.freeze()
    settings = app.state.settings
    # A plain asyncpg pool: the cold-path lookup and the batch COPYs skip the ORM's overhead.
    pool = await asyncpg.create_pool(
        to_asyncpg_dsn(app.state.database_url), min_size=1, max_size=settings.hot_path_pool_size,
        timeout=settings.db_connect_timeout_seconds, server_settings={"application_name": "authpi-hot-path"})
    app.state.hot_pool = pool
    batcher = EventBatcher(pool, min_interval=min(settings.event_batch_interval_seconds, 1.0))
    batcher.start()
    app.state.event_batcher = batcher
    verifier = KeyVerifier(settings, app.state.database_url)
    verifier.events = batcher
    await verifier.start(pool)
    app.state.key_verifier = verifier


async def stop_hot_path(app: FastAPI) -> None:
    verifier: KeyVerifier | None = getattr(app.state, "key_verifier", None)
    batcher: EventBatcher | None = getattr(app.state, "event_batcher", None)
    pool: asyncpg.Pool | None = getattr(app.state, "hot_pool", None)
    if verifier is not None:
        await verifier.stop()
    if batcher is not None:
        # Every acknowledged verification is written before the pool closes.
        await batcher.shutdown()
    if pool is not None:
        await pool.close()
