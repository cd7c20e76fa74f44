"""Trusted devices of a user: a device trusted here skips the second factor until it expires."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import NotFound, ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.responses import ResponseModel
from app.events.service import record
from app.models.trusted_device import TrustedDevice
from app.models.user import User
from app.organization.service import touch
from app.user.schemas import DeviceCreate

DEFAULT_TTL_MS = 30 * 24 * 3600 * 1000
MAX_TTL_MS = 400 * 24 * 3600 * 1000


class DeviceOut(ResponseModel):
    id: str
    fingerprint: str
    name: str | None
    user_agent: str | None
    trusted_at: int
    expires_at: int | None
    last_used_at: int | None



async def _event(session: AsyncSession, user: User, type: str, auth: Principal,
                 subject_id: str, data: dict[str, Any]) -> None:
    await record(session, type=type, account_id=user.account_id, issuer_id=user.issuer_id,
                 user_id=user.id, subject={"type": "trusted_device", "id": subject_id,
                                           "user_id": user.id}, data=data, auth=auth)


async def list_devices(session: AsyncSession, user: User) -> list[TrustedDevice]:
    rows = await session.scalars(select(TrustedDevice).where(
        TrustedDevice.user_id == user.id, TrustedDevice.account_id == user.account_id,
        TrustedDevice.expires_at > now_ms()).order_by(TrustedDevice.id.desc()))
    return list(rows.all())


async def trust_device(session: AsyncSession, user: User, body: DeviceCreate,
                       auth: Principal) -> TrustedDevice:
    """Trusting a known fingerprint again renews it rather than adding a second row."""
    now = now_ms()
    expires_at = body.expires_at or now + DEFAULT_TTL_MS
    if expires_at <= now or expires_at > now + MAX_TTL_MS:
        raise ValidationFailed("expires_at must be in the future and within 400 days",
                               field="expires_at")
    device = await session.scalar(select(TrustedDevice).where(
        TrustedDevice.user_id == user.id, TrustedDevice.fingerprint == body.fingerprint
    ).with_for_update())
    if device is None:
        device = TrustedDevice(id=new_id("dev"), account_id=user.account_id,
                               issuer_id=user.issuer_id, user_id=user.id,
                               fingerprint=body.fingerprint, created_at=now)
        session.add(device)
    else:
        touch(device)
    device.name, device.user_agent = body.name, body.user_agent
    # A device trusted or edited through the API never matches a browser's device cookie.
    device.secret_hash = None
    device.trusted_at, device.expires_at = now, expires_at
    await session.flush()
    await _event(session, user, "user.device.trusted", auth, device.id,
                 {"name": device.name, "expires_at": device.expires_at})
    return device


async def revoke_device(session: AsyncSession, user: User, device_id: str, auth: Principal) -> None:
    device = await session.scalar(select(TrustedDevice).where(
        TrustedDevice.id == device_id, TrustedDevice.user_id == user.id,
        TrustedDevice.account_id == user.account_id).with_for_update())
    if device is None:
        raise NotFound("trusted device")
    await session.delete(device)
    await session.flush()
    await _event(session, user, "user.device.revoked", auth, device.id, {"count": 1})


async def revoke_all(session: AsyncSession, user: User, auth: Principal) -> int:
    result = await session.execute(delete(TrustedDevice).where(
        TrustedDevice.user_id == user.id, TrustedDevice.account_id == user.account_id
    ).returning(TrustedDevice.id))
    count = len(result.all())
    await _event(session, user, "user.device.revoked", auth, "*", {"count": count})
    return count
