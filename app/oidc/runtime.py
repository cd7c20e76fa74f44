"""The per-process OIDC runtime: key sets, verified clients, throttles and the metered event batcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import Request
from sqlalchemy import text

from app.oidc.client_auth import ClientCache
from app.oidc.keys import KeySet, KeyStore
from app.oidc.throttle import FailureThrottle, HashPool

log = logging.getLogger("authpi.oidc")
PURGE_INTERVAL_SECONDS = 600
# Used codes and spent refresh tokens are kept a day past expiry, for investigations of replays.
_PURGE = (
    "DELETE FROM authorization_codes WHERE expires_at < :cutoff",
    "DELETE FROM refresh_tokens WHERE expires_at < :cutoff",
    "DELETE FROM revoked_access_tokens WHERE expires_at < :now",
)


async def purge_expired(db: Any) -> None:
    """Idempotent deletes: every replica may run them."""
    from app.core.ids import now_ms

    now = now_ms()
    async with db.unit_of_work() as session:
        for statement in _PURGE:
            await session.execute(text(statement), {"cutoff": now - 86_400_000, "now": now})


class OidcRuntime:
    def __init__(self, app: Any) -> None:
        settings = app.state.settings
        self.app = app
        self.keys = KeyStore(app.state.secret_key, settings.resolved_public_url())
        self.clients = ClientCache()
        self.throttle = FailureThrottle(settings.auth_fail_limit, settings.auth_fail_window_seconds)
        self.hash_pool = HashPool(settings.argon2_workers)
        # An address may fail more often than one username (users behind one NAT share it).
        self.login_ip_throttle = FailureThrottle(settings.auth_fail_limit * 5,
                                                 settings.auth_fail_window_seconds)
        self.listener: Any = None
        self.server_key: str = app.state.secret_key
        self._sessionmaker: Any = None

    async def start(self) -> None:
        """Background pieces: the periodic purge of expired protocol state."""
        self._purge_task = asyncio.create_task(self._purge_loop(), name="oidc-purge")

    async def stop(self) -> None:
        task = getattr(self, "_purge_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

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


def get_runtime(request: Request) -> OidcRuntime:
    # Cached on the request: the token endpoint asks for it several times per request.
    rt = request.scope.get("authpi.oidc")
    if rt is None:
        from app.oidc.cache import runtime

        rt = runtime(request.app)
        request.scope["authpi.oidc"] = rt
    return rt


async def key_set(request: Request, issuer_id: str) -> KeySet | None:
    if not issuer_id.startswith("i_") or len(issuer_id) > 40:
        return None
    rt = get_runtime(request)
    return await rt.keys.get(rt.session_factory(), issuer_id)
