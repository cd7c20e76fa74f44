"""Background machinery started and stopped with the app, in order (stopped in reverse)."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from app.agent.verification import AgentAuthenticator
from app.api_key.verification import KeyVerifier
from app.oidc.lifecycle import start_oidc, stop_oidc
from app.runtime.hub import Message
from app.runtime.invalidation import TOPIC
from app.runtime.kit import RuntimeKit, freeze_startup_objects
from app.webhooks.lifecycle import start_webhooks, stop_webhooks


async def startup(app: FastAPI) -> None:
    """The runtime kit (lookup pool, event batcher, throttle, argon2 gate, hub), the caches that
    subscribe to its hub (API keys, the OIDC runtime's key sets and clients), the webhook relay;
    then the hub connects, every subscriber registered."""
    freeze_startup_objects()
    settings = app.state.settings
    kit = await RuntimeKit.start(settings, app.state.database_url)
    app.state.runtime = kit
    app.state.event_batcher = kit.events
    app.state.db.hub = kit.hub
    kit.hub.subscribe(TOPIC, _ignore, lambda: _drop_idle_connections(app))
    app.state.key_verifier = KeyVerifier(settings, kit)
    app.state.agent_authenticator = AgentAuthenticator(settings, kit)
    app.state.agent_authenticator.start()
    await start_oidc(app)
    await start_webhooks(app)
    await kit.hub.start()


def _ignore(_message: Message) -> None:
    pass


def _drop_idle_connections(app: FastAPI) -> None:
    """The listener was lost or is back: the pooled connections idle since may be dead (a database
    restart, a cut network). Close them so the next requests open fresh ones instead of failing."""
    task = asyncio.ensure_future(app.state.db.engine.dispose())
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Future[None]] = set()


async def shutdown(app: FastAPI) -> None:
    """Stop them in reverse, flushing what was acknowledged (batched events) before the pool closes."""
    await stop_webhooks(app)
    await stop_oidc(app)
    verifier: KeyVerifier | None = getattr(app.state, "key_verifier", None)
    if verifier is not None:
        verifier.close()
    agents: AgentAuthenticator | None = getattr(app.state, "agent_authenticator", None)
    if agents is not None:
        await agents.stop()  # its counted verifier uses are written before the pool closes
    kit: RuntimeKit | None = getattr(app.state, "runtime", None)
    if kit is not None:
        app.state.db.hub = None
        await kit.stop()
