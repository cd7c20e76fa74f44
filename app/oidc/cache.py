"""Per-process OIDC state (key sets, verified clients) and its cross-replica invalidation.

Caches are dropped locally at once and, through NOTIFY inside the changing transaction, on every
replica when the change commits. When the listener connection is lost every cache is dropped
(we may have missed notifications) and it reconnects; entries also have a bounded age.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import to_asyncpg_dsn

log = logging.getLogger("authpi.oidc")
CHANNEL = "authpi_oidc_invalidation"


def runtime(app: Any) -> Any:
    """The app's OidcRuntime (created lazily so tests and the CLI need no wiring)."""
    state = getattr(app.state, "oidc", None)
    if state is None:
        from app.oidc.runtime import OidcRuntime

        state = OidcRuntime(app)
        app.state.oidc = state
    return state


def _drop(app: Any, kind: str, ident: str) -> None:
    rt = runtime(app)
    if kind == "issuer":
        rt.keys.invalidate(ident)
        rt.clients.invalidate_issuer(ident)
    elif kind == "client":
        rt.clients.invalidate(ident)
    else:
        rt.drop_all()


async def _notify(session: AsyncSession, payload: str) -> None:
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})


async def invalidate_issuer(app: Any, session: AsyncSession, issuer_id: str) -> None:
    _drop(app, "issuer", issuer_id)
    await _notify(session, f"issuer:{issuer_id}")


async def invalidate_client(app: Any, session: AsyncSession, client_id: str) -> None:
    _drop(app, "client", client_id)
    await _notify(session, f"client:{client_id}")


class InvalidationListener:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="oidc-invalidation-listener")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        kind, _, ident = payload.partition(":")
        _drop(self.app, kind, ident)

    async def _run(self) -> None:
        dsn = to_asyncpg_dsn(self.app.state.database_url)
        while not self._stop.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                # Anything cached before we listened may be stale.
                runtime(self.app).drop_all()
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep listening whatever happened
                log.warning("oidc invalidation listener: %s", type(exc).__name__)
            finally:
                runtime(self.app).drop_all()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(1.0)
