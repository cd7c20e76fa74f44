"""OIDC Back-Channel Logout 1.0: when a sign-in session ends (hosted logout, an admin's revoke or
suspension, the console), each client that received tokens in it and has
`settings.openid.backchannel_logout_uri` gets a signed `logout_token` POSTed there.

The notice is written to the general outbox (app.outbox) in the transaction that ends the session,
so it is sent if and only if the session really ended, retried with backoff, and never lost. The
token is signed then (RS256, the issuer's ID-token key, `typ: logout+jwt`): `iss`, `aud` (the
client), `iat`, `exp`, `jti`, `sub`, `sid` and the back-channel logout event; never a `nonce`.
Delivery applies the webhooks' address rules: the URL must resolve to public addresses only
(unless `AUTHPI_WEBHOOKS_ALLOW_PRIVATE`); a 2xx is success, a 4xx is final, anything else is retried.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.client import Client
from app.models.oidc import LoginSession, OidcGrant
from app.models.outbox import OutboxMessage
from app.oidc import tokens
from app.outbox.registry import DeliveryContext, Kind, PermanentFailure, register_kind
from app.outbox.service import enqueue
from app.session.service import on_session_ended
from app.webhooks.url_safety import check_url

KIND = "oidc_backchannel_logout"
EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TTL = 3600  # the notice may wait for retries; the RP checks iat and jti anyway
TIMEOUT_SECONDS = 10.0


def logout_claims(issuer_url: str, client_id: str, row: LoginSession) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": issuer_url, "aud": client_id, "iat": now, "exp": now + LOGOUT_TOKEN_TTL,
            "jti": tokens.new_jti(), "sub": row.user_id, "sid": row.id, "events": {EVENT: {}}}


async def _clients_of(session: AsyncSession, row: LoginSession) -> list[tuple[str, str]]:
    """(client id, back-channel URI) of the active clients that got tokens in this session."""
    used = select(OidcGrant.client_id).where(OidcGrant.session_id == row.id,
                                             OidcGrant.account_id == row.account_id)
    clients = await session.scalars(select(Client).where(
        Client.account_id == row.account_id, Client.issuer_id == row.issuer_id,
        Client.status == "active",
        (Client.id.in_(used) | (Client.id == row.client_id))))
    out = []
    for client in clients:
        uri = ((client.settings or {}).get("openid") or {}).get("backchannel_logout_uri")
        if isinstance(uri, str) and uri:
            out.append((client.id, uri))
    return out


async def notify_session_ended(session: AsyncSession, row: LoginSession) -> None:
    """The session-end hook: one outbox notice per client with a back-channel URI."""
    rt: Any = session.info.get("oidc")
    if rt is None:
        return  # a unit of work outside a server (the CLI): no OIDC runtime to sign with
    targets = await _clients_of(session, row)
    if not targets:
        return
    keys = await rt.keys.get(rt.session_factory(), row.issuer_id)
    if keys is None:
        return  # the issuer is gone: its clients have nothing to log out of
    for client_id, uri in targets:
        token = tokens.sign_id_token(keys, logout_claims(keys.issuer_url, client_id, row),
                                     typ="logout+jwt")
        await enqueue(session, server_key=rt.server_key, public_url=rt.keys.public_url, kind=KIND,
                      account_id=row.account_id, issuer_id=row.issuer_id, purpose="backchannel_logout",
                      ref_id=row.id, payload={"uri": uri, "client_id": client_id, "logout_token": token})


async def deliver(ctx: DeliveryContext, row: OutboxMessage, payload: dict[str, Any]) -> None:
    uri = str(payload.get("uri") or "")
    problem = await check_url(uri, allow_private=ctx.settings.webhooks_allow_private)
    if problem is not None:
        raise PermanentFailure(f"backchannel_logout_uri {problem}")
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as http:
        response = await http.post(uri, data={"logout_token": payload.get("logout_token", "")},
                                   headers={"Cache-Control": "no-store"})
    if 200 <= response.status_code < 300:
        return
    if 400 <= response.status_code < 500 and response.status_code != 429:
        raise PermanentFailure(f"the client answered {response.status_code}")
    raise RuntimeError(f"the client answered {response.status_code}")


register_kind(Kind(name=KIND, deliver=deliver))
on_session_ended(KIND, notify_session_ended)
