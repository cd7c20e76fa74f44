"""Pushed authorization requests (RFC 9126): storing, consuming and marking them.

`/par` stores an authenticated client's validated authorization request and answers a
`request_uri` (`urn:ietf:params:oauth:request_uri:` and 32 random bytes; only its HMAC under the
server key is stored). `/authorize` consumes it once, before `AUTHPI_PAR_REQUEST_URI_TTL_SECONDS`
is over, in one UPDATE (two presentations cannot both succeed), and carries on with the pushed
parameters. The trip through the hosted login repeats the authorization request: the expanded
parameters then carry a `pushed` mark (an HMAC over them, bounded in time), so a client that
requires PAR is still served, and nothing else can pass for a pushed request.
"""

from __future__ import annotations

import json
import secrets
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import constant_time_equals, hmac_sha256
from app.core.ids import new_id, now_ms
from app.models.pushed_request import PushedRequest
from app.oidc import tokens

URN = "urn:ietf:params:oauth:request_uri:"
MARK = "pushed"
MARK_TTL_SECONDS = 3600  # as long as the hosted login keeps an authorization request

_CONSUME = text("""
UPDATE pushed_authorization_requests SET used_at = :now
 WHERE uri_hash = :hash AND used_at IS NULL AND expires_at > :now
   AND issuer_id = :issuer AND account_id = :account AND client_id = :client
RETURNING params
""")


def _hash(server_key: str, request_uri: str) -> str:
    return tokens.token_hash(server_key, "par", request_uri)


async def push(session: AsyncSession, server_key: str, *, account_id: str, issuer_id: str, client_id: str,
               pairs: list[tuple[str, str]], ttl_seconds: int) -> str:
    """Store the request; returns its request_uri."""
    request_uri = URN + secrets.token_urlsafe(32)
    now = now_ms()
    session.add(PushedRequest(id=new_id("par"), uri_hash=_hash(server_key, request_uri),
                              account_id=account_id, issuer_id=issuer_id, client_id=client_id,
                              params={"pairs": [list(p) for p in pairs]}, created_at=now,
                              expires_at=now + ttl_seconds * 1000))
    await session.flush()
    return request_uri


async def consume(session: AsyncSession, server_key: str, *, account_id: str, issuer_id: str,
                  client_id: str, request_uri: str) -> list[tuple[str, str]] | None:
    """The pushed parameters, once: None when unknown, expired, used, or another client's."""
    if not request_uri.startswith(URN) or len(request_uri) > 200:
        return None
    row = (await session.execute(_CONSUME, {
        "now": now_ms(), "hash": _hash(server_key, request_uri), "issuer": issuer_id,
        "account": account_id, "client": client_id})).first()
    if row is None:
        return None
    params = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return [(str(k), str(v)) for k, v in params.get("pairs", [])]


def _mac(server_key: str, pairs: list[tuple[str, str]], expires: int) -> str:
    body = json.dumps([expires, sorted(p for p in pairs if p[0] != MARK)], separators=(",", ":"))
    return hmac_sha256(server_key, f"pushed:{body}")


def mark(server_key: str, pairs: list[tuple[str, str]]) -> tuple[str, str]:
    """The `pushed` parameter vouching that `pairs` came from a consumed pushed request."""
    expires = int(time.time()) + MARK_TTL_SECONDS
    return MARK, f"{expires}.{_mac(server_key, pairs, expires)}"


def marked(server_key: str, pairs: list[tuple[str, str]]) -> bool:
    values = [v for k, v in pairs if k == MARK]
    if len(values) != 1:
        return False
    expires, _, mac = values[0].partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return constant_time_equals(_mac(server_key, pairs, int(expires)), mac)
