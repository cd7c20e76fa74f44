"""The hosted password check, shared by the sign-in page and the invitation page: the runtime kit's
failure throttle (kind `password`, the credential being the issuer and the normalised username,
known or not), the argon2 check and its events.

The client address is the one the runtime resolves (trusted proxies only): a forged
X-Forwarded-For hop neither dodges the throttle nor reaches the trail, and a flood on a username
from other addresses never locks its holder out at theirs."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.service import record
from app.models.user import User
from app.oidc.runtime import get_runtime
from app.user.service import authenticate_password

PASSWORD = "password"  # the throttle's credential kind


def _credential(issuer_id: str, username: str) -> str:
    return f"{issuer_id}:{username.strip().lower()}"


async def password_wait(request: Request, issuer_id: str, username: str, ip: str) -> int | None:
    """None when a password for this username may be checked from this address; else the seconds
    to wait (answer 429 with Retry-After)."""
    return await get_runtime(request).throttle.admit(PASSWORD, _credential(issuer_id, username), ip)


async def check_password(session: AsyncSession, request: Request, *, account_id: str, issuer_id: str,
                         username: str, password: str, ip: str) -> User | None:
    """The active user of the issuer whose password this is, else None. A failure counts against
    the throttle and records `user.verification.failed`; a success clears this address's failures
    and records `user.verification.succeeded`, both in the caller's transaction. Raises
    `app.runtime.argon2.Saturated` when the argon2 gate is full (nothing is counted then)."""
    rt = get_runtime(request)
    credential = _credential(issuer_id, username)
    user = None
    if username and password:
        user = await authenticate_password(session, account_id=account_id, issuer_id=issuer_id,
                                           username=username, password=password, check=rt.argon2.verify)
    if user is None:
        await rt.throttle.failed(PASSWORD, credential, ip)
        await record(session, type="user.verification.failed", account_id=account_id,
                     issuer_id=issuer_id, subject={"type": "issuer", "id": issuer_id},
                     data={"method": "password", "reason": "invalid_credentials", "ip": ip},
                     auth={"type": "anonymous", "ip": ip})
        return None
    await rt.throttle.succeeded(PASSWORD, credential, ip)
    await record(session, type="user.verification.succeeded", account_id=account_id,
                 issuer_id=issuer_id, user_id=user.id, subject={"type": "user", "id": user.id},
                 data={"method": "password", "ip": ip},
                 auth={"type": "user", "user_id": user.id, "issuer_id": issuer_id})
    return user
