"""Cross-process invalidation of verified-key caches: NOTIFY inside the changing transaction.

Postgres delivers a NOTIFY only when its transaction commits, so a listener never drops a cache
entry for a change that was rolled back, and never misses one that was committed.

This process's own caches are also invalidated directly, when the change is made and again right
after its commit, so the very next request here sees the change without waiting for the NOTIFY
to come back through the listener connection.
"""

from __future__ import annotations

import asyncio
import time
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


# NOTIFYs sent from this process, by (sending backend pid, payload): their echo through the
# listener is skipped, since the caches here were already invalidated directly (at the change and
# after its commit); a late echo would only keep the next verification from being cached. Entries
# live a few seconds (an echo takes milliseconds), so a reused backend pid cannot mask another
# process's change.
_sent: dict[tuple[int, str], float] = {}
ECHO_SECONDS = 5.0


def is_own_echo(pid: int, payload: str) -> bool:
    sent = _sent.get((pid, payload))
    return sent is not None and time.monotonic() - sent < ECHO_SECONDS


# A change is acknowledged only once its NOTIFY has come back through a listener of this process:
# Postgres has then dispatched it to every listening backend, so another process cannot still be
# serving the old state to a client that saw our response. Bounded: a lost echo costs this wait.
ECHO_WAIT_SECONDS = 0.5
_echo_waiters: dict[tuple[int, str], asyncio.Future[None]] = {}
_listener_liveness: list[Callable[[], bool]] = []


def register_listener(live: Callable[[], bool]) -> None:
    _listener_liveness.append(live)


def unregister_listener(live: Callable[[], bool]) -> None:
    _listener_liveness[:] = [f for f in _listener_liveness if f != live]


def echo_arrived(pid: int, payload: str) -> None:
    """Called by a listener for each of this process's own NOTIFYs coming back."""
    waiter = _echo_waiters.pop((pid, payload), None)
    if waiter is not None and not waiter.done():
        waiter.get_loop().call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _expect_echo(session: AsyncSession, pid: int, payload: str) -> None:
    if not any(live() for live in _listener_liveness):
        return  # no live listener here: nothing would come back (caches then re-check the DB)
    waiter = asyncio.get_running_loop().create_future()
    _echo_waiters[(pid, payload)] = waiter

    async def wait_for_echo() -> None:
        try:
            await asyncio.wait_for(asyncio.shield(waiter), ECHO_WAIT_SECONDS)
        except TimeoutError:
            pass
        finally:
            _echo_waiters.pop((pid, payload), None)

    # Run by app.core.session.db_session after the commit, before the response is sent.
    session.info.setdefault("after_commit", []).append(wait_for_echo)


def _remember(pid: int, payload: str) -> None:
    now = time.monotonic()
    if len(_sent) > 10_000:
        for item in [k for k, t in list(_sent.items()) if now - t >= ECHO_SECONDS]:
            del _sent[item]
    _sent[(pid, payload)] = now


async def _notify(session: AsyncSession, payload: str) -> None:
    result = await session.execute(text("SELECT pg_notify(:c, :p), pg_backend_pid()"),
                                   {"c": CHANNEL, "p": payload})
    pid = int(result.one()[1])
    _remember(pid, payload)
    _expect_echo(session, pid, payload)
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

