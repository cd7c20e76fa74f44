"""Device authorization grant (RFC 8628): codes, and the token endpoint's answers while it polls.

The device code is 32 random bytes; the user code is 8 letters from a 20-consonant alphabet
(no vowels, so no words; no look-alikes such as 0/O or 1/I), shown as `BCDF-GHJK`. Both are stored
as HMACs under the server key. A user code is accepted while its request is pending and live, once
(approval or denial ends it); lookups go through the shared failure throttle (app.oidc.endpoints.device).

At `/token` (RFC 8628 §3.5): `authorization_pending` until the user decides, `slow_down` (and the
interval grows by 5 s) when the device polls faster than its interval, `access_denied` after a
denial, `expired_token` past the lifetime, and `invalid_grant` for an unknown code or one already
redeemed. Errors that follow a write (the poll time, the interval) are returned, not raised, so
the write commits.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id, now_ms
from app.models.device_authorization import DeviceAuthorization
from app.models.oidc import LoginSession, OidcGrant
from app.oidc import tokens
from app.oidc.claims import load_active_user, organizations
from app.oidc.client_auth import CachedClient
from app.oidc.errors import (
    AccessDenied,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
)
from app.oidc.grants.common import Form, IssueContext, grant_jkt, issue_user_tokens
from app.signing_key.cache import KeySet

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP = 5


class AuthorizationPending(OAuthError):
    error = "authorization_pending"


class SlowDown(OAuthError):
    error = "slow_down"


class ExpiredToken(OAuthError):
    error = "expired_token"


def new_user_code() -> str:
    raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def normalize_user_code(value: str | None) -> str | None:
    """The 8 letters of a user code as typed (any case, spaces or dashes), or None."""
    if not value or len(value) > 32:
        return None
    letters = "".join(c for c in value.upper() if c.isalnum())
    if len(letters) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in letters):
        return None
    return letters


def display_user_code(normalized: str) -> str:
    return f"{normalized[:4]}-{normalized[4:]}"


def user_code_hash(server_key: str, normalized: str) -> str:
    return tokens.token_hash(server_key, "user_code", normalized)


def device_code_hash(server_key: str, device_code: str) -> str:
    return tokens.token_hash(server_key, "device_code", device_code)


def allowed(client: CachedClient) -> bool:
    return GRANT_TYPE in client.grant_types


async def start(session: AsyncSession, keys: KeySet, server_key: str, client: CachedClient, form: Form,
                *, ttl_seconds: int, interval: int) -> dict[str, Any]:
    """POST /device_authorization (RFC 8628 §3.1-3.2)."""
    if not allowed(client):
        raise UnauthorizedClient("This client may not use the device authorization grant")
    raw_scope = form.get("scope")
    if raw_scope is None:
        scopes = list(client.scopes)
    else:
        scopes = [s for s in raw_scope.split(" ") if s]
        outside = [s for s in scopes if s not in client.scopes]
        if outside or not scopes:
            raise InvalidScope(f"Scopes not allowed for this client: {' '.join(outside)}" if outside
                               else "scope is empty")
    device_code = tokens.opaque_token("dc")
    user_code = new_user_code()
    now = now_ms()
    session.add(DeviceAuthorization(
        id=new_id("dva"), account_id=keys.account_id, issuer_id=keys.issuer_id, client_id=client.id,
        device_code_hash=device_code_hash(server_key, device_code),
        user_code_hash=user_code_hash(server_key, user_code.replace("-", "")),
        scope=" ".join(dict.fromkeys(scopes)), status="pending", amr=[], interval=interval,
        expires_at=now + ttl_seconds * 1000, created_at=now))
    verification_uri = f"{keys.issuer_url}/device"
    return {"device_code": device_code, "user_code": user_code, "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
            "expires_in": ttl_seconds, "interval": interval}


async def pending_by_user_code(session: AsyncSession, keys: KeySet, server_key: str, normalized: str,
                               *, lock: bool = False) -> DeviceAuthorization | None:
    """The live, undecided request of this issuer with this user code."""
    stmt = select(DeviceAuthorization).where(
        DeviceAuthorization.user_code_hash == user_code_hash(server_key, normalized),
        DeviceAuthorization.issuer_id == keys.issuer_id, DeviceAuthorization.account_id == keys.account_id,
        DeviceAuthorization.status == "pending", DeviceAuthorization.expires_at > now_ms()).limit(1)
    if lock:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


def decide(row: DeviceAuthorization, login: LoginSession | None, approve: bool) -> None:
    row.decided_at = now_ms()
    if not approve or login is None:
        row.status = "denied"
        return
    auth = login.authentication or {}
    row.status = "approved"
    row.user_id = login.user_id
    row.session_id = login.id
    row.auth_time = login.auth_time
    row.amr = list(auth.get("amr") or [])
    row.acr = auth.get("acr")


async def redeem(session: AsyncSession, keys: KeySet, server_key: str, client: CachedClient, form: Form,
                 *, jkt: str | None = None) -> dict[str, Any] | OAuthError:
    """The token request of a polling device (RFC 8628 §3.4-3.5)."""
    if not allowed(client):
        raise UnauthorizedClient("This client may not use the device authorization grant")
    code = form.get("device_code")
    if not code or len(code) > 256:
        raise InvalidRequest("device_code is required")
    row = await session.scalar(select(DeviceAuthorization).where(
        DeviceAuthorization.device_code_hash == device_code_hash(server_key, code),
        DeviceAuthorization.issuer_id == keys.issuer_id, DeviceAuthorization.account_id == keys.account_id,
        DeviceAuthorization.client_id == client.id).with_for_update())
    if row is None:
        raise InvalidGrant("The device code is invalid")
    if row.status == "used":
        raise InvalidGrant("The device code was already used")
    now = now_ms()
    if row.expires_at <= now:
        raise ExpiredToken("The device code has expired; start again")
    if row.status == "denied":
        raise AccessDenied("The user denied the request")
    if row.status == "pending":
        too_soon = row.last_polled_at is not None and now - row.last_polled_at < row.interval * 1000
        row.last_polled_at = now
        if too_soon:
            row.interval += SLOW_DOWN_STEP
            return SlowDown(f"Poll at most every {row.interval} seconds")
        return AuthorizationPending("The user has not decided yet")
    # approved: redeemed once
    row.status = "used"
    user = await load_active_user(session, row.account_id, row.issuer_id, row.user_id or "")
    login = await session.get(LoginSession, row.session_id) if row.session_id else None
    if user is None or login is None or login.status != "active" or login.account_id != row.account_id:
        return InvalidGrant("The user or their sign-in session is no longer active")
    orgs = await organizations(session, row.account_id, row.issuer_id, user.id)
    grant = OidcGrant(id=new_id("grt"), account_id=row.account_id, issuer_id=row.issuer_id,
                      client_id=client.id, user_id=user.id, session_id=row.session_id, scope=row.scope,
                      org_id=None, resources=[], auth_time=row.auth_time or now // 1000,
                      amr=list(row.amr), acr=row.acr, status="active", created_at=now,
                      dpop_jkt=grant_jkt(client, jkt))
    session.add(grant)
    ctx = IssueContext(keys=keys, server_key=server_key, client=client, grant=grant, user=user, orgs=orgs,
                       jkt=jkt)
    body, refresh_id = await issue_user_tokens(
        session, ctx, nonce=None, with_refresh="refresh_token" in client.grant_types, resources=[])
    login.access_token_issued_at = now
    login.last_activity_at = now
    if refresh_id:
        login.refresh_token_issued_at = now
    await session.flush()
    return body
