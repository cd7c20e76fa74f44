"""Shared fixtures: a migrated real Postgres, the app in-process, a live server, fresh accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.config import Settings
from app.core.db import to_asyncpg_dsn
from app.main import create_app
from tests.fixtures.database import migrated_database
from tests.fixtures.server import LiveServer, free_port
from tests.fixtures.smtp import SmtpSink, smtp_sink

TEST_SECRET_KEY = "test-server-key-not-secret-0123456789abcdef"


database_url = pytest.fixture(scope="session")(migrated_database)


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"env": "test", "secret_key": TEST_SECRET_KEY,
                              "webhooks_allow_private": True, "public_url": "http://testserver",
                              # Every app of the tests mails the one SMTP sink of this process.
                              "smtp_url": smtp_sink().url}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(), database_url=database_url)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP to the in-process app."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[LiveServer]:
    """The same database served over real HTTP on 127.0.0.1 (its own app instance and loop)."""
    port = free_port()
    application = create_app(make_settings(public_url=f"http://127.0.0.1:{port}", port=port),
                             database_url=database_url)
    server = LiveServer(application, port).start()
    yield server
    server.stop()


@dataclass
class AccountCredentials:
    account_id: str
    key_id: str
    secret: str

    @property
    def basic(self) -> tuple[str, str]:
        return (self.key_id, self.secret)


async def new_account(app: FastAPI, name: str = "test-account") -> AccountCredentials:
    from app.account.service import create_account

    async with app.state.db.unit_of_work() as session:
        account, key, secret = await create_account(session, name)
    return AccountCredentials(account.id, key.id, secret)


@pytest.fixture
async def account(app: FastAPI) -> AccountCredentials:
    """A fresh account with an all-scopes account key: tests isolate by tenant."""
    return await new_account(app, "acme")


@pytest.fixture
async def other_account(app: FastAPI) -> AccountCredentials:
    """A second tenant, for isolation tests."""
    return await new_account(app, "other")


@pytest.fixture
async def admin(app: FastAPI, account: AccountCredentials) -> AsyncIterator[AuthPIAdmin]:
    """The official admin SDK, talking to the in-process app with the account's key."""
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    sdk = AuthPIAdmin(api_key=account.basic, base_url="http://testserver", http_client=http)
    yield sdk
    await http.aclose()


@pytest.fixture
async def other_admin(app: FastAPI, other_account: AccountCredentials) -> AsyncIterator[AuthPIAdmin]:
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    sdk = AuthPIAdmin(api_key=other_account.basic, base_url="http://testserver", http_client=http)
    yield sdk
    await http.aclose()


@pytest.fixture(scope="session")
def smtp() -> SmtpSink:
    """The real SMTP server (aiosmtpd) every test app sends to."""
    return smtp_sink()


@pytest.fixture(scope="session")
async def pg(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Direct SQL, to assert rows in the database."""
    pool = await asyncpg.create_pool(to_asyncpg_dsn(database_url), min_size=1, max_size=4)
    yield pool
    await pool.close()


# Per-request metered events (api-key.verified, ...) reach the trail through a batcher flushed in
# the background at any moment: "nothing was written" assertions are about mutation events.
NOT_METERED = "type NOT LIKE 'api-key.verif%'"


async def count_rows(pg: asyncpg.Pool, table: str, account_id: str) -> int:
    """The account's rows in `table` (for `events`, its mutation events only)."""
    where = f" AND {NOT_METERED}" if table == "events" else ""
    return int(await pg.fetchval(f"SELECT count(*) FROM {table} WHERE account_id = $1{where}", account_id))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Release this process's embedded PostgreSQL handle (the last process out stops the server):
    xdist workers may end without running atexit, which left the server running."""
    from app.process import release_embedded_postgres

    release_embedded_postgres()
