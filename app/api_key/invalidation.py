"""Cross-process invalidation of verified-key caches: NOTIFY inside the changing transaction.

Postgres delivers a NOTIFY only when its transaction commits, so a listener never drops a cache
entry for a change that was rolled back, and never misses one that was committed.

This process's own caches are also invalidated directly, when the change is made and again right
after its commit, so the very next request here sees the change without waiting for the NOTIFY
to come back through the listener connection.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "authpi_key_invalidation"

# Invalidation callbacks of the key caches living in this process (one per app instance), each with
# the event loop it belongs to: a test process may run several apps on several loops.
_local: list[tuple[asyncio.AbstractEventLoop, Callable[[str], None]]] = []


def register_local(callback: Callable[[str], None]) -> None:
    _local.append((asyncio.get_running_loop(), callback))


def unregister_local(callback: Callable[[str], None]) -> None:
    _local[:] = [(loop, cb) for loop, cb in _local if cb != callback]


def _invalidate_here(payload: str) -> None:
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    for loop, callback in list(_local):
        if loop is current:
            callback(payload)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(callback, payload)


# Tags this process's NOTIFYs: their echo through the listener is skipped, since the caches here
# were already invalidated directly (at the change and after its commit). A late echo would only
# keep the next verification from being cached.
PROCESS_TAG = os.urandom(6).hex()


def parse_payload(raw: str) -> tuple[str, bool]:
    """(`kind:id`, whether this process sent it)."""
    payload, _, tag = raw.partition("@")
    return payload, tag == PROCESS_TAG


async def _notify(session: AsyncSession, payload: str) -> None:
    await session.execute(text("SELECT pg_notify(:c, :p)"),
                          {"c": CHANNEL, "p": f"{payload}@{PROCESS_TAG}"})
    _invalidate_here(payload)
    event.listen(session.sync_session, "after_commit", lambda _s: _invalidate_here(payload), once=True)


async def notify_key_changed(session: AsyncSession, key_id: str) -> None:
    await _notify(session, f"key:{key_id}")


async def notify_org_changed(session: AsyncSession, org_id: str) -> None:
    """An organization's status or grantable scopes changed: its keys must be re-verified."""
    await _notify(session, f"org:{org_id}")


async def notify_issuer_changed(session: AsyncSession, issuer_id: str) -> None:
    """An issuer was suspended or deleted: the keys of its organizations must be re-verified."""
    await _notify(session, f"issuer:{issuer_id}")


async def notify_account_changed(session: AsyncSession, account_id: str) -> None:
    """An account's status changed: all of its keys must be re-verified."""
    await _notify(session, f"account:{account_id}")
