"""Cross-process invalidation of verified-key caches: NOTIFY inside the changing transaction.

Postgres delivers a NOTIFY only when its transaction commits, so a listener never drops a cache
entry for a change that was rolled back, and never misses one that was committed.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "authpi_key_invalidation"


async def notify_key_changed(session: AsyncSession, key_id: str) -> None:
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": f"key:{key_id}"})


async def notify_org_changed(session: AsyncSession, org_id: str) -> None:
    """An organization's status or grantable scopes changed: its keys must be re-verified."""
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": f"org:{org_id}"})
