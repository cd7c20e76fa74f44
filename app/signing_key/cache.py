"""The per-process cache of issuers' key sets: signing needs no database round trip.

Subscribed to the runtime hub: an `issuer:<id>` invalidation (rotation, any change of the issuer)
forces a reload of that set; a lost listener marks every set stale. A stale set is reloaded on its
next use, and served as it is when the database cannot be reached (public keys and metadata:
discovery and JWKS keep answering through an outage).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import decrypt
from app.core.ids import now_ms
from app.models.issuer import Issuer
from app.models.signing_key import SigningKey
from app.runtime.hub import Hub, is_unreachable
from app.runtime.invalidation import subscribe
from app.runtime.singleflight import SingleFlight
from app.signing_key.service import JoseKey

# Cached key sets are re-read at least this often, so a rotation made by another replica shows up
# even without a notification; an unknown `kid` also forces a (rate-limited) reload.
CACHE_TTL_SECONDS = 30.0
# (issuer url, the issuer's available scopes, its settings) -> the discovery document's bytes (the
# protocol layer renders it; this package knows nothing of OIDC).
DiscoveryRenderer = Callable[[str, list[str], dict[str, Any]], bytes]


@dataclass
class KeySet:
    """One issuer's keys, ready to sign and verify, and its pre-rendered JWKS."""

    issuer_id: str
    account_id: str
    signers: dict[str, tuple[str, JoseKey]]  # alg -> (kid, private key)
    verifiers: dict[str, tuple[str, JoseKey]]  # kid -> (alg, public key)
    jwks_body: bytes
    discovery_body: bytes
    issuer_url: str
    issuer_name: str = ""
    loaded_at: float = field(default_factory=time.monotonic)


def _load_private(server_key: str, row: SigningKey) -> JoseKey:
    pem = decrypt(server_key, row.private_key_encrypted, row.id.encode())
    if row.alg == "RS256":
        return RSAKey.import_key(pem)
    return ECKey.import_key(pem)


class KeyStore:
    """Per-process cache of issuers' key sets (signing needs no database round trip)."""

    def __init__(self, server_key: str, public_url: str, render_discovery: DiscoveryRenderer,
                 hub: Hub | None = None) -> None:
        self.server_key = server_key
        self.public_url = public_url
        self.render_discovery = render_discovery
        self._sets: dict[str, KeySet | None] = {}
        self._loaded: dict[str, float] = {}
        self._loading: SingleFlight[KeySet | None] = SingleFlight()
        # Decrypted keys by kid: a reload re-reads the rows but never re-decrypts a known key.
        self._private: dict[str, JoseKey] = {}
        # Bumped by invalidations: a load that started before one must not cache what it read.
        self._epoch = 0
        self._generation: dict[str, int] = {}
        if hub is not None:
            subscribe(hub, {"issuer": self.invalidate, "account": lambda _account: self.invalidate()},
                      self.mark_stale)

    def mark_stale(self) -> None:
        """Reload every set on its next use (served as is if the database is unreachable)."""
        self._epoch += 1
        self._loading.clear()
        self._loaded = dict.fromkeys(self._loaded, 0.0)

    def invalidate(self, issuer_id: str | None = None) -> None:
        if issuer_id is None:
            self._epoch += 1
            self._sets.clear()
            self._loading.clear()
        else:
            self._generation[issuer_id] = self._generation.get(issuer_id, 0) + 1
            self._sets.pop(issuer_id, None)
            self._loading.forget(issuer_id)

    async def get(self, session_factory: Any, issuer_id: str) -> KeySet | None:
        """The issuer's key set, or None when the issuer does not exist or does not serve."""
        if issuer_id in self._sets:
            cached = self._sets[issuer_id]
            age = time.monotonic() - self._loaded.get(issuer_id, 0.0)
            # Unknown issuers are remembered briefly too, so probing ids cannot hammer the database.
            ttl = CACHE_TTL_SECONDS if cached is not None else 5.0
            if age < ttl:
                return cached
            if cached is not None and age < 4 * ttl:
                # Stale: keep serving it while one background load refreshes it (an explicit
                # invalidation, e.g. a rotation, removes the entry and forces a load instead).
                self._load_once(session_factory, issuer_id)
                return cached
            try:
                return await asyncio.shield(self._load_once(session_factory, issuer_id))
            except Exception as exc:
                if cached is not None and is_unreachable(exc):
                    return cached  # the database is away: public keys and metadata as they were
                raise
        return await asyncio.shield(self._load_once(session_factory, issuer_id))

    def _load_once(self, session_factory: Any, issuer_id: str) -> asyncio.Future[KeySet | None]:
        """Single flight: concurrent requests share one load per issuer."""
        pending = self._loading.run(issuer_id, lambda: self._load_and_store(session_factory, issuer_id))
        return pending

    async def _load_and_store(self, session_factory: Any, issuer_id: str) -> KeySet | None:
        version = (self._epoch, self._generation.get(issuer_id, 0))
        async with session_factory() as session:
            loaded = await self._load(session, issuer_id)
        if version != (self._epoch, self._generation.get(issuer_id, 0)):
            return loaded  # invalidated meanwhile: answer this caller, cache nothing
        if len(self._sets) > 10_000:
            self._sets.clear()
        if len(self._private) > 50_000:
            self._private.clear()
        self._sets[issuer_id] = loaded
        self._loaded[issuer_id] = time.monotonic()
        return loaded

    async def reload_for_kid(self, session_factory: Any, issuer_id: str) -> KeySet | None:
        """An unknown `kid` may be a key another replica just created: reload, at most every 5 s."""
        if time.monotonic() - self._loaded.get(issuer_id, 0.0) < 5.0:
            return self._sets.get(issuer_id)
        self._sets.pop(issuer_id, None)
        return await self.get(session_factory, issuer_id)

    async def _load(self, session: AsyncSession, issuer_id: str) -> KeySet | None:
        issuer = await session.scalar(select(Issuer).where(Issuer.id == issuer_id,
                                                           Issuer.status == "active"))
        if issuer is None:
            return None
        now = now_ms()
        rows = (await session.scalars(
            select(SigningKey).where(SigningKey.issuer_id == issuer_id,
                                     SigningKey.account_id == issuer.account_id)
            .order_by(SigningKey.id.desc()))).all()
        signers: dict[str, tuple[str, JoseKey]] = {}
        verifiers: dict[str, tuple[str, JoseKey]] = {}
        jwks = []
        for row in rows:
            if row.status == "retired" and (row.publish_until or 0) <= now:
                continue
            private = self._private.get(row.id)
            if private is None:
                private = await asyncio.to_thread(_load_private, self.server_key, row)
                self._private[row.id] = private
            verifiers[row.id] = (row.alg, private)
            jwks.append(row.public_jwk)
            if row.status == "active" and row.alg not in signers:
                signers[row.alg] = (row.id, private)
        body = json.dumps({"keys": jwks}, separators=(",", ":")).encode()
        issuer_url = f"{self.public_url}/{issuer_id}"
        discovery = self.render_discovery(issuer_url, list(issuer.available_scopes or []),
                                          dict(issuer.settings or {}))
        return KeySet(issuer_id=issuer_id, account_id=issuer.account_id, signers=signers,
                      verifiers=verifiers, jwks_body=body, discovery_body=discovery,
                      issuer_url=issuer_url, issuer_name=issuer.name)
