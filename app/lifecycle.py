"""Background machinery started and stopped with the app, in order (stopped in reverse)."""

from __future__ import annotations

from fastapi import FastAPI

from app.api_key.lifecycle import start_hot_path, stop_hot_path
from app.oidc.lifecycle import start_oidc, stop_oidc
from app.webhooks.lifecycle import start_webhooks, stop_webhooks


async def startup(app: FastAPI) -> None:
    """Start the per-process services: key cache listener and event batcher, the OIDC runtime
    (key/client caches and their listener, purges), the webhook relay."""
    await start_hot_path(app)
    await start_oidc(app)
    await start_webhooks(app)


async def shutdown(app: FastAPI) -> None:
    """Stop them in reverse, flushing what was acknowledged (batched events) before the pool closes."""
    await stop_webhooks(app)
    await stop_oidc(app)
    await stop_hot_path(app)
