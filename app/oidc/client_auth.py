"""Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3).

client_secret_basic, client_secret_post, and `none` for public clients. Secrets are argon2id
hashes, so a verified (client id, HMAC of the secret) pair is cached for a bounded time: the token
endpoint then needs no database round trip and no argon2 per request. Secret rotation, blocking and
deletion drop the entry on every replica (app.client.cache, subscribed to the runtime hub).

Every secret check goes through the runtime kit's failure throttle (kinds `client` and `agent`,
per credential and client address) and its argon2 gate.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote

from fastapi import Request

from app.agent.verification import AgentAuthenticator, Throttled, VerifiedAgent
from app.client.cache import CLIENT_TTL_SECONDS, CachedClient
from app.core.auth import split_basic
from app.core.crypto import constant_time_equals, hmac_sha256
from app.core.ids import looks_like_id
from app.oidc.errors import InvalidClient, InvalidRequest, TemporarilyUnavailable
from app.runtime.argon2 import Saturated

MAX_SECRET_LENGTH = 256


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


def _runtime(request: Request) -> Any:
    """The app's OidcRuntime (app.oidc.runtime; read from the app, which imports this module)."""
    return request.app.state.oidc


def _throttled(retry_after: int) -> TemporarilyUnavailable:
    return TemporarilyUnavailable("Too many failed attempts; try again later",
                                  headers={"Retry-After": str(retry_after)})


async def authenticate_client(request: Request, issuer_id: str, form: dict[str, str],
                              *, require_confidential: bool = False) -> CachedClient:
    """The authenticated client, or InvalidClient (401). Unknown ids and wrong secrets look alike."""
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
    rt = _runtime(request)
    client = await rt.clients.get(rt.session_factory(), issuer_id, client_id)
    if client is None:
        if secret:
            await _check_secret(rt, None, secret)  # uniform timing
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
    address = rt.address.of_scope(request.scope)
    retry = await rt.throttle.admit("client", client.id, address)
    if retry is not None:
        raise _throttled(retry)
    # Concurrent requests with the same secret share one argon2 verification.
    if not await _check_secret(rt, client.secret_hash, secret, share=("client", client.id, mac)):
        await rt.throttle.failed("client", client.id, address)
        raise InvalidClient(basic=via_basic)
    await rt.throttle.succeeded("client", client.id, address)
    client.verified_secret_mac = mac
    client.verified_at = time.monotonic()
    return client


async def _check_secret(rt: Any, stored_hash: str | None, secret: str, *, share: Any = None) -> bool:
    try:
        return await rt.argon2.verify(stored_hash, secret, share=share)
    except Saturated as exc:
        raise _throttled(exc.retry_after) from exc


# -- agents (`agt_` ids) at the client_credentials grant -------------------------------------------

AGENT_PREFIX = "agt_"
# base64("agt_...") starts with these five characters: lets the Basic case be told apart without
# decoding every client's header (the client hot path only pays for two prefix checks).
_AGENT_BASIC_PREFIX = "YWd0X"


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
                                    creds: tuple[str, str | None, bool]) -> VerifiedAgent:
    """The active agent of this issuer whose active secret verifier matches, or InvalidClient (401).

    Unknown, suspended and deleted agents, removed verifiers and wrong secrets look alike. Verified
    secrets are cached per process (app.agent.verification): a repeat costs no argon2 and no
    database round trip.
    """
    agent_id, secret, via_basic = creds
    if not looks_like_id(agent_id, "agt"):
        raise InvalidClient(basic=via_basic)
    if not secret:
        raise InvalidClient("Client authentication is required", basic=via_basic)
    if len(secret) > MAX_SECRET_LENGTH:
        raise InvalidClient(basic=via_basic)
    authenticator: AgentAuthenticator = request.app.state.agent_authenticator
    address = _runtime(request).address.of_scope(request.scope)
    try:
        agent = await authenticator.verify(issuer_id, agent_id, secret, address)
    except Throttled as exc:
        raise _throttled(exc.retry_after) from exc
    except Saturated as exc:
        raise _throttled(exc.retry_after) from exc
    if agent is None or agent.account_id != account_id:
        raise InvalidClient(basic=via_basic)
    return agent


async def authenticate_caller(request: Request, issuer_id: str, account_id: str, form: dict[str, str],
                              *, require_confidential: bool = False) -> CachedClient | VerifiedAgent:
    """A client, or an agent with its `agt_` id and a secret (at `/revoke` and `/introspect`)."""
    creds = agent_credentials(request, form)
    if creds is not None:
        return await authenticate_agent_client(request, issuer_id, account_id, creds)
    return await authenticate_client(request, issuer_id, form, require_confidential=require_confidential)


def caller_id(caller: CachedClient | VerifiedAgent) -> str:
    return caller.agent_id if isinstance(caller, VerifiedAgent) else caller.id
