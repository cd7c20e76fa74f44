"""Background machinery started and stopped with the app, in order (stopped in reverse)."""

from __future__ import annotations

from fastapi import FastAPI


async def startup(app: FastAPI) -> None:
    """Start the per-process services: key cache listener, event batcher, webhook relay."""
    from app.api_key.lifecycle import start_hot_path

    await start_hot_path(app)
    from app.oidc.lifecycle import start_oidc

    await start_oidc(app)
    from app.webhooks.lifecycle import start_webhooks

    await start_webhooks(app)


async def shutdown(app: FastAPI) -> None:
    """Stop them, flushing whatever was acknowledged (batched events) before the pool closes."""
    from app.webhooks.lifecycle import stop_webhooks

    await stop_webhooks(app)
    from app.oidc.lifecycle import stop_oidc

    await stop_oidc(app)

    from app.api_key.lifecycle import stop_hot_path

    await stop_hot_path(app)
