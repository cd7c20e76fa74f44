"""Login sessions: created by the hosted login, ended by logout or the sessions admin API.

Ending a session (revoke, suspend, logout) also revokes the grants it produced, so its refresh
tokens stop working and its access tokens fail verification at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Self

from pydantic import Field
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import generate_secret, hmac_sha256
from app.core.errors import ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.responses import JsonDict, ResponseModel, with_fields
from app.core.rows import one_or_404
from app.events.service import record
from app.models.oidc import LoginSession, OidcGrant, RefreshToken

SESSION_TTL_MS = 24 * 3600 * 1000


def cookie_hash(server_key: str, value: str) -> str:
    return hmac_sha256(server_key, f"session-cookie:{value}")


async def create_login_session(session: AsyncSession, *, server_key: str, account_id: str, issuer_id: str,
                               user_id: str, origin: str | None, user_agent: str | None,
                               authentication: dict[str, Any] | None = None
                               ) -> tuple[LoginSession, str]:
    now = now_ms()
    cookie = generate_secret(32)
    row = LoginSession(
        id=new_id("s"), account_id=account_id, issuer_id=issuer_id, user_id=user_id,
        cookie_hash=cookie_hash(server_key, cookie), auth_time=now // 1000, expires_at=now + SESSION_TTL_MS,
        last_activity_at=now, origin=origin, device={"user_agent": (user_agent or "")[:256]},
        authentication=authentication or {"methods": ["pwd"]}, status="active", status_at=now, created_at=now,
        refresh_count=0)
    session.add(row)
    await session.flush()
    await record(session, type="session.created", account_id=account_id, issuer_id=issuer_id,
                 user_id=user_id, subject={"type": "session", "id": row.id},
                 data={"type": "login", "authentication": row.authentication},
                 auth={"type": "user", "user_id": user_id, "issuer_id": issuer_id})
    return row, cookie


async def find_by_cookie(session: AsyncSession, server_key: str, issuer_id: str, cookie: str | None
                         ) -> LoginSession | None:
    if not cookie or len(cookie) > 100:
        return None
    row = await session.scalar(select(LoginSession).where(
        LoginSession.cookie_hash == cookie_hash(server_key, cookie), LoginSession.issuer_id == issuer_id))
    if row is None or row.status != "active" or row.expires_at <= now_ms():
        return None
    return row


async def revoke_session_grants(session: AsyncSession, row: LoginSession, reason: str) -> None:
    now = now_ms()
    grant_ids = select(OidcGrant.id).where(OidcGrant.session_id == row.id,
                                           OidcGrant.account_id == row.account_id)
    await session.execute(update(RefreshToken).where(RefreshToken.grant_id.in_(grant_ids),
                                                     RefreshToken.status == "active")
                          .values(status="revoked"))
    await session.execute(update(OidcGrant).where(OidcGrant.session_id == row.id,
                                                  OidcGrant.account_id == row.account_id,
                                                  OidcGrant.status == "active")
                          .values(status="revoked", revoked_reason=reason, updated_at=now))


# Run in the transaction that ends a sign-in session (registered by the protocol packages, e.g.
# OIDC back-channel logout, which writes its notices to the outbox there).
SessionEnded = Callable[[AsyncSession, LoginSession], Awaitable[None]]
_ENDED_HOOKS: dict[str, SessionEnded] = {}


def on_session_ended(name: str, hook: SessionEnded) -> None:
    _ENDED_HOOKS[name] = hook


async def end_session(session: AsyncSession, row: LoginSession, *, status: str, reason: str | None,
                      event: str, auth: Any) -> LoginSession:
    now = now_ms()
    row.status = status
    row.status_at = now
    row.status_reason = reason
    row.updated_at = max(now, (row.updated_at or row.created_at) + 1)
    if status == "revoked":
        row.revoked_at = now
        row.revoked_reason = reason
    if hasattr(auth, "actor_id"):
        row.status_by = auth.actor_id
    await revoke_session_grants(session, row, reason or status)
    await session.flush()
    for hook in list(_ENDED_HOOKS.values()):
        await hook(session, row)
    await record(session, type=event, account_id=row.account_id, issuer_id=row.issuer_id,
                 user_id=row.user_id, subject={"type": "session", "id": row.id},
                 data={"status": status, "reason": reason}, auth=auth)
    return row


async def get_session(session: AsyncSession, account_id: str, issuer_id: str, session_id: str
                      ) -> LoginSession:
    stmt = select(LoginSession).where(LoginSession.id == session_id, LoginSession.account_id == account_id,
                                      LoginSession.issuer_id == issuer_id)
    return await one_or_404(session, stmt, "session")


async def reactivate(session: AsyncSession, row: LoginSession, auth: Any) -> LoginSession:
    if row.status != "suspended":
        raise ValidationFailed("Only a suspended session can be reactivated", field="status")
    if row.expires_at <= now_ms():
        raise ValidationFailed("The session has expired", field="expires_at")
    now = now_ms()
    row.status = "active"
    row.status_at = now
    row.status_reason = None
    row.status_by = getattr(auth, "actor_id", None)
    row.updated_at = max(now, (row.updated_at or row.created_at) + 1)
    await session.flush()
    await record(session, type="session.reactivated", account_id=row.account_id, issuer_id=row.issuer_id,
                 user_id=row.user_id, subject={"type": "session", "id": row.id}, data={}, auth=auth)
    return row


class SessionClient(ResponseModel):
    id: str


class SessionOut(ResponseModel):
    id: str
    user_id: str
    issuer_id: str
    type: str = "login"
    status: str
    status_at: int | None
    status_reason: str | None
    status_by: str | None
    authentication: JsonDict
    op_session_id: str
    device: JsonDict
    origin: str | None
    ttl: int
    last_activity_at: int | None
    access_token_issued_at: int | None
    refresh_token_issued_at: int | None
    refresh_count: int
    compromised: bool = False
    revoked_reason: str | None
    metadata: JsonDict = Field(validation_alias="metadata_")
    created_at: int
    updated_at: int | None
    expires_at: int
    revoked_at: int | None
    client: SessionClient | None

    @classmethod
    def of(cls, row: LoginSession) -> Self:
        status = row.status
        if status == "active" and row.expires_at <= now_ms():
            status = "expired"
        return cls.model_validate(with_fields(
            row, type="login", status=status, op_session_id=row.id, ttl=SESSION_TTL_MS // 1000,
            compromised=False, client=SessionClient(id=row.client_id) if row.client_id else None))
