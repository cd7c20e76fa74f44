"""The per-process OIDC runtime: issuers' key sets and verified clients (both subscribed to the
runtime hub), over the runtime kit's throttle and argon2 gate, and the purge of expired state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import Request
from sqlalchemy import text

from app.client.cache import ClientCache
from app.core.ids import now_ms
from app.oidc.discovery import discovery_document
from app.runtime.kit import RuntimeKit
from app.signing_key.cache import KeySet, KeyStore

log = logging.getLogger("authpi.oidc")
PURGE_INTERVAL_SECONDS = 600
# Used codes and spent refresh tokens are kept a day past expiry, for investigations of replays.
_PURGE = (
    "DELETE FROM authorization_codes WHERE expires_at < :cutoff",
    "DELETE FROM refresh_tokens WHERE expires_at < :cutoff",
    "DELETE FROM revoked_access_tokens WHERE expires_at < :now",
    "DELETE FROM device_authorizations WHERE expires_at < :cutoff",
    "DELETE FROM registration_tokens WHERE expires_at < :cutoff",
    "DELETE FROM pushed_authorization_requests WHERE expires_at < :cutoff",
)


async def purge_expired(db: Any) -> None:
    """Idempotent deletes: every replica may run them."""
    now = now_ms()
    async with db.unit_of_work() as session:
        for statement in _PURGE:
            await session.execute(text(statement), {"cutoff": now - 86_400_000, "now": now})


def _render_discovery(issuer_url: str, scopes: list[str], settings: dict[str, Any]) -> bytes:
    return json.dumps(discovery_document(issuer_url, scopes, settings)).encode()


class OidcRuntime:
    def __init__(self, app: Any, kit: RuntimeKit) -> None:
        settings = app.state.settings
        self.app = app
        self.kit = kit
        self.keys = KeyStore(app.state.secret_key, settings.resolved_public_url(), _render_discovery,
                             kit.hub)
        self.clients = ClientCache(kit.hub)
        self.throttle = kit.throttle
        self.argon2 = kit.argon2
        self.address = kit.address
        self.server_key: str = app.state.secret_key
        self._sessionmaker: Any = None
        self._purge_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Background pieces: the periodic purge of expired protocol state."""
        self._purge_task = asyncio.create_task(self._purge_loop(), name="oidc-purge")

    async def stop(self) -> None:
        if self._purge_task is not None:
            self._purge_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._purge_task

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)
            try:
                await purge_expired(self.app.state.db)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - retried at the next interval
                log.exception("oidc purge failed")

    def drop_all(self) -> None:
        self.keys.invalidate()
        self.clients.clear()

    def session_factory(self) -> Any:
        if self._sessionmaker is None:
            self._sessionmaker = self.app.state.db.sessionmaker
        return self._sessionmaker


def runtime(app: Any) -> OidcRuntime:
    """The app's OidcRuntime (started with the app's lifespan)."""
    return app.state.oidc


def get_runtime(request: Request) -> OidcRuntime:
    return request.app.state.oidc


async def key_set(request: Request, issuer_id: str) -> KeySet | None:
    if not issuer_id.startswith("i_") or len(issuer_id) > 40:
        return None
    rt = get_runtime(request)
    return await rt.keys.get(rt.session_factory(), issuer_id)
