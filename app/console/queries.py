"""Read-only lookups the console shows beside a user (tenant-scoped through the user row)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.console.web import fmt_time
from app.models.oidc import LoginSession
from app.models.trusted_device import TrustedDevice
from app.models.user import User
from app.models.user_verifier import UserVerifier


async def user_extras(session: AsyncSession, user: User) -> dict[str, list[str]]:
    where = {"account_id": user.account_id, "user_id": user.id}
    verifiers = (await session.scalars(select(UserVerifier).filter_by(**where).limit(50))).all()
    sessions = (
        await session.scalars(
            select(LoginSession).filter_by(**where).order_by(LoginSession.id.desc()).limit(50)
        )
    ).all()
    devices = (await session.scalars(select(TrustedDevice).filter_by(**where).limit(50))).all()
    return {
        "Verifiers": [f"{v.type} {v.name or ''} ({v.status})" for v in verifiers],
        "Sessions": [f"{s.id}: {s.status}, expires {fmt_time(s.expires_at)}" for s in sessions],
        "Trusted devices": [
            f"{d.name or d.fingerprint[:12]} until {fmt_time(d.expires_at)}" for d in devices
        ],
    }
