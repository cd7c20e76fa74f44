"""Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3).

client_secret_basic, client_secret_post, and `none` for public clients. Secrets are argon2id
hashes, so a verified (client id, HMAC of the secret) pair is cached for a bounded time: the token
endpoint then needs no database round trip and no argon2 per request. Secret rotation, blocking and
deletion drop the entry on every replica (NOTIFY, see cache.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from fastapi import Request
from sqlalchemy import select

from app.core.auth import split_basic
from app.core.crypto import constant_time_equals, hmac_sha256, verify_secret
from app.core.ids import looks_like_id
from app.models.client import Client
from app.models.issuer import Issuer
from app.oidc.errors import InvalidClient, InvalidRequest

CLIENT_TTL_SECONDS = 60.0
MAX_SECRET_LENGTH = 256


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
                   default_resources=list(oid.get("default_resources") or []))


class ClientCache:
    """Per-process cache of clients. Loads are single-flight; an invalidation (NOTIFY from any
    replica) beats a load that was already under way, so a revoked client is never re-cached."""

    def __init__(self) -> None:
        self._clients: dict[str, CachedClient | None] = {}
        self._neg: dict[str, float] = {}
        self._loading: dict[str, asyncio.Future[CachedClient | None]] = {}
        self._epoch = 0
        self._generation: dict[str, int] = {}

    def invalidate(self, client_id: str) -> None:
        self._generation[client_id] = self._generation.get(client_id, 0) + 1
        self._clients.pop(client_id, None)
        self._loading.pop(client_id, None)

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
        pending = self._loading.get(client_id)
        if pending is None:
            pending = asyncio.ensure_future(self._load(session_factory, client_id))
            self._loading[client_id] = pending

            def done(future: asyncio.Future[CachedClient | None]) -> None:
                if self._loading.get(client_id) is future:
                    self._loading.pop(client_id, None)
                if not future.cancelled():
                    future.exception()

            pending.add_done_callback(done)
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


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    parts = split_basic(value)
    if parts is None:
        raise InvalidClient("Malformed Basic credentials", basic=True)
    cid, secret = parts
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(cid.replace("+", " ")), unquote(secret.replace("+", " "))


async def authenticate_client(request: Request, issuer_id: str, form: dict[str, str],
                              *, require_confidential: bool = False) -> CachedClient:
    """The authenticated client, or InvalidClient (401). Unknown ids and wrong secrets look alike."""
    from app.oidc.runtime import get_runtime

    header = request.headers.get("authorization")
    via_basic = False
    secret: str | None
    if header and header.lower().startswith("basic "):
        creds = _basic(header)
        assert creds is not None
        client_id, secret = creds
        via_basic = True
        if form.get("client_id") and form["client_id"] != client_id:
            raise InvalidRequest("client_id does not match the Basic credentials")
        if form.get("client_secret"):
            raise InvalidRequest("Use one client authentication method only")
    else:
        client_id = form.get("client_id") or ""
        secret = form.get("client_secret")
    if not client_id:
        raise InvalidClient("client_id is required", basic=via_basic)
    if not looks_like_id(client_id, "c") or (secret is not None and len(secret) > MAX_SECRET_LENGTH):
        raise InvalidClient(basic=via_basic)
    rt = get_runtime(request)
    client = await rt.clients.get(rt.session_factory(), issuer_id, client_id)
    if client is None:
        if secret:
            await asyncio.to_thread(verify_secret, None, secret)  # uniform timing
        raise InvalidClient(basic=via_basic)
    if not client.confidential:
        if secret:
            raise InvalidClient("A public client has no secret", basic=via_basic)
        if require_confidential:
            raise InvalidClient("This request needs a confidential client")
        return client
    if not secret:
        raise InvalidClient("Client authentication is required", basic=via_basic)
    method = "client_secret_basic" if via_basic else "client_secret_post"
    if client.auth_method not in (None, method):
        raise InvalidClient(f"This client authenticates with {client.auth_method}", basic=via_basic)
    mac = hmac_sha256(rt.server_key, f"client:{client.id}:{secret}")
    fresh = time.monotonic() - client.verified_at < CLIENT_TTL_SECONDS
    if fresh and client.verified_secret_mac and constant_time_equals(mac, client.verified_secret_mac):
        return client
    limiter = rt.throttle
    limiter.check(f"client:{client.id}")
    # Single flight: concurrent requests with the same secret share one argon2 verification.
    key = (client.id, mac)
    pending = _in_flight.get(key)
    if pending is None:
        pending = asyncio.ensure_future(rt.hash_pool.run(verify_secret, client.secret_hash, secret))
        _in_flight[key] = pending
        pending.add_done_callback(lambda _f, k=key: _in_flight.pop(k, None))
    ok = await asyncio.shield(pending)
    if not ok:
        limiter.fail(f"client:{client.id}")
        raise InvalidClient(basic=via_basic)
    client.verified_secret_mac = mac
    client.verified_at = time.monotonic()
    return client


_in_flight: dict[tuple[str, str], asyncio.Future[bool]] = {}


# -- agents (`agt_` ids) at the client_credentials grant -------------------------------------------

AGENT_PREFIX = "agt_"
# base64("agt_...") starts with these five characters: lets the Basic case be told apart without
# decoding every client's header (the client hot path only pays for two prefix checks).
_AGENT_BASIC_PREFIX = "YWd0X"


@dataclass
class AgentPrincipal:
    """An agent authenticated at the token endpoint with one of its secret verifiers."""

    id: str
    account_id: str
    issuer_id: str
    scopes: list[str]
    event_template: tuple[Any, ...] | None = None


def agent_credentials(request: Request, form: dict[str, str]) -> tuple[str, str | None, bool] | None:
    """(agent id, secret, via Basic) when the caller authenticates as an agent, else None."""
    header = request.headers.get("authorization")
    if header and header.lower().startswith("basic "):
        if not header[6:].lstrip().startswith(_AGENT_BASIC_PREFIX):
            return None
        creds = _basic(header)
        assert creds is not None
        agent_id, secret = creds
        if not agent_id.startswith(AGENT_PREFIX):
            return None
        if form.get("client_id") and form["client_id"] != agent_id:
            raise InvalidRequest("client_id does not match the Basic credentials")
        if form.get("client_secret"):
            raise InvalidRequest("Use one client authentication method only")
        return agent_id, secret, True
    client_id = form.get("client_id") or ""
    if not client_id.startswith(AGENT_PREFIX):
        return None
    return client_id, form.get("client_secret"), False


async def authenticate_agent_client(request: Request, issuer_id: str, account_id: str,
                                    creds: tuple[str, str | None, bool]) -> AgentPrincipal:
    """The active agent of this issuer whose active secret verifier matches, or InvalidClient (401).

    Unknown, suspended and deleted agents, revoked verifiers and wrong secrets look alike (the agent
    service spends a dummy argon2 verification when there is nothing to compare against).
    """
    from app.agent.service import authenticate_agent
    from app.oidc.runtime import get_runtime

    agent_id, secret, via_basic = creds
    if not looks_like_id(agent_id, "agt"):
        raise InvalidClient(basic=via_basic)
    if not secret:
        raise InvalidClient("Client authentication is required", basic=via_basic)
    if len(secret) > MAX_SECRET_LENGTH:
        raise InvalidClient(basic=via_basic)
    limiter = get_runtime(request).throttle
    limiter.check(f"agent:{agent_id}")
    # One transaction: a successful verification counts the verifier's use.
    async with request.app.state.db.unit_of_work() as session:
        agent = await authenticate_agent(session, issuer_id=issuer_id, agent_id=agent_id, secret=secret)
        principal = None if agent is None or agent.account_id != account_id else AgentPrincipal(
            id=agent.id, account_id=agent.account_id, issuer_id=agent.issuer_id,
            scopes=[s for s in (agent.scopes or []) if isinstance(s, str)])
    if principal is None:
        limiter.fail(f"agent:{agent_id}")
        raise InvalidClient(basic=via_basic)
    return principal
