"""Start/stop the webhook machinery with the app: the shared sender always (redelivery uses it),
the relay (webhook deliveries and the outbox) only when AUTHPI_WEBHOOKS_RELAY_ENABLED
(`authpi worker` can run it apart)."""

from __future__ import annotations

from fastapi import FastAPI

from app.core.db import Database
from app.outbox.relay import OutboxRelay
from app.webhooks.delivery import Sender
from app.webhooks.relay import Relay


async def start_webhooks(app: FastAPI) -> None:
    settings = app.state.settings
    app.state.webhook_sender = Sender(timeout_seconds=settings.webhooks_timeout_seconds,
                                      allow_private=settings.webhooks_allow_private)
    app.state.webhook_relay = None
    app.state.webhook_relay_db = None
    app.state.outbox_relay = None
    if settings.webhooks_relay_enabled:
        # Its own small pool: batches hold a connection while their requests are in flight, and a
        # slow receiver must not starve API requests of connections.
        # One more connection for the outbox relay.
        db = Database(app.state.database_url, pool_size=settings.webhooks_relay_concurrency + 2)
        relay = Relay(db, settings, app.state.secret_key, app.state.runtime.hub,
                      sender=app.state.webhook_sender)
        await relay.start()
        outbox = OutboxRelay(db, settings, app.state.secret_key, app.state.runtime.hub)
        await outbox.start()
        app.state.webhook_relay, app.state.webhook_relay_db = relay, db
        app.state.outbox_relay = outbox


async def stop_webhooks(app: FastAPI) -> None:
    outbox = getattr(app.state, "outbox_relay", None)
    if outbox is not None:
        await outbox.stop()
        app.state.outbox_relay = None
    relay = getattr(app.state, "webhook_relay", None)
    if relay is not None:
        await relay.stop()
        app.state.webhook_relay = None
    relay_db = getattr(app.state, "webhook_relay_db", None)
    if relay_db is not None:
        await relay_db.dispose()
        app.state.webhook_relay_db = None
    sender = getattr(app.state, "webhook_sender", None)
    if sender is not None:
        await sender.aclose()
        app.state.webhook_sender = None
