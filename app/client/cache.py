"""The per-process cache of OAuth clients, subscribed to the runtime hub.

A `client:<id>` invalidation (published by the client service in the changing transaction) drops
the client on every replica; `issuer:<id>` drops the issuer's clients; a lost listener drops all.
A verified (client id, HMAC of the secret) pair rides on the entry, so the token endpoint needs
neither a database round trip nor argon2 per request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app.models.client import Client
from app.models.issuer import Issuer
from app.runtime.hub import Hub
from app.runtime.invalidation import subscribe
from app.runtime.singleflight import SingleFlight

CLIENT_TTL_SECONDS = 60.0


@dataclass
class CachedClient:
    id: str
    account_id: str
    issuer_id: str
    status: str
    confidential: bool
    name: str
    secret_hash: str | None
    scopes: list[str]
    grant_types: list[str]
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    application_type: str | None
    auth_method: str | None
    access_token_ttl: int | None
    refresh_token_ttl: int | None
    default_resources: list[str]
    # "dynamic" for a client made by RFC 7591 registration (app.client.registration)
    registration: str | None = None
    dpop_bound: bool = False
    require_par: bool = False
    loaded_at: float = field(default_factory=time.monotonic)
    verified_secret_mac: str | None = None
    verified_at: float = 0.0
    # The batcher's row template for this client's `machine.token.issued` events.
    event_template: tuple[Any, ...] | None = None

    @classmethod
    def from_row(cls, row: Client) -> CachedClient:
        settings = row.settings or {}
        oid = settings.get("openid") or {}
        return cls(id=row.id, account_id=row.account_id, issuer_id=row.issuer_id, status=row.status,
                   confidential=row.confidential, name=row.name, secret_hash=row.secret_hash,
                   scopes=list(settings.get("scopes") or []),
                   grant_types=list(oid.get("grant_types") or []),
                   redirect_uris=list(oid.get("redirect_uris") or []),
                   post_logout_redirect_uris=list(oid.get("post_logout_redirect_uris") or []),
                   application_type=oid.get("application_type"),
                   auth_method=oid.get("token_endpoint_auth_method"),
                   access_token_ttl=oid.get("access_token_ttl"),
                   refresh_token_ttl=oid.get("refresh_token_ttl"),
                   default_resources=list(oid.get("default_resources") or []),
                   registration=oid.get("registration"),
                   dpop_bound=bool(oid.get("dpop_bound_access_tokens")),
                   require_par=bool(oid.get("require_pushed_authorization_requests")))


class ClientCache:
    """Per-process cache of clients. Loads are single-flight; an invalidation (NOTIFY from any
    replica) beats a load that was already under way, so a revoked client is never re-cached."""

    def __init__(self, hub: Hub | None = None) -> None:
        self._clients: dict[str, CachedClient | None] = {}
        self._neg: dict[str, float] = {}
        self._loading: SingleFlight[CachedClient | None] = SingleFlight()
        self._epoch = 0
        self._generation: dict[str, int] = {}
        if hub is not None:
            subscribe(hub, {"client": self.invalidate, "issuer": self.invalidate_issuer,
                            "account": lambda _account: self.clear()}, self.clear)

    def invalidate(self, client_id: str) -> None:
        self._generation[client_id] = self._generation.get(client_id, 0) + 1
        self._clients.pop(client_id, None)
        self._loading.forget(client_id)

    def invalidate_issuer(self, issuer_id: str) -> None:
        for cid, c in list(self._clients.items()):
            if c is None or c.issuer_id == issuer_id:
                self.invalidate(cid)
        self._epoch += 1  # a load in flight may be for one of this issuer's clients
        self._loading.clear()

    def clear(self) -> None:
        self._epoch += 1
        self._clients.clear()
        self._neg.clear()
        self._loading.clear()

    async def get(self, session_factory: Any, issuer_id: str, client_id: str) -> CachedClient | None:
        """The active client of this issuer (whose issuer is active too), or None."""
        now = time.monotonic()
        if client_id in self._clients:
            cached = self._clients[client_id]
            if cached is not None and now - cached.loaded_at < CLIENT_TTL_SECONDS:
                return cached if cached.issuer_id == issuer_id else None
            if cached is None and now - self._neg.get(client_id, 0.0) < 5.0:
                return None
        pending = self._loading.run(client_id, lambda: self._load(session_factory, client_id))
        loaded = await asyncio.shield(pending)
        return loaded if loaded is not None and loaded.issuer_id == issuer_id else None

    async def _load(self, session_factory: Any, client_id: str) -> CachedClient | None:
        version = (self._epoch, self._generation.get(client_id, 0))
        async with session_factory() as session:
            row = await session.scalar(
                select(Client).join(Issuer, Issuer.id == Client.issuer_id)
                .where(Client.id == client_id, Client.status == "active", Issuer.status == "active",
                       Issuer.account_id == Client.account_id))
        loaded = CachedClient.from_row(row) if row is not None else None
        if version != (self._epoch, self._generation.get(client_id, 0)):
            return loaded  # invalidated meanwhile: answer this caller, cache nothing
        if len(self._clients) > 50_000:
            self._clients.clear()
            self._neg.clear()
        previous = self._clients.get(client_id)
        if loaded is not None and previous is not None and previous.secret_hash == loaded.secret_hash:
            # Same secret: a reload alone must not send every concurrent request back to argon2.
            loaded.verified_secret_mac = previous.verified_secret_mac
            loaded.verified_at = previous.verified_at
        self._clients[client_id] = loaded
        if loaded is None:
            self._neg[client_id] = time.monotonic()
        return loaded
