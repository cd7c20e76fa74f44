"""The steps of a hosted sign-in after the first factor, kept in PostgreSQL (so any replica can
serve the next step): the pending sign-in, second-factor checks with their limits, trusted-device
cookies, and finishing into a login session whose `authentication` carries `amr`/`acr`."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.crypto import constant_time_equals, generate_secret, hmac_sha256
from app.core.ids import new_id, now_ms
from app.events.service import record
from app.hosted.policy import acr_for, amr_for
from app.models.oidc import LoginSession
from app.models.signin import PendingSignin, SecondFactorThrottle
from app.models.trusted_device import TrustedDevice
from app.models.user import User
from app.models.user_verifier import UserVerifier
from app.oidc.runtime import get_runtime
from app.session.service import create_login_session
from app.user.verifiers import verify_code

PENDING_TTL_MS = 10 * 60 * 1000
# Wrong codes allowed per pending sign-in; then the user starts again from the password.
MAX_ATTEMPTS = 5
# Per user, from any address: the first few wrong codes cost nothing, then each one doubles the
# wait before another code is even checked (2 s, 4 s, ... up to 15 min); a success resets it, and a
# quiet day forgets it. A million guesses spread over many addresses take years.
FREE_FAILURES = 5
MAX_DELAY_SECONDS = 900
FORGET_AFTER_MS = 24 * 3600 * 1000
DEVICE_TTL_MS = 30 * 24 * 3600 * 1000


def pending_cookie_name(issuer_id: str) -> str:
    return f"authpi_pending_{issuer_id}"


def device_cookie_name(issuer_id: str) -> str:
    return f"authpi_device_{issuer_id}"


def user_principal(user: User) -> Principal:
    return Principal(type="user", account_id=user.account_id, account_level=False,
                     issuer_id=user.issuer_id, user_id=user.id)


def event_auth(user_id: str | None, issuer_id: str, ip: str) -> dict[str, Any]:
    if user_id is None:
        return {"type": "anonymous", "ip": ip}
    return {"type": "user", "user_id": user_id, "issuer_id": issuer_id}


def _cookie_hash(server_key: str, value: str) -> str:
    return hmac_sha256(server_key, f"pending-signin:{value}")


async def create_pending(session: AsyncSession, server_key: str, *, account_id: str, issuer_id: str,
                         user_id: str | None, stage: str, methods: list[str], return_to: str,
                         data: dict[str, Any] | None = None) -> tuple[PendingSignin, str]:
    cookie = generate_secret(32)
    now = now_ms()
    # Expired sign-ins of this issuer go as new ones come (bounded by the issuer index).
    await session.execute(delete(PendingSignin).where(PendingSignin.issuer_id == issuer_id,
                                                      PendingSignin.account_id == account_id,
                                                      PendingSignin.expires_at < now))
    row = PendingSignin(id=new_id("psi"), account_id=account_id, issuer_id=issuer_id, user_id=user_id,
                        cookie_hash=_cookie_hash(server_key, cookie), stage=stage, methods=methods,
                        attempts=0, return_to=return_to, data=data or {}, created_at=now,
                        expires_at=now + PENDING_TTL_MS)
    session.add(row)
    await session.flush()
    return row, cookie


async def find_pending(session: AsyncSession, server_key: str, issuer_id: str, cookie: str | None,
                       stages: tuple[str, ...]) -> PendingSignin | None:
    """The caller's pending sign-in at this issuer, locked (concurrent posts serialise here)."""
    if not cookie or len(cookie) > 100:
        return None
    row = await session.scalar(select(PendingSignin).where(
        PendingSignin.cookie_hash == _cookie_hash(server_key, cookie),
        PendingSignin.issuer_id == issuer_id).with_for_update())
    if row is None or row.stage not in stages or row.expires_at <= now_ms():
        return None
    return row


async def drop_pending(session: AsyncSession, row: PendingSignin) -> None:
    await session.execute(delete(PendingSignin).where(PendingSignin.id == row.id,
                                                      PendingSignin.account_id == row.account_id))


async def load_user(session: AsyncSession, row: PendingSignin) -> User | None:
    if row.user_id is None:
        return None
    return await session.scalar(select(User).where(
        User.id == row.user_id, User.account_id == row.account_id, User.issuer_id == row.issuer_id,
        User.status == "active"))


# ---- throttles ------------------------------------------------------------------------------

SECOND_FACTOR = "second_factor"  # the runtime throttle's credential kind (the user is the credential)


async def second_factor_wait(request: Request, user_id: str, ip: str) -> int:
    """Seconds to wait before another code from this address for this user (0: go ahead), from the
    runtime kit's shared failure throttle: counted per (user, address) and per address, so a flood
    from other addresses never locks the user out at theirs."""
    return await get_runtime(request).throttle.admit(SECOND_FACTOR, user_id, ip) or 0


async def second_factor_failed(request: Request, user_id: str, ip: str) -> None:
    await get_runtime(request).throttle.failed(SECOND_FACTOR, user_id, ip)


async def second_factor_succeeded(request: Request, user_id: str, ip: str) -> None:
    await get_runtime(request).throttle.succeeded(SECOND_FACTOR, user_id, ip)


async def user_wait_seconds(session: AsyncSession, account_id: str, user_id: str) -> int:
    row = await session.scalar(select(SecondFactorThrottle).where(
        SecondFactorThrottle.user_id == user_id, SecondFactorThrottle.account_id == account_id))
    if row is None:
        return 0
    remaining = row.next_allowed_at - now_ms()
    return max(0, -(-remaining // 1000))


async def user_failed(session: AsyncSession, account_id: str, issuer_id: str, user_id: str) -> int:
    """Count a wrong code against the user (across all addresses); returns the new wait in seconds."""
    now = now_ms()
    row = await session.scalar(select(SecondFactorThrottle).where(
        SecondFactorThrottle.user_id == user_id, SecondFactorThrottle.account_id == account_id
    ).with_for_update())
    if row is None:
        row = SecondFactorThrottle(user_id=user_id, account_id=account_id, issuer_id=issuer_id,
                                   failures=0, next_allowed_at=0, last_failure_at=0)
        session.add(row)
    if now - row.last_failure_at > FORGET_AFTER_MS:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    over = row.failures - FREE_FAILURES
    delay = 0 if over <= 0 else min(MAX_DELAY_SECONDS, 2 ** over)
    row.next_allowed_at = now + delay * 1000
    await session.flush()
    return delay


async def user_succeeded(session: AsyncSession, account_id: str, user_id: str) -> None:
    await session.execute(delete(SecondFactorThrottle).where(
        SecondFactorThrottle.user_id == user_id, SecondFactorThrottle.account_id == account_id))


# ---- second factor ---------------------------------------------------------------------------

async def check_code(session: AsyncSession, server_key: str, user: User, code: str) -> str | None:
    """A TOTP code (each accepted once per verifier) or an unused backup code of any of the
    user's active TOTP verifiers. Returns "otp" or "backup", or None (the verifier records the
    `user.mfa.verification.*` events)."""
    code = code.strip()[:32]
    rows = (await session.scalars(select(UserVerifier).where(
        UserVerifier.user_id == user.id, UserVerifier.account_id == user.account_id,
        UserVerifier.issuer_id == user.issuer_id, UserVerifier.type == "totp",
        UserVerifier.status == "active").order_by(UserVerifier.id).with_for_update())).all()
    if not code:
        return None
    auth = user_principal(user)
    for v in rows:
        result = await verify_code(session, user, v, code=code, server_key=server_key, auth=auth)
        if result.get("success"):
            return "backup" if "remaining" in result else "otp"
    return None


# ---- trusted devices -------------------------------------------------------------------------

def _device_secret_hash(server_key: str, secret: str) -> str:
    return hmac_sha256(server_key, f"trusted-device:{secret}")


async def match_device(session: AsyncSession, server_key: str, user: User, cookie: str | None
                       ) -> TrustedDevice | None:
    """The trusted device this browser's cookie proves, if it is the user's, live, and was trusted
    at the hosted second-factor step (admin-created devices have no secret and never match)."""
    if not cookie or len(cookie) > 200 or "." not in cookie:
        return None
    device_id, _, secret = cookie.partition(".")
    device = await session.scalar(select(TrustedDevice).where(
        TrustedDevice.id == device_id, TrustedDevice.user_id == user.id,
        TrustedDevice.account_id == user.account_id, TrustedDevice.issuer_id == user.issuer_id))
    if device is None or device.secret_hash is None or device.expires_at <= now_ms():
        return None
    if not constant_time_equals(device.secret_hash, _device_secret_hash(server_key, secret)):
        return None
    device.last_used_at = now_ms()
    return device


async def trust_this_device(session: AsyncSession, server_key: str, user: User, user_agent: str | None
                            ) -> tuple[TrustedDevice, str]:
    now = now_ms()
    secret = generate_secret(32)
    device = TrustedDevice(id=new_id("dev"), account_id=user.account_id, issuer_id=user.issuer_id,
                           user_id=user.id, fingerprint=f"hosted:{generate_secret(12)}",
                           name="Browser", user_agent=(user_agent or "")[:512] or None,
                           trusted_at=now, expires_at=now + DEVICE_TTL_MS,
                           secret_hash=_device_secret_hash(server_key, secret), created_at=now)
    session.add(device)
    await session.flush()
    await record(session, type="user.device.trusted", account_id=user.account_id, issuer_id=user.issuer_id,
                 user_id=user.id, subject={"type": "trusted_device", "id": device.id, "user_id": user.id},
                 data={"name": device.name, "expires_at": device.expires_at, "via": "hosted_login"},
                 auth=event_auth(user.id, user.issuer_id, ""))
    return device, f"{device.id}.{secret}"


# ---- finishing -------------------------------------------------------------------------------

def authentication_for(methods: list[str], *, trusted_device: str | None = None) -> dict[str, Any]:
    amr = amr_for(methods)
    acr = acr_for(amr)
    out: dict[str, Any] = {"methods": methods, "amr": amr, "acr": acr,
                           "mfa": "mfa" in amr or trusted_device is not None}
    if trusted_device:
        out["trusted_device"] = trusted_device
    return out


async def start_session(session: AsyncSession, request: Request, *, account_id: str, issuer_id: str,
                        user_id: str, methods: list[str], ip: str, trusted_device: str | None = None
                        ) -> tuple[LoginSession, str]:
    login, cookie = await create_login_session(
        session, server_key=request.app.state.secret_key, account_id=account_id, issuer_id=issuer_id,
        user_id=user_id, origin=ip, user_agent=request.headers.get("user-agent"),
        authentication=authentication_for(methods, trusted_device=trusted_device))
    login.last_activity_at = now_ms()
    login.auth_time = int(time.time())
    return login, cookie
